"""Cheap and full fidelity label the same structures; cost in the manifest; labelling a store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from datamodules.store import GraphStore
from datamodules.surrogate.fidelity import FIDELITIES, settings_for
from datamodules.surrogate.generate import generate
from datamodules.surrogate.hamiltonian import build_model
from datamodules.surrogate.label import label
from datamodules.surrogate.optics import mesh_for

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "optimetal"
QUIET = dict(workers=1, progress=False)


def _records(path):
    g = GraphStore(path)
    return [g.read(i) for i in range(len(g))], g.mat_ids().tolist(), g.formulas().tolist()


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("fidelity")
    return {f: (root / f, generate(5, 3, root / f, settings_for(f), **QUIET)) for f in FIDELITIES}


def test_fidelities_label_the_same_structures_with_different_spectra(stores):
    (full, _), (cheap, _) = stores["full"], stores["cheap"]
    rf, idf, ff = _records(full)
    rc, idc, fc = _records(cheap)
    assert idf == idc and ff == fc and len(idf) == 5
    for a, b in zip(rf, rc, strict=True):
        assert np.array_equal(a["lattice"], b["lattice"]) and np.array_equal(a["numbers"], b["numbers"])
        assert np.array_equal(a["pos"], b["pos"])
    assert all(np.abs(a["eps"] - b["eps"]).max() > 1e-3 for a, b in zip(rf, rc, strict=True))


def test_cheap_fidelity_uses_at_least_6x_fewer_k_points(stores):
    recs, _, _ = _records(stores["full"][0])
    for r in recs:
        model = build_model(r["lattice"].astype(float), r["numbers"].astype(int), r["pos"].astype(float))
        n = {f: np.prod(mesh_for(model.lattice, s.spacing_for(model))) for f, s in FIDELITIES.items()}
        assert n["full"] >= 6 * n["cheap"], n  # the same orbitals: cost scales with the k-points


def test_manifest_records_fidelity_and_cost(stores):
    for f, (path, manifest) in stores.items():
        on_disk = json.loads((path / "manifest.json").read_text())
        assert on_disk["fidelity"] == manifest["fidelity"] == f
        assert on_disk["seconds_per_material"] > 0 and on_disk["cost_workers"] == 1
    assert stores["full"][1]["content_hash"] != stores["cheap"][1]["content_hash"]


def test_label_a_generated_store_keeps_ids_and_reproduces_its_spectra(stores, tmp_path):
    src = stores["cheap"][0]
    manifest = label([str(src)], tmp_path / "relabelled", settings_for("cheap"), **QUIET)
    assert manifest["fidelity"] == "cheap" and manifest["kind"] == "surrogate-label" and not manifest["rejected"]
    a, ida, _ = _records(src)
    b, idb, _ = _records(tmp_path / "relabelled")
    assert ida == idb  # same materials in the same order
    for x, y in zip(
        a, b, strict=True
    ):  # float32 positions and spglib symmetry instead of the prototype's: tiny changes
        assert np.abs(x["eps"] - y["eps"]).max() < 1e-2 * np.abs(x["eps"]).max()


def test_label_the_real_samples_store(tmp_path):
    files = sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []
    if not files:
        pytest.skip(f"real samples absent at {SAMPLES}")
    from datamodules.importer import import_records

    imported = import_records([str(f) for f in files], tmp_path / "dft", **QUIET)
    out = label([str(tmp_path / "dft")], tmp_path / "tb", settings_for("cheap"), **QUIET)
    assert out["n_materials"] == imported["n_materials"] > 0 and out["fidelity"] == "cheap"
    assert _records(tmp_path / "tb")[1] == _records(tmp_path / "dft")[1]


def test_unknown_fidelity_and_non_store_directory_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown fidelity 'medium'"):
        settings_for("medium")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not an optiscale store"):
        label([str(tmp_path / "plain")], tmp_path / "out", **QUIET)


def test_cli_fidelity_and_label_from_store(tmp_path, capsys):
    from experiments.cli import main

    opts = ["--quiet", "--workers", "1"]
    assert main(["data", "generate", "--n", "3", "--seed", "2", "--fidelity", "cheap", "--out", str(tmp_path / "g"),
                 *opts]) == 0  # fmt: skip
    assert main(["data", "label", str(tmp_path / "g"), "--out", str(tmp_path / "l"), "--fidelity", "cheap",
                 "--broadening", "0.5", *opts]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["data", "info", str(tmp_path / "l"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_materials"] == 3 and info["optics"]["broadening"] == 0.5 and info["fidelity"] == "custom"
    assert info["optics"]["k_spacing"] == FIDELITIES["cheap"].k_spacing and info["seconds_per_material"] > 0

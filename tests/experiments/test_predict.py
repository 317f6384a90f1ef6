"""optiscale predict: structure files -> eps, Drude frequency, reflectance; bad files fail alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from experiments.cli import main


def store_prediction(ckpt, store, mat_id):
    """The model's output on the store's own graph of a material (the training path)."""
    from datamodules.datamodule import Collate
    from datamodules.store import GraphStore
    from lightning_modules.module import SpectraModule

    module = SpectraModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    s = GraphStore(store)
    i = s.lookup(mat_id)
    with torch.no_grad():
        eps, drude = module(Collate(module.needs_triplets)([s.read(i) | {"idx": i}]))
    return eps[0].numpy(), float(drude[0])


def test_predict_on_a_cif_matches_the_model_on_the_stored_graph(trained, store201, store201_record, tmp_path, capsys):
    result, _, _ = trained
    mat_id, structure = store201_record
    cif = tmp_path / "material.cif"
    structure.to(filename=str(cif))
    out = tmp_path / "out"
    assert main(["predict", "--ckpt", result["best_checkpoint"], str(cif), "--out", str(out)]) == 0
    assert "predicted 1 of 1" in capsys.readouterr().out

    pred = json.loads((out / "material.cif.json").read_text())
    eps, drude = store_prediction(result["best_checkpoint"], store201, mat_id)
    assert len(pred["omega_eV"]) == 201 and pred["omega_eV"][-1] == pytest.approx(20.0)
    assert np.allclose(pred["eps_re"], eps[:, 0], rtol=1e-4, atol=1e-4)
    assert np.allclose(pred["eps_im"], eps[:, 1], rtol=1e-4, atol=1e-4)
    assert pred["drude_eV"] == pytest.approx(drude, rel=1e-4, abs=1e-5) and pred["drude_eV"] >= 0
    r = np.array(pred["reflectance"])
    assert np.all((r >= 0) & (r <= 1))
    assert pred["formula"] == structure.composition.reduced_formula and pred["model"] == "2b-tc"

    rows = list(csv.reader((out / "material.cif.csv").read_text().splitlines()))
    assert rows[0] == ["omega_eV", "eps_re", "eps_im", "reflectance"] and len(rows) == 202
    assert float(rows[10][1]) == pytest.approx(pred["eps_re"][9], rel=1e-6)
    assert (out / "material.cif.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = list(csv.DictReader((out / "predictions.csv").open()))
    assert float(table[0]["drude_eV"]) == pytest.approx(pred["drude_eV"]) and table[0]["error"] == ""


def test_bad_files_fail_one_by_one_with_a_clear_reason(trained, store201_record, tmp_path, capsys):
    from pymatgen.core import Structure

    result, _, _ = trained
    _, structure = store201_record
    good_cif, good_poscar = tmp_path / "good.cif", tmp_path / "POSCAR"
    structure.to(filename=str(good_cif))
    structure.to(filename=str(good_poscar), fmt="poscar")
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("this is not a crystal structure\n")
    binary = tmp_path / "binary.cif"
    binary.write_bytes(bytes(range(256)) * 4)
    uranium = tmp_path / "uranium.cif"
    u = structure.copy()
    u.replace(0, "U")
    u.to(filename=str(uranium))
    overlap = tmp_path / "overlap.cif"
    Structure(structure.lattice, ["Cu", "Cu"], [[0, 0, 0], [0.01, 0, 0]]).to(filename=str(overlap))
    missing = tmp_path / "missing.cif"

    files = [good_cif, garbage, binary, uranium, good_poscar, overlap, missing]
    out = tmp_path / "out"
    code = main(["predict", "--ckpt", result["best_checkpoint"], *map(str, files), "--out", str(out)])
    assert code == 1
    printed = capsys.readouterr().out
    assert "predicted 2 of 7" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert [p["file"] for p in summary["predicted"]] == [str(good_cif), str(good_poscar)]
    reasons = {Path(f["file"]).name: f["reason"] for f in summary["failed"]}
    assert "not a readable CIF or POSCAR" in reasons["garbage.cif"]
    assert "unreadable" in reasons["binary.cif"] or "not a readable" in reasons["binary.cif"]
    assert "Z=[92]" in reasons["uranium.cif"]
    assert "overlapping atoms" in reasons["overlap.cif"]
    assert "no such file" in reasons["missing.cif"]
    for name in reasons:
        assert f"failed {tmp_path / name}: " in printed
    a = json.loads((out / "good.cif.json").read_text())
    b = json.loads((out / "POSCAR.json").read_text())
    assert np.allclose(a["eps_re"], b["eps_re"], rtol=1e-4, atol=1e-4)  # the same structure in both formats
    assert not (out / "uranium.cif.json").exists()

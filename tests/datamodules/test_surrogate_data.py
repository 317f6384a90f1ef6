"""The surrogate dataset: prototypes, parameters, determinism, duplicates, store, resume, labelling."""

from __future__ import annotations

import json
from itertools import permutations

import numpy as np
import pytest

from datamodules.surrogate.optics import OpticsSettings
from datamodules.surrogate.params import UnsupportedElement, species
from datamodules.surrogate.prototypes import PROTOTYPES, canonical_key, draw_specs, structure_arrays

COARSE = OpticsSettings(k_spacing=0.3, k_spacing_sp=0.3)
SPACE_GROUPS = {
    "A1-fcc": "Fm-3m", "A2-bcc": "Im-3m", "A3-hcp": "P6_3/mmc", "B2-CsCl": "Pm-3m", "L1_2-Cu3Au": "Pm-3m",
    "L1_0-CuAu": "P4/mmm", "Bh-WC": "P-6m2", "C1-CaF2": "Fm-3m", "C1b-halfHeusler": "F-43m",
    "L2_1-Heusler": "Fm-3m", "D0_3-BiF3": "Fm-3m", "Y-quaternaryHeusler": "F-43m", "C15-Laves": "Fd-3m",
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(PROTOTYPES))
def test_prototypes_have_their_space_group(name):
    from pymatgen.core import Lattice, Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    p = PROTOTYPES[name]
    lat, z, cart = structure_arrays(p, ("Cu", "Al", "Ti", "Mg")[: len(p.letters)], 0.01, p.hexagonal_ca)
    s = Structure(Lattice(lat), z, cart, coords_are_cartesian=True)
    assert SpacegroupAnalyzer(s, symprec=1e-3).get_space_group_symbol() == SPACE_GROUPS[name]


def test_lattice_constant_from_metallic_radii():
    lat, _, _ = structure_arrays(PROTOTYPES["A1-fcc"], ("Cu",), 0.0)
    assert abs(np.linalg.norm(lat[0]) - 2 * 1.28) < 1e-9  # fcc Cu: nearest neighbours at 2 r_Cu = 2.56 Å
    lat, _, _ = structure_arrays(PROTOTYPES["A2-bcc"], ("Fe",), 0.02)
    assert abs(np.linalg.norm(lat[0]) - 2 * 1.26 * 1.02) < 1e-9


def test_equivalent_decorations_count_known_numbers_of_distinct_crystals():
    """Quaternary Heusler XX'YZ: 3 distinct arrangements of 4 elements; half-Heusler XYZ: 3 of 3."""
    for name, expected in (("Y-quaternaryHeusler", 3), ("C1b-halfHeusler", 3), ("B2-CsCl", 1), ("L1_2-Cu3Au", 2)):
        p = PROTOTYPES[name]
        els = ("Cu", "Al", "Ti", "Mg")[: len(p.letters)]
        keys = {canonical_key(p, perm) for perm in permutations(els)}
        assert len(keys) == expected, name


def test_specs_are_deterministic_and_duplicate_free():
    a, b, c = draw_specs(400, 11), draw_specs(400, 11), draw_specs(400, 12)
    assert a == b and a != c
    keys = [canonical_key(PROTOTYPES[s[1]], s[2]) for s in a]
    assert len(set(keys)) == len(keys)
    assert len({s[1] for s in a}) == len(PROTOTYPES)


def test_parameters_of_elements():
    cu, al, pd, na = species(29), species(13), species(46), species(11)
    assert (cu.valence, cu.n_orbitals) == (11, 9) and (al.valence, al.n_orbitals) == (3, 4)
    assert (pd.valence, na.valence, species(26).valence, species(72).valence) == (10, 1, 8, 4)
    assert al.onsite[0] < al.onsite[1] and abs(al.onsite[0] - (-7.81)) < 0.01  # NIST LDA 3s of Al
    assert pd.onsite[0] < 0 and len(cu.onsite) == 3
    with pytest.raises(UnsupportedElement, match="Ce"):
        species(58)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from datamodules.surrogate.generate import generate

    out = tmp_path_factory.mktemp("surrogate") / "store"
    manifest = generate(24, 5, out, COARSE, workers=2, chunk_size=8, progress=False)
    return out, manifest


def test_generate_builds_a_store_that_info_and_show_read(generated):
    from datamodules.describe import info, show
    from datamodules.store import GraphStore

    out, manifest = generated
    assert manifest["n_materials"] == 24 and not manifest["rejected"]
    assert manifest["kind"] == "surrogate" and manifest["optics"]["k_spacing"] == 0.3
    d = info(str(out))
    assert d["n_materials"] == 24 and sum(d["splits"].values()) == 24
    rec = show(str(out), "tb5-0000003")
    assert len(rec["eps_im"]) == 2001 and rec["eps_im"][0] == 0 and rec["drude"] >= 0
    store = GraphStore(out)
    formulas = store.formulas()
    split = np.asarray(store.split)
    for f in set(formulas):  # composition split
        assert len(set(split[formulas == f])) == 1


def test_generate_is_deterministic_and_resumes_after_interruption(generated, tmp_path):
    from datamodules.surrogate.generate import generate

    out, manifest = generated
    again = generate(24, 5, tmp_path / "again", COARSE, workers=1, chunk_size=8, progress=False)
    assert again["content_hash"] == manifest["content_hash"]
    # interrupt: a shard's catalogue and the manifest are gone; rerun finishes with the same content
    (tmp_path / "again" / "manifest.json").unlink()
    (tmp_path / "again" / "shards" / "shard-00001.json").unlink()
    resumed = generate(24, 5, tmp_path / "again", COARSE, workers=1, chunk_size=8, progress=False)
    assert resumed["content_hash"] == manifest["content_hash"] and resumed["n_materials"] == 24
    assert not resumed["rejected"]
    with pytest.raises(ValueError, match="other sources or settings"):
        generate(24, 6, tmp_path / "again", COARSE, workers=1, chunk_size=8, progress=False)


def test_label_cif_poscar_and_bad_files(tmp_path):
    from pymatgen.core import Lattice, Structure

    from datamodules.store import GraphStore
    from datamodules.surrogate.label import label

    cu = Structure(Lattice.cubic(3.61), ["Cu"] * 4, [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    nial = Structure(Lattice.cubic(2.88), ["Ni", "Al"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cu.to(filename=str(tmp_path / "copper.cif"))
    nial.to(filename=str(tmp_path / "NiAl.vasp"), fmt="poscar")
    (tmp_path / "broken.cif").write_text("data_x\n_cell_length_a foo\n")
    Structure(Lattice.cubic(5.16), ["Ce"], [[0, 0, 0]]).to(filename=str(tmp_path / "cerium.cif"))
    files = [str(tmp_path / n) for n in ("copper.cif", "NiAl.vasp", "broken.cif", "cerium.cif")]
    manifest = label(files, tmp_path / "store", COARSE, workers=1, progress=False)
    assert manifest["n_materials"] == 2
    reasons = {r["source"].split("/")[-1]: r["reason"] for r in manifest["rejected"]}
    assert set(reasons) == {"broken.cif", "cerium.cif"}
    assert "cannot be read" in reasons["broken.cif"] and "Ce" in reasons["cerium.cif"]
    store = GraphStore(tmp_path / "store")
    assert sorted(store.mat_ids()) == ["NiAl", "copper"]
    assert json.loads((tmp_path / "store" / "manifest.json").read_text())["kind"] == "surrogate-label"


def test_cli_generate_and_label(tmp_path, capsys):
    from experiments.cli import main

    grid = ["--k-spacing", "0.4", "--k-spacing-sp", "0.4"]
    assert main(["data", "generate", "--n", "4", "--seed", "1", "--out", str(tmp_path / "g"), *grid, "--quiet",
                 "--workers", "1"]) == 0  # fmt: skip
    assert "4 materials" in capsys.readouterr().out
    assert main(["data", "info", str(tmp_path / "g"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["optics"]["k_spacing"] == 0.4
    assert main(["data", "label", str(tmp_path / "missing.cif"), "--out", str(tmp_path / "l"), "--quiet"]) == 0
    assert "no such file" in capsys.readouterr().out


def test_generated_store_feeds_the_datamodule(generated):
    from datamodules.datamodule import GraphDataModule

    out, _ = generated
    dm = GraphDataModule(out, batch_size=8, triplets=True)
    batch = next(iter(dm.train_dataloader()))
    assert batch.y_eps.shape[1:] == (2001, 2) and batch.y_drude.shape == (batch.num_graphs,)
    assert float(batch.y_eps[:, :, 1].min()) >= 0 and float(batch.y_drude.min()) > 0


@pytest.mark.parametrize("n", [0, -3])
def test_generating_no_materials_fails_and_writes_nothing(tmp_path, capsys, n):
    from experiments.cli import main

    out = tmp_path / "s"
    assert main(["data", "generate", "--n", str(n), "--out", str(out), "--quiet", "--workers", "1"]) == 1
    assert "--n must be at least 1" in capsys.readouterr().err
    assert not out.exists()

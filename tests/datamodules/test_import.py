"""Importing the published records: targets, bad input, the HDF5 release, the CLI."""

import gzip
import json
import shutil

import numpy as np
import pytest

from datamodules.importer import import_records
from datamodules.store import GraphStore
from experiments.cli import main


def raw_average(doc, part):
    a = np.asarray(doc["data"][f"eps_inter_{part}"]["data"])
    return (a[:, 1] + a[:, 2] + a[:, 3]) / 3


def test_targets_are_direction_averages_of_the_raw_columns(samples_dir, sample_docs, tmp_path):
    import_records([str(samples_dir)], tmp_path / "s", workers=1, progress=False)
    store = GraphStore(tmp_path / "s")
    assert len(store) == len(sample_docs)
    for mat_id, doc in sample_docs.items():
        rec = store.read(store.lookup(mat_id))
        assert np.allclose(rec["eps"][:, 0], raw_average(doc, "re"), rtol=1e-6, atol=1e-5)
        assert np.allclose(rec["eps"][:, 1], raw_average(doc, "im"), rtol=1e-6, atol=1e-5)
        w = np.asarray(doc["data"]["drude_freq"])
        assert rec["drude"][0] == pytest.approx(np.sqrt((w**2).mean()), rel=1e-6)
        assert rec["eps"][0, 1] == 0.0
    # one real value by hand: LiScTi eps_re(0) = (84.002065 + 82.861846 + 84.216001) / 3
    rec = store.read(store.lookup("agm001003411"))
    assert rec["eps"][0, 0] == pytest.approx(83.693304, abs=1e-4)


def test_coarse_grid_takes_every_tenth_reference_point(samples_dir, sample_docs, tmp_path):
    import_records([str(samples_dir)], tmp_path / "s", grid_points=201, workers=1, progress=False)
    store = GraphStore(tmp_path / "s")
    assert store.manifest["grid"] == {"start": 0.0, "stop": 20.0, "points": 201}
    doc = sample_docs["agm001004536"]
    rec = store.read(store.lookup("agm001004536"))
    assert np.allclose(rec["eps"][:, 1], raw_average(doc, "im")[::10], atol=1e-4)


def test_gzipped_records_import_like_plain_ones(samples_dir, tmp_path):
    src = next(samples_dir.glob("*.json"))
    gz = tmp_path / "in" / (src.name + ".gz")
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(src.read_bytes()))
    import_records([str(gz)], tmp_path / "g", workers=1, progress=False)
    import_records([str(src)], tmp_path / "p", workers=1, progress=False)
    a, b = GraphStore(tmp_path / "g"), GraphStore(tmp_path / "p")
    assert np.array_equal(a.read(0)["eps"], b.read(0)["eps"])


def _set(path, value):
    """A mutation of a parsed record: set doc[path...] = value (value may be a function of the old)."""

    def mutate(doc):
        *head, last = path
        node = doc
        for key in head:
            node = node[key]
        node[last] = value(node[last]) if callable(value) else value
        return doc

    return mutate


def _shift_grid(rows):
    return [[row[0] * 1.05, *row[1:]] for row in rows]


def _overlap(sites):
    sites[1]["abc"] = [sites[0]["abc"][0] + 0.01, *sites[0]["abc"][1:]]
    return sites


def _drop_drude(data):
    del data["drude_freq"]
    return data


BAD_RECORDS = {  # file name: (mutation of a good record, or the file's text; words of the reason)
    "truncated.json": (lambda text: text[: len(text) // 2], "invalid or truncated JSON"),
    "notadict.json": (lambda text: "[1, 2, 3]", "not a JSON object"),
    "missing.json": (_set(["data"], _drop_drude), "missing keys: data.drude_freq"),
    "shape.json": (_set(["data", "eps_inter_im", "data"], lambda rows: rows[:1000]), "shape (1000, 4)"),
    "grid.json": (_set(["data", "eps_inter_re", "data"], _shift_grid), "frequency grid does not match"),
    "nan.json": (_set(["data", "eps_inter_re", "data", 7, 2], float("nan")), "NaN or infinite"),
    "inf.json": (_set(["data", "drude_freq", 1], float("inf")), "NaN or infinite"),
    "overlap.json": (_set(["structure", "sites"], _overlap), "overlapping atoms"),
    "isolated.json": (_set(["structure", "lattice", "matrix"], [[30.0, 0, 0], [0, 30.0, 0], [0, 0, 30.0]]),
                      "no neighbour within 5.5"),
    "uranium.json": (_set(["structure", "sites", 0, "species"], [{"element": "U", "occu": 1}]),
                     "Z=[92] cannot be encoded"),
    "disordered.json": (_set(["structure", "sites", 0, "species"],
                             [{"element": "Li", "occu": 0.5}, {"element": "Na", "occu": 0.5}]), "disordered"),
    "structure.json": (_set(["structure"], {"lattice": "nonsense"}), "structure cannot be parsed"),
}  # fmt: skip


def _bad_records(doc, out):
    """One file per kind of bad input; returns {file name: expected words of the reason}."""
    text = json.dumps(doc)
    for name, (mutate, _) in BAD_RECORDS.items():
        if name in ("truncated.json", "notadict.json"):
            body = mutate(text)
        else:
            body = json.dumps(mutate(json.loads(text)))
        (out / name).write_text(body)
    return {name: words for name, (_, words) in BAD_RECORDS.items()}


def test_every_kind_of_bad_record_is_rejected_with_its_reason(
    samples_dir, sample_docs, derive_record, tmp_path, capsys
):
    src = tmp_path / "in"
    src.mkdir()
    for p in samples_dir.glob("*.json"):
        shutil.copy(p, src / p.name)
    doc = sample_docs["agm001003411"]
    cases = _bad_records(doc, src)
    dup = derive_record(doc, 0, {}, 0.0)
    dup["data"]["mat_id"] = "agm001004536"  # same id as the other good record
    (src / "zz-duplicate.json").write_text(json.dumps(dup))
    cases["zz-duplicate.json"] = "duplicate mat_id agm001004536"

    assert (
        main(
            ["data", "import", str(src), "--out", str(tmp_path / "s"), "--quiet", "--workers", "2", "--chunk-size", "4"]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"2 materials imported from {len(cases) + 2} records" in printed
    assert f"{len(cases)} rejected" in printed

    assert main(["data", "info", str(tmp_path / "s"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_materials"] == 2
    reasons = {r["source"].split("/")[-1]: r["reason"] for r in info["rejected"]}
    assert set(reasons) == set(cases)
    for name, words in cases.items():
        assert words in reasons[name], (name, reasons[name])


def _write_release(docs, out, split_of):
    """The authors' HDF5 schema (docs/reference.md, HDF5 release), written from raw records."""
    import h5py
    from pymatgen.core import Structure

    files = {s: h5py.File(out / f"{s}.h5", "w") for s in ("train", "val", "test")}
    for mat_id, doc in docs.items():
        s = Structure.from_dict(doc["structure"])
        g = files[split_of(mat_id)].create_group(mat_id)
        g["mat_id"] = mat_id.encode()
        g["e_above_hull"] = np.float32(doc["data"]["e_above_hull"])
        g["composition"] = s.composition.reduced_formula.encode()
        g["lattice"] = s.lattice.matrix.astype("f4")
        g["atomic_number"] = np.array(s.atomic_numbers, dtype="u2")
        g["position"] = s.cart_coords.astype("f4")
        g["drude"] = np.float32(np.sqrt(np.mean(np.square(doc["data"]["drude_freq"]))))
        g["eps"] = (raw_average(doc, "re") + 1j * raw_average(doc, "im")).astype(np.complex64)
    for f in files.values():
        f.close()


def test_hdf5_release_keeps_the_authors_split(sample_docs, derived_dir, tmp_path):
    docs = {p.stem: json.loads(p.read_text()) for p in sorted(derived_dir.glob("*.json"))[:12]}
    formulas = {}
    split_of = lambda mat_id: ("train", "val", "test")[int(mat_id[-3:]) % 3]  # noqa: E731
    _write_release(docs, tmp_path, split_of)
    manifest = import_records([str(tmp_path / "*.h5")], tmp_path / "s", workers=1, progress=False)
    store = GraphStore(tmp_path / "s")
    ids = store.mat_ids()
    for i, mat_id in enumerate(ids):
        assert ("train", "val", "test")[int(store.split[i])] == split_of(mat_id)
        formulas[mat_id] = store.formulas()[i]
    assert manifest["split_method"] == "release"
    rec = store.read(store.lookup(ids[0]))
    assert np.allclose(rec["eps"][:, 0], raw_average(docs[ids[0]], "re"), rtol=1e-5)


def test_bad_hdf5_groups_are_rejected(sample_docs, tmp_path):
    import h5py

    _write_release(sample_docs, tmp_path, lambda m: "train")
    with h5py.File(tmp_path / "train.h5", "a") as f:
        g = f.create_group("broken")
        g["lattice"] = np.eye(3)
        g2 = f.create_group("badshape")
        for k in ("lattice", "atomic_number", "position", "drude"):
            g2[k] = f["agm001003411"][k][()]
        g2["eps"] = np.zeros(100, np.complex64)
    manifest = import_records([str(tmp_path / "train.h5")], tmp_path / "s", workers=1, progress=False)
    reasons = {r["source"].split(":")[-1]: r["reason"] for r in manifest["rejected"]}
    assert "missing datasets" in reasons["broken"]
    assert "eps has shape (100,)" in reasons["badshape"]
    assert manifest["n_materials"] == 2


def test_missing_source_is_a_clear_error(tmp_path, capsys):
    assert main(["data", "import", str(tmp_path / "nope*.json"), "--out", str(tmp_path / "s")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_importing_only_bad_records_fails_and_writes_nothing(sample_docs, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _bad_records(sample_docs["agm001003411"], src)
    out = tmp_path / "s"
    assert main(["data", "import", str(src), "--out", str(out), "--quiet", "--workers", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert f"all {len(BAD_RECORDS)} records were rejected" in err and str(out) in err and "\n" not in err
    assert not out.exists()
    empty = tmp_path / "empty"  # an existing empty directory stays empty
    empty.mkdir()
    assert (
        main(["data", "import", str(src), "--out", str(empty), "--quiet", "--workers", "2", "--chunk-size", "4"]) == 1
    )
    assert list(empty.iterdir()) == []

"""Integrity of a store: damaged shards and bad records are refused, `data verify` lists them, a rerun repairs."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from datamodules.datamodule import GraphDataModule
from datamodules.importer import import_records
from datamodules.store import GraphStore, StoreError
from experiments.cli import main


@pytest.fixture
def store_copy(derived_store, tmp_path):
    """A private copy of the 40-record store (3 shards of 16, 16, 8 records)."""
    out = tmp_path / "store"
    shutil.copytree(derived_store, out)
    return out


def flip_middle(path, n=64) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = bytes(b ^ 0xFF for b in data[mid : mid + n])
    path.write_bytes(bytes(data))


def in_shard(store: GraphStore, k: int) -> int:
    return int(np.flatnonzero(np.asarray(store.shard) == k)[0])


def test_a_flipped_shard_is_refused_by_read_verify_and_the_datamodule(store_copy, capsys):
    shard = store_copy / "shards" / "shard-00001.bin"
    flip_middle(shard)
    store = GraphStore(store_copy)
    store.read(in_shard(store, 0))  # an intact shard still reads
    with pytest.raises(StoreError) as err:
        store.read(in_shard(store, 1))
    msg = str(err.value)
    assert str(store_copy) in msg and "shard-00001.bin does not match its record" in msg and "\n" not in msg

    assert main(["data", "verify", str(store_copy)]) == 1
    out, errs = capsys.readouterr()
    assert "shard-00001.bin does not match its record" in out
    assert "shard-00000" not in out and "shard-00002" not in out
    assert "1 problem(s)" in errs

    with pytest.raises(StoreError, match="shard-00001.bin does not match"):
        GraphDataModule(str(store_copy), batch_size=4)


def test_a_missing_shard_is_named(store_copy, capsys):
    (store_copy / "shards" / "shard-00002.bin").unlink()
    with pytest.raises(StoreError, match="shard-00002.bin cannot be opened"):
        GraphStore(store_copy).verify()
    assert main(["data", "verify", str(store_copy)]) == 1
    assert "shard-00002.bin cannot be opened" in capsys.readouterr().out


def test_a_shard_is_hashed_once_per_process(store_copy):
    store = GraphStore(store_copy)
    i = in_shard(store, 1)
    store.read(i)
    flip_middle(store_copy / "shards" / "shard-00001.bin", n=1)  # after the check: not hashed again
    store.read(i)
    with pytest.raises(StoreError, match="does not match"):
        GraphStore(store_copy).read(i)


def test_rerunning_the_import_repairs_a_damaged_shard(derived_dir, store_copy, capsys):
    before = json.loads((store_copy / "manifest.json").read_text())["content_hash"]
    flip_middle(store_copy / "shards" / "shard-00001.bin")
    manifest = import_records([str(derived_dir)], store_copy, workers=1, chunk_size=16, progress=False)
    assert "shard-00001.bin does not match its record" in capsys.readouterr().err
    assert manifest["content_hash"] == before and manifest["n_materials"] == 40
    problems = main(["data", "verify", str(store_copy)])
    assert problems == 0 and "40 materials: ok" in capsys.readouterr().out
    store = GraphStore(store_copy)
    assert all(store.read(i)["eps"].shape == (2001, 2) for i in range(len(store)))


def test_a_rerun_through_the_cli_repairs_and_reports(derived_dir, store_copy, capsys):
    flip_middle(store_copy / "shards" / "shard-00000.bin")
    args = ["data", "import", str(derived_dir), "--out", str(store_copy), "--workers", "1", "--chunk-size", "16"]
    assert main([*args, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "rebuilding shard 0" in captured.err and "40 materials imported" in captured.out
    assert main(["data", "verify", str(store_copy)]) == 0


def rewrite_record(store_dir, i: int, edit) -> str:
    """Edit the blob of material i in place (`edit(blob: bytearray, n, e, p)`) and record the new sha256,
    as a buggy writer would have: the checksum matches, the content is bad. Returns the mat_id."""
    store = GraphStore(store_dir)
    k, off = int(store.shard[i]), int(store.offset[i])
    n, e = int(store.n_atoms[i]), int(store.n_edges[i])
    bin_path = store_dir / "shards" / f"shard-{k:05d}.bin"
    data = bytearray(bin_path.read_bytes())
    edit(data, off, n, e, store.points)
    bin_path.write_bytes(bytes(data))
    meta_path = bin_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    meta_path.write_text(json.dumps(meta))
    return str(store.mat_ids()[i])


def _nan_in_eps(data, off, n, e, p):
    eps_at = off + 4 * (3 * n + 9 + 2 * e + 3 * e)
    data[eps_at + 4 * 7 : eps_at + 4 * 8] = np.array([np.nan], "<f4").tobytes()


def _inf_drude(data, off, n, e, p):
    drude_at = off + 4 * (3 * n + 9 + 5 * e + 2 * p)
    data[drude_at : drude_at + 4] = np.array([np.inf], "<f4").tobytes()


def _edge_past_the_atoms(data, off, n, e, p):
    at = off + 4 * (3 * n + 9)
    data[at : at + 4] = np.array([n], "<i4").tobytes()


def _negative_edge(data, off, n, e, p):
    at = off + 4 * (3 * n + 9 + e + 2)
    data[at : at + 4] = np.array([-1], "<i4").tobytes()


@pytest.mark.parametrize(
    "edit, words",
    [
        (_nan_in_eps, "eps contains NaN or infinite values"),
        (_inf_drude, "drude contains NaN or infinite values"),
        (_edge_past_the_atoms, "edge_index holds atom indices"),
        (_negative_edge, "edge_index holds atom indices -1.."),
    ],
)
def test_bad_records_are_refused_naming_store_record_and_problem(store_copy, edit, words, capsys):
    i = 5
    mat_id = rewrite_record(store_copy, i, edit)
    with pytest.raises(StoreError) as err:
        GraphStore(store_copy).read(i)
    msg = str(err.value)
    assert msg.startswith(f"{store_copy}: record {i} ({mat_id}): ") and words in msg and "\n" not in msg
    GraphStore(store_copy).read(i + 1)  # the neighbours are fine
    assert main(["data", "verify", str(store_copy)]) == 1
    assert f"record {i} ({mat_id})" in capsys.readouterr().out

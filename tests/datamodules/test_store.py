"""The store: composition split, nested subsets, determinism, interrupted imports."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from datamodules.importer import import_records
from datamodules.store import GraphStore, StoreError


def test_no_composition_in_two_splits(derived_store):
    store = GraphStore(derived_store)
    formulas, split = store.formulas(), np.asarray(store.split)
    for f in set(formulas):
        assert len(set(split[formulas == f])) == 1, f
    counts = store.manifest["splits"]
    assert sum(counts.values()) == len(store) == 40
    assert counts["train"] >= 24 and counts["val"] > 0 and counts["test"] > 0


def test_subsets_are_nested_prefixes_of_the_train_split(derived_store):
    store = GraphStore(derived_store)
    train = set(store.indices("train").tolist())
    full = store.subset(None)
    assert set(full.tolist()) == train and len(full) == len(train)
    for small, large in [(3, 7), (7, 15), (15, len(train))]:
        assert np.array_equal(store.subset(small), store.subset(large)[:small])
    with pytest.raises(ValueError, match="outside"):
        store.subset(len(train) + 1)


def test_same_inputs_give_the_same_store_and_another_seed_another_split(derived_dir, derived_store, tmp_path):
    a = GraphStore(derived_store)
    import_records([str(derived_dir)], tmp_path / "again", workers=2, chunk_size=7, progress=False)
    b = GraphStore(tmp_path / "again")
    assert np.array_equal(a.subset(None), b.subset(None))
    assert np.array_equal(np.asarray(a.split), np.asarray(b.split))
    import_records([str(derived_dir)], tmp_path / "seed1", split_seed=1, workers=1, chunk_size=16, progress=False)
    c = GraphStore(tmp_path / "seed1")
    assert c.manifest["content_hash"] != a.manifest["content_hash"]
    assert not np.array_equal(np.asarray(a.split), np.asarray(c.split))


def test_rerun_with_other_settings_is_refused(derived_dir, derived_store):
    with pytest.raises(ValueError, match="differs in: grid"):
        import_records([str(derived_dir)], derived_store, grid_points=201, workers=1, chunk_size=16, progress=False)


@pytest.fixture(scope="module")
def many_records(derived_dir, tmp_path_factory):
    """200 records (the 40 derived ones, five times under new ids)."""
    out = tmp_path_factory.mktemp("many")
    for rep in range(5):
        for p in sorted(derived_dir.glob("*.json")):
            doc = json.loads(p.read_text())
            doc["data"]["mat_id"] += f"-r{rep}"
            (out / f"{doc['data']['mat_id']}.json").write_text(json.dumps(doc))
    return out


def test_interrupted_import_resumes_without_loss_or_duplicates(many_records, tmp_path):
    out = tmp_path / "s"
    cmd = [
        sys.executable,
        "-m",
        "experiments.cli",
        "data",
        "import",
        str(many_records),
        "--out",
        str(out),
        "--workers",
        "1",
        "--chunk-size",
        "5",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "shards" / "shard-00002.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists(), "the import finished before it could be interrupted"
    with pytest.raises(StoreError, match="interrupted"):
        GraphStore(out)
    done_before = sorted(os.listdir(out / "shards"))

    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    store = GraphStore(out)
    ids = store.mat_ids()
    assert len(ids) == len(set(ids)) == 200
    assert store.manifest["rejected"] == []
    # the shards finished before the kill were kept, not rebuilt
    assert set(f for f in done_before if f.endswith(".json")) <= set(os.listdir(out / "shards"))
    ref = tmp_path / "ref"
    import_records([str(many_records)], ref, workers=2, chunk_size=5, progress=False)
    assert GraphStore(ref).manifest["content_hash"] == store.manifest["content_hash"]


def test_store_is_readable_through_the_cli(derived_store, capsys):
    from experiments.cli import main

    assert main(["data", "ls", str(derived_store), "--split", "val"]) == 0
    val_ids = capsys.readouterr().out.split()
    store = GraphStore(derived_store)
    assert len(val_ids) == store.manifest["splits"]["val"]
    assert main(["data", "show", str(derived_store), val_ids[0], "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("mat_id", "formula", "split", "n_atoms", "n_edges", "n_triplets", "drude", "eps_re", "eps_im"):
        assert key in d
    assert d["split"] == "val" and len(d["eps_re"]) == len(d["eps_im"]) == 2001
    assert main(["data", "show", str(derived_store), "no-such-id"]) == 1
    assert "no-such-id is not in the store" in capsys.readouterr().err

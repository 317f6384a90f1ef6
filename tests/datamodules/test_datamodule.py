"""Batches, samplers and DDP-exact validation."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.datamodule import GraphDataModule, ShardSampler
from datamodules.graphs import triplets
from datamodules.store import GraphStore


def test_batches_concatenate_graphs_consistently(derived_store):
    dm = GraphDataModule(derived_store, D=10, batch_size=4, triplets=True)
    store = GraphStore(derived_store)
    batch = next(iter(dm.val_dataloader()))
    g = batch.num_graphs
    assert batch.y_eps.shape == (g, 2001, 2) and batch.y_drude.shape == (g,)
    assert torch.equal(batch.batch[batch.edge_index[0]], batch.batch[batch.edge_index[1]])
    n_trip = 0
    for k, i in enumerate(batch.idx.tolist()):
        rec = store.read(i)
        lo, hi = batch.ptr[k].item(), batch.ptr[k + 1].item()
        assert np.array_equal(batch.z[lo:hi].numpy(), rec["numbers"])
        j, c = rec["edge_index"].astype(int)
        vec = rec["pos"][j] + rec["edge_shift"] @ rec["lattice"] - rec["pos"][c]
        mask = (batch.batch[batch.edge_index[1]] == k).numpy()
        assert np.allclose(batch.edge_vec[mask].numpy(), vec, atol=1e-4)
        n_trip += triplets(rec["edge_index"].astype(np.int64), rec["edge_vec"]).shape[1]
    assert batch.triplet_index.shape[1] == n_trip
    e1, e2 = batch.triplet_index
    assert torch.equal(batch.edge_index[1, e1], batch.edge_index[1, e2])


def test_evaluation_shards_cover_every_material_once():
    for n, world in [(10, 3), (7, 2), (1, 2), (0, 2)]:
        seen = sorted(i for r in range(world) for i in ShardSampler(n, r, world))
        assert seen == list(range(n))


def test_training_shards_are_equal_and_reshuffled_each_epoch():
    samplers = [ShardSampler(11, r, 2, train=True, seed=5, batch_size=4) for r in range(2)]
    a = [list(s) for s in samplers]
    assert len(a[0]) == len(a[1]) == 6 and set(a[0] + a[1]) == set(range(11))
    for s in samplers:
        s.set_epoch(1)
    assert [list(s) for s in samplers] != a
    lone = ShardSampler(9, 0, 1, train=True, batch_size=4)  # 9 = 2 * 4 + 1: drop the lone graph
    assert len(list(lone)) == 8


def test_workers_stream_the_same_batches(derived_store):
    one = GraphDataModule(derived_store, batch_size=3, num_workers=0)
    two = GraphDataModule(derived_store, batch_size=3, num_workers=2)
    for a, b in zip(one.val_dataloader(), two.val_dataloader(), strict=True):
        assert torch.equal(a.idx, b.idx) and torch.equal(a.y_eps, b.y_eps)
    ids = torch.cat([b.idx for b in two.train_dataloader()])
    assert set(ids.tolist()) == set(one.subsets["train"].tolist())


@pytest.mark.slow
def test_validation_under_two_process_ddp_is_exact(surrogate_store, tmp_path):
    out = tmp_path / "ddp.json"
    script = Path(__file__).with_name("ddp_check.py")
    subprocess.run(
        [sys.executable, str(script), str(surrogate_store), str(out)],
        check=True,
        timeout=300,
        cwd=tmp_path,
        capture_output=True,
    )
    got = json.loads(out.read_text())
    store = GraphStore(surrogate_store)
    val = store.indices("val")
    assert got["world"] == 2
    assert sorted(got["ids"]) == sorted(val.tolist())  # each material once, no padded duplicates
    expected = np.mean([abs(float(store.read(i)["drude"][0]) - 3.0) for i in val])
    assert got["val_metric"] == pytest.approx(expected, rel=1e-6)

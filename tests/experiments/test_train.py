"""Training one grid point: configuration, run key, a complete MLflow run, resume, DDP exactness."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from datamodules.store import GraphStore
from experiments.training.config import load_config, resolve
from experiments.training.train import train

EPOCH_METRICS = ("train_loss", "val_loss", "val_loss_eps", "val_loss_drude", "lr")
CONTRACT_PARAMS = (
    "model",
    "width",
    "n_parameters",
    "D",
    "seed",
    "lr",
    "weight_decay",
    "data_hash",
    "grid_points",
    "grid_start",
    "grid_stop",
    "epochs",
    "batch_size",
)


def history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def n_params(model, width, points):
    from lightning_modules.optimetal import build_model

    return sum(p.numel() for p in build_model(model, width, points).parameters())


def test_defaults_are_the_reference_recipe(tmp_path):
    cfg = load_config({"data": "x", "model": "3b-tc", "width": 64, "seed": 1})
    assert (cfg.epochs, cfg.batch_size, cfg.warmup_epochs, cfg.gradient_clip) == (500, 256, 5, 100)
    assert (cfg.lr, cfg.weight_decay, cfg.w_spectral, cfg.w_drude) == (4e-4, 6e-4, 1.0, 1.0)
    assert load_config({"data": "x", "model": "2b-cgc", "width": 8, "seed": 1}).weight_decay == 8e-6
    assert load_config({"data": "x", "model": "2b-tc", "width": 8, "seed": 1, "epochs": "7"}).epochs == 7
    with pytest.raises(ValueError, match="unknown configuration keys"):
        load_config({"data": "x", "model": "2b-tc", "width": 8, "seed": 1, "learning_rate": 1})
    with pytest.raises(ValueError, match="unknown model"):
        load_config({"data": "x", "model": "4b", "width": 8, "seed": 1})
    with pytest.raises(ValueError, match="needs"):
        load_config({"data": "x", "model": "2b-tc"})
    with pytest.raises(ValueError, match="not a valid int"):
        load_config({"data": "x", "model": "2b-tc", "width": "wide", "seed": 1})


def test_learning_rate_scales_inversely_with_parameters_for_tc_models(tiny_config, store201, tmp_path):
    tc = resolve(load_config(tiny_config(store201, tmp_path)))
    assert tc["n_parameters"] == n_params("2b-tc", 16, 201)  # the model trained on this 201-point store
    # the width rule counts parameters on the reference's 2001-point grid (docs/reference.md, Models table),
    # whatever grid the store has: lr(16) = lr(256) * 8,140,195 / 278,275
    assert tc["n_parameters_reference"] == 8_140_195
    assert tc["lr"] == pytest.approx(6e-4 * 8_140_195 / 278_275, rel=1e-12)
    assert resolve(load_config(tiny_config(store201, tmp_path, width=256)))["lr"] == pytest.approx(6e-4)
    cgc = resolve(load_config(tiny_config(store201, tmp_path, model="2b-cgc")))
    assert cgc["lr"] == 1e-3  # CGC: no width scaling
    assert tc["precision"] == "32-true"  # auto on a CPU-only run


def test_run_key_depends_on_grid_point_data_and_recipe_only(tiny_config, store201, surrogate_store, tmp_path):
    def key(workdir=tmp_path, **kw):
        return resolve(load_config(tiny_config(store201, workdir, **kw)))["run_key"]

    base = key()
    assert base == key(tmp_path / "elsewhere", devices=2, strategy="ddp", num_workers=1, accelerator="cpu")
    assert base == key(threads=1) == key(threads=3)  # execution only
    assert resolve(load_config(tiny_config(store201, tmp_path, threads=3)))["threads"] == 3
    assert resolve(load_config(tiny_config(store201, tmp_path)))["threads"] == torch.get_num_threads()  # auto
    assert base == key(D=32)  # D omitted = the whole train split (32 materials)
    changed = [{"seed": 2}, {"D": 16}, {"width": 32}, {"model": "2b-cgc"}, {"epochs": 3}, {"w_drude": 0.5}]
    keys = {key(**c) for c in changed} | {key(data=str(surrogate_store))}
    assert base not in keys and len(keys) == len(changed) + 1


def test_two_epoch_training_lowers_the_loss_and_writes_a_complete_run(trained, store201, tmp_path):
    result, uri, cfg = trained
    client = MlflowClient(uri)
    run = client.get_run(result["run_id"])
    assert result["status"] == "finished" and run.info.status == "FINISHED"
    assert run.data.tags["run_key"] == result["run_key"] and run.data.tags["optiscale.status"] == "finished"
    assert run.data.tags["sweep"] == "unit-tests" and run.info.run_name == "2b-tc-w16-D32-s1"
    p = run.data.params
    assert set(CONTRACT_PARAMS) <= set(p)
    manifest = json.loads((Path(store201) / "manifest.json").read_text())
    assert (p["model"], p["width"], p["D"], p["seed"], p["epochs"]) == ("2b-tc", "16", "32", "1", "2")
    assert (p["grid_points"], p["data_hash"]) == ("201", manifest["content_hash"])
    assert int(p["n_parameters"]) == result["n_parameters"] == n_params("2b-tc", 16, 201)
    assert p["workdir"] == cfg["workdir"] and p["precision"] == "32-true"

    for key in EPOCH_METRICS:
        assert [s for s, _ in history(client, run.info.run_id, key)] == [0, 1], key
    train_loss = [v for _, v in history(client, run.info.run_id, "train_loss")]
    assert train_loss[1] < train_loss[0]
    val = dict(history(client, run.info.run_id, "val_loss"))
    parts = [history(client, run.info.run_id, f"val_loss_{k}") for k in ("eps", "drude")]
    for (s, e), (_, d) in zip(*parts, strict=True):
        assert val[s] == pytest.approx(e + d, rel=1e-6)  # loss weights 1 and 1
    # 4 steps per epoch, warm-up round(0.5 * 4) = 2 steps, then cosine over the remaining 6
    lr = float(p["lr"])
    lrs = [v for _, v in history(client, run.info.run_id, "lr")]
    assert lrs == pytest.approx([lr * 0.5 * (1 + math.cos(math.pi * 2 / 6)), 0.0], rel=1e-9, abs=1e-12)

    m = run.data.metrics
    assert m["best_val_loss"] == pytest.approx(min(val.values()), rel=1e-9) == result["best_val_loss"]
    assert m["best_epoch"] == min(val, key=val.get)
    for name in ("loss", "mae_re", "mae_im", "r2_re", "r2_im", "sc_re", "sc_im", "drude_abs_err", "delta_e"):
        assert math.isfinite(m[f"test_{name}"]) and m[f"test_{name}"] == pytest.approx(result["test"][f"test_{name}"])

    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "checkpoints",
        "config.yaml",
        "test_materials.csv",
    }
    table = list(csv.DictReader(open(client.download_artifacts(run.info.run_id, "test_materials.csv", str(tmp_path)))))
    store = GraphStore(store201)
    assert sorted(r["mat_id"] for r in table) == sorted(store.mat_ids()[store.indices("test")])
    for name in ("mae_re", "sc_im", "delta_e"):  # the logged means are means over these rows
        assert m[f"test_{name}"] == pytest.approx(np.mean([float(r[name]) for r in table]), rel=1e-6)
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.ckpt"]
    local = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
    config = yaml.safe_load(Path(local).read_text())
    assert config["run_key"] == result["run_key"] and str(config["lr"]) == p["lr"]
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.artifact_location == (Path(uri[len("sqlite:///") :]).parent / "artifacts").as_uri()


class Crash(L.Callback):
    """Simulates a crash at the end of epoch `epoch`, just before that epoch's checkpoint."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_an_interrupted_grid_point_resumes_into_the_same_run(tiny_config, store201, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tiny_config(store201, tmp_path / "work", epochs=3, seed=7)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, extra_callbacks=[Crash(1)], tracking_uri=uri)
    client = MlflowClient(uri)
    run_id = json.loads((tmp_path / "work" / "state.json").read_text())["run_id"]
    assert client.get_run(run_id).info.status == "FAILED"
    before = history(client, run_id, "val_loss")
    assert [s for s, _ in before] == [0, 1]

    result = train(cfg, tracking_uri=uri)
    assert result["status"] == "resumed" and result["run_id"] == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    for key in EPOCH_METRICS:
        assert [s for s, _ in history(client, run_id, key)] == [0, 1, 2], key  # no epoch logged twice
    assert history(client, run_id, "val_loss")[:2] == before
    lr = float(client.get_run(run_id).data.params["lr"])  # schedule continued: 12 steps, 2 of warm-up
    expected = [lr * 0.5 * (1 + math.cos(math.pi * k / 10)) for k in (2, 6, 10)]
    assert [v for _, v in history(client, run_id, "lr")] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    runs = client.search_runs([client.get_run(run_id).info.experiment_id], f"tags.run_key = '{result['run_key']}'")
    assert [r.info.run_id for r in runs] == [run_id]

    again = train(cfg, tracking_uri=uri)
    assert again["status"] == "skipped" and again["run_id"] == run_id
    assert again["best_val_loss"] == result["best_val_loss"]
    assert Path(again["best_checkpoint"]).is_file()  # the artifact copy in the MLflow store
    other = f"sqlite:///{tmp_path / 'other.db'}"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train({**cfg, "seed": 8}, extra_callbacks=[Crash(1)], tracking_uri=uri)
    for wrong in ({"seed": 8, "tracking_uri": other}, {"seed": 9, "tracking_uri": uri}):
        with pytest.raises(ValueError, match="holds an unfinished run of grid point"):  # never discard them
            train({**cfg, "seed": wrong["seed"]}, tracking_uri=wrong["tracking_uri"])


@pytest.mark.slow
def test_two_process_ddp_is_one_run_with_the_single_process_validation_loss(store201, tmp_path, ddp_train):
    from datamodules.datamodule import GraphDataModule
    from lightning_modules.module import SpectraModule

    result, uri = ddp_train(store201, tmp_path)
    client = MlflowClient(uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["devices"] == "2"
    exp_id = run.info.experiment_id
    assert len(client.search_runs([exp_id])) == 1  # rank 1 logged nothing of its own
    for key in EPOCH_METRICS:
        assert [s for s, _ in history(client, run.info.run_id, key)] == [0, 1], key
    table = client.download_artifacts(run.info.run_id, "test_materials.csv", str(tmp_path))
    n_test = GraphStore(store201).indices("test").size
    assert len(open(table).read().splitlines()) == 1 + n_test  # both ranks' test materials, each once

    # the same weights validated by one process, with another batching: the same loss
    module = SpectraModule.load_from_checkpoint(result["best_checkpoint"], map_location="cpu")
    dm = GraphDataModule(store201, D=32, batch_size=3)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    single = trainer.validate(module, datamodule=dm, verbose=False)[0]["val_loss"]
    assert result["best_val_loss"] == pytest.approx(single, rel=1e-6)


class ScriptedLoss(L.LightningModule):
    """val_loss = 1, 2, 3, ...: every epoch after the first is worse than the best."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, _):
        return (self.w - batch[0]).abs().sum()

    def validation_step(self, batch, _):
        self.log("val_loss", float(self.current_epoch + 1) + 0 * self.w.sum().item(), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 1)), batch_size=2)

    val_dataloader = train_dataloader


def test_last_checkpoint_follows_every_epoch_even_without_improvement(tmp_path):
    from experiments.training.callbacks import checkpoint_callbacks

    best, last = checkpoint_callbacks(tmp_path)
    trainer = L.Trainer(
        max_epochs=3, callbacks=[best, last], logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(ScriptedLoss())
    load = lambda name: torch.load(tmp_path / name, weights_only=False)  # noqa: E731
    assert load("best.ckpt")["epoch"] == 0 and best.best_model_score == 1.0
    assert load("last.ckpt")["epoch"] == 2  # a resume repeats no finished epoch
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]


def test_training_on_a_damaged_store_fails_naming_the_shard(tiny_config, store201, tmp_path):
    import shutil

    from datamodules.store import StoreError

    store = tmp_path / "store"
    shutil.copytree(store201, store)
    shard = store / "shards" / "shard-00001.bin"
    data = bytearray(shard.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    shard.write_bytes(bytes(data))
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    with pytest.raises(StoreError, match=r"shard-00001\.bin does not match its record"):
        train(tiny_config(store, tmp_path / "work"), tracking_uri=uri, experiment="damaged")


def test_a_fixed_steps_recipe_takes_the_same_optimiser_steps_at_every_D(tiny_config, store201, tmp_path):
    """max_steps: 6 optimiser steps at D = 8 (1 batch of 8 per epoch: 6 epochs) and at D = 32 (4 batches
    per epoch: 2 epochs, the last cut short); its run keys differ from the fixed-epochs ones."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    steps, keys = {}, set()
    for D in (8, 32):
        cfg = load_config(tiny_config(store201, tmp_path / f"w{D}", D=D, width=8, max_steps=6))
        resolved = resolve(cfg)
        assert resolved["epochs"] == {8: 6, 32: 2}[D]  # by hand: ceil(6 / ceil(D / 8))
        result = train(cfg, tracking_uri=uri, experiment="steps")
        ckpt = torch.load(Path(resolved["workdir"]) / "last.ckpt", map_location="cpu", weights_only=False)
        steps[D] = ckpt["global_step"]
        keys.add(result["run_key"])
        keys.add(resolve(load_config(tiny_config(store201, tmp_path / f"e{D}", D=D, width=8)))["run_key"])
    assert steps == {8: 6, 32: 6}
    assert len(keys) == 4  # fixed-steps and fixed-epochs points never share a key


def test_early_stopping_ends_a_run_whose_val_loss_stopped_improving(tiny_config, store201, tmp_path):
    """early_stop_patience: 2 epochs without a new best val_loss end the run (D = 8 overfits within
    40 epochs at lr 0.05); the best checkpoint is the epoch two before the last, and the key differs."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    over = dict(D=8, width=8, epochs=40, lr=0.05, early_stop_patience=2)
    cfg = load_config(tiny_config(store201, tmp_path / "es", **over))
    result = train(cfg, tracking_uri=uri, experiment="es")
    workdir = Path(resolve(cfg)["workdir"])
    last = torch.load(workdir / "last.ckpt", map_location="cpu", weights_only=False)["epoch"]
    best = torch.load(workdir / "best.ckpt", map_location="cpu", weights_only=False)["epoch"]
    assert last < 39, "the run never stopped early"
    assert best == last - 2  # by the rule: the two epochs after the best did not improve on it
    plain = resolve(load_config(tiny_config(store201, tmp_path / "plain", **{**over, "early_stop_patience": None})))
    assert result["run_key"] != plain["run_key"]

"""Training one grid point: configuration, run key, a complete MLflow run, resume, DDP exactness."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import yaml
from mlflow.tracking import MlflowClient

from experiments.config import load_config, resolve
from experiments.train import train

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
    n16, n256 = n_params("2b-tc", 16, 201), n_params("2b-tc", 256, 201)
    assert tc["n_parameters"] == n16 and tc["n_parameters_reference"] == n256
    assert tc["lr"] == pytest.approx(6e-4 * n256 / n16, rel=1e-12)
    assert resolve(load_config(tiny_config(store201, tmp_path, width=256)))["lr"] == pytest.approx(6e-4)
    cgc = resolve(load_config(tiny_config(store201, tmp_path, model="2b-cgc")))
    assert cgc["lr"] == 1e-3  # CGC: no width scaling
    assert tc["precision"] == "32-true"  # auto on a CPU-only run


def test_run_key_depends_on_grid_point_data_and_recipe_only(tiny_config, store201, derived_store, tmp_path):
    def key(workdir=tmp_path, **kw):
        return resolve(load_config(tiny_config(store201, workdir, **kw)))["run_key"]

    base = key()
    assert base == key(tmp_path / "elsewhere", devices=2, strategy="ddp", num_workers=1, accelerator="cpu")
    assert base == key(D=32)  # D omitted = the whole train split (32 materials)
    changed = [{"seed": 2}, {"D": 16}, {"width": 32}, {"model": "2b-cgc"}, {"epochs": 3}, {"w_drude": 0.5}]
    keys = {key(**c) for c in changed} | {key(data=str(derived_store))}
    assert base not in keys and len(keys) == len(changed) + 1


def test_two_epoch_training_lowers_the_loss_and_writes_a_complete_run(trained, store201, tmp_path):
    result, uri, cfg = trained
    client = MlflowClient(uri)
    run = client.get_run(result["run_id"])
    assert result["status"] == "finished" and run.info.status == "FINISHED"
    assert run.data.tags["run_key"] == result["run_key"] and run.data.tags["optiscale.status"] == "finished"
    p = run.data.params
    assert set(CONTRACT_PARAMS) <= set(p)
    manifest = json.loads((Path(store201) / "manifest.json").read_text())
    assert (p["model"], p["width"], p["D"], p["seed"], p["epochs"]) == ("2b-tc", "16", "32", "1", "2")
    assert (p["grid_points"], p["data_hash"]) == ("201", manifest["content_hash"])
    assert int(p["n_parameters"]) == result["n_parameters"] == n_params("2b-tc", 16, 201)

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

    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"checkpoints", "config.yaml"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.ckpt"]
    local = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
    config = yaml.safe_load(Path(local).read_text())
    assert config["run_key"] == result["run_key"] and str(config["lr"]) == p["lr"]
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.artifact_location == (Path(uri[len("sqlite:///") :]).parent / "artifacts").as_uri()


class Crash(L.Callback):
    """Simulates a crash at the end of epoch `epoch` (after its checkpoint)."""

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
    runs = client.search_runs([client.get_run(run_id).info.experiment_id], f"tags.run_key = '{result['run_key']}'")
    assert [r.info.run_id for r in runs] == [run_id]

    again = train(cfg, tracking_uri=uri)
    assert again["status"] == "skipped" and again["run_id"] == run_id
    assert again["best_val_loss"] == result["best_val_loss"]


@pytest.mark.slow
def test_two_process_ddp_is_one_run_with_the_single_process_validation_loss(store201, tmp_path):
    from datamodules.datamodule import GraphDataModule
    from lightning_modules.module import SpectraModule

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "result.json"
    args = ["--data", str(store201), "--model", "2b-tc", "--width", "16", "--seed", "3", "--epochs", "2"]
    args += ["--batch-size", "8", "--set", "warmup_epochs=0.5", "--accelerator", "cpu", "--devices", "2"]
    args += ["--strategy", "ddp", "--tracking-uri", uri, "--workdir", str(tmp_path / "work"), "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "train", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    client = MlflowClient(uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["devices"] == "2"
    exp_id = run.info.experiment_id
    assert len(client.search_runs([exp_id])) == 1  # rank 1 logged nothing of its own
    for key in EPOCH_METRICS:
        assert [s for s, _ in history(client, run.info.run_id, key)] == [0, 1], key

    # the same weights validated by one process, with another batching: the same loss
    module = SpectraModule.load_from_checkpoint(result["best_checkpoint"], map_location="cpu")
    dm = GraphDataModule(store201, D=32, batch_size=3)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)
    single = trainer.validate(module, datamodule=dm, verbose=False)[0]["val_loss"]
    assert result["best_val_loss"] == pytest.approx(single, rel=1e-6)

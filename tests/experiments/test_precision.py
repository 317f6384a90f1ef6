"""Every precision the recipe can choose trains through a real Lightning Trainer (fused AdamW + clipping),
and so do the other switches a GPU run takes by default (compile, DataLoader workers). They train on the
built-in surrogate, so they run where the real sample records are absent (CI) too."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from mlflow.tracking import MlflowClient

from experiments.training.train import train


class GradNorms(L.Callback):
    """The global gradient norm the optimiser stepped with (read before the next step's zero_grad)."""

    def __init__(self):
        self.norms: list[float] = []

    def on_before_zero_grad(self, trainer, pl_module, optimizer):
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads:
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))


class CrashAfter(L.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated crash")


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_each_precision_trains_with_the_fused_optimiser_and_clips(precision, tiny_config, surrogate_store, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    norms = GradNorms()
    cfg = tiny_config(surrogate_store, tmp_path / "work", precision=precision, gradient_clip=1e-3, accelerator="cpu")
    result = train(cfg, extra_callbacks=[norms], tracking_uri=uri)
    assert result["status"] == "finished" and math.isfinite(result["best_val_loss"])
    assert (tmp_path / "work" / "best.ckpt").is_file() and (tmp_path / "work" / "last.ckpt").is_file()
    run = MlflowClient(uri).get_run(result["run_id"])
    assert run.data.params["precision"] == precision
    assert len(norms.norms) >= 4
    assert max(norms.norms) == pytest.approx(1e-3, rel=1e-3)  # every step clipped to the recipe's norm
    rates = MlflowClient(uri).get_metric_history(result["run_id"], "graphs_per_s")
    assert [m.step for m in rates] == [0, 1] and all(m.value > 0 for m in rates)


def test_a_compiled_run_trains_and_checkpoints_the_plain_model(tiny_config, surrogate_store, tmp_path):
    from lightning_modules.module import SpectraModule

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tiny_config(surrogate_store, tmp_path / "work", model="2b-cgc", compile="true", epochs=1, accelerator="cpu")
    result = train(cfg, tracking_uri=uri)
    assert result["status"] == "finished" and math.isfinite(result["best_val_loss"])
    assert MlflowClient(uri).get_run(result["run_id"]).data.params["compile"] == "True"
    state = torch.load(tmp_path / "work" / "best.ckpt", weights_only=False)["state_dict"]
    assert all(k.startswith(("model.", "means.", "per_material.")) for k in state), sorted(state)[:5]
    SpectraModule.load_from_checkpoint(tmp_path / "work" / "best.ckpt", map_location="cpu")


def test_dataloader_workers_train_as_on_a_gpu(tiny_config, surrogate_store, tmp_path):
    """A GPU run's loaders by default: worker processes, persistent, batches prefetched."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tiny_config(surrogate_store, tmp_path / "work", num_workers=2, precision="bf16-mixed", accelerator="cpu")
    result = train(cfg, tracking_uri=uri)
    assert result["status"] == "finished" and math.isfinite(result["best_val_loss"])
    assert math.isfinite(result["test"]["test_loss"])
    steps = [m.step for m in MlflowClient(uri).get_metric_history(result["run_id"], "val_loss")]
    assert steps == [0, 1]


@pytest.mark.slow
def test_the_gpu_default_recipe_trains_on_a_cpu(tiny_config, surrogate_store, tmp_path):
    """What `auto` resolves to on a GPU for 2B-TC, all at once: bf16 autocast, the compiled model
    and DataLoader workers (about a minute on 2 cores, most of it compiling)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    over = {"precision": "bf16-mixed", "compile": "true", "num_workers": 2, "accelerator": "cpu"}
    result = train(tiny_config(surrogate_store, tmp_path / "work", **over), tracking_uri=uri)
    assert result["status"] == "finished" and math.isfinite(result["best_val_loss"])
    params = MlflowClient(uri).get_run(result["run_id"]).data.params
    assert (params["precision"], params["compile"]) == ("bf16-mixed", "True")


def test_a_precision_with_a_loss_scaler_is_refused_before_any_run(tiny_config, surrogate_store, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ValueError, match="precision: '16-mixed' is not one of"):
        train(tiny_config(surrogate_store, tmp_path / "work", precision="16-mixed"), tracking_uri=uri)
    assert not (tmp_path / "work").exists()


def test_bf16_resumes_into_the_same_run(tiny_config, surrogate_store, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = tiny_config(surrogate_store, tmp_path / "work", precision="bf16-mixed", epochs=3, accelerator="cpu")
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(cfg, extra_callbacks=[CrashAfter()], tracking_uri=uri)
    result = train(cfg, tracking_uri=uri)
    assert result["status"] == "resumed" and math.isfinite(result["best_val_loss"])
    steps = [m.step for m in MlflowClient(uri).get_metric_history(result["run_id"], "train_loss")]
    assert sorted(steps) == [0, 1, 2]


def test_two_process_ddp_under_bf16_mixed(surrogate_store, tmp_path, ddp_train):
    result, uri = ddp_train(surrogate_store, tmp_path, "--set", "precision=bf16-mixed")
    assert result["status"] == "finished" and math.isfinite(result["best_val_loss"])
    assert (tmp_path / "work" / "best.ckpt").is_file()
    run = MlflowClient(uri).get_run(result["run_id"])
    assert run.data.params["precision"] == "bf16-mixed" and run.data.params["devices"] == "2"


def test_execution_switches_resolve_per_device_and_refuse_nonsense():
    from experiments.training.config import resolve_compile, resolve_num_workers

    assert resolve_num_workers("auto", "cpu") == 0  # collate beside the step costs more than it saves on 2 cores
    assert resolve_num_workers("3", "cpu") == 3
    assert resolve_compile("auto", "cpu", "2b-tc") is False
    assert resolve_compile("true", "cpu", "3b-tc") is True and resolve_compile("false", "gpu", "2b-tc") is False
    for bad, match in (("-1", "num_workers: -1 is negative"), ("many", "num_workers: 'many' is not 'auto'")):
        with pytest.raises(ValueError, match=match):
            resolve_num_workers(bad, "cpu")
    with pytest.raises(ValueError, match="compile: 'maybe' is not auto, true or false"):
        resolve_compile("maybe", "cpu", "2b-tc")

"""A kill between an epoch's checkpoint and Lightning's logging of that epoch loses no metric."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.callbacks import Checkpoint
from mlflow.tracking import MlflowClient

from experiments.training.train import train

EPOCH_METRICS = ("train_loss", "lr", "graphs_per_s", "val_loss", "val_loss_eps", "val_loss_drude")


class KillAfterCheckpoint(Checkpoint):
    """Raises at the end of epoch `epoch` just after train's best/last checkpoints of it are written.

    Lightning runs Checkpoint callbacks after the LightningModule's on_train_epoch_end, in list
    order; this one comes after train's. Lightning logs the epoch's training metrics after them.
    """

    def __init__(self, epoch: int, workdir):
        self.epoch, self.workdir = epoch, workdir

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            assert torch.load(self.workdir / "last.ckpt", weights_only=False)["epoch"] == self.epoch
            raise RuntimeError("killed after the checkpoint")


def test_a_kill_right_after_the_checkpoint_keeps_every_epochs_metrics(tiny_config, store201, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    work = tmp_path / "work"
    cfg = tiny_config(store201, work, epochs=3, seed=5)
    with pytest.raises(RuntimeError, match="killed after the checkpoint"):
        train(cfg, extra_callbacks=[KillAfterCheckpoint(1, work)], tracking_uri=uri)
    run_id = json.loads((work / "state.json").read_text())["run_id"]

    result = train(cfg, tracking_uri=uri)  # resumes after epoch 1: epoch 1 is not trained again
    assert result["status"] == "resumed" and result["run_id"] == run_id
    client = MlflowClient(uri)
    for key in EPOCH_METRICS:
        steps = sorted(m.step for m in client.get_metric_history(run_id, key))
        assert steps == [0, 1, 2], key  # each epoch exactly once

    # The Dataset column: the training subset is recorded once, not again on resume.
    from datamodules.store import GraphStore

    run = client.get_run(run_id)
    inputs = run.inputs.dataset_inputs
    d = int(run.data.params["D"])
    content_hash = GraphStore(store201).manifest["content_hash"]
    assert len(inputs) == 1
    assert inputs[0].dataset.name == f"{store201.name}-D{d}"
    assert inputs[0].dataset.digest == f"{content_hash[: 36 - len(f'-D{d}')]}-D{d}"
    assert json.loads(inputs[0].dataset.source)["uri"] == str(store201.resolve())
    assert [(t.key, t.value) for t in inputs[0].tags] == [("mlflow.data.context", "training")]

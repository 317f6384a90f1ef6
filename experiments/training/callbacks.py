"""The callbacks of a training run: per-epoch printout, and the order of logging and checkpointing."""

from __future__ import annotations

import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback, Checkpoint, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only


class EpochPrinter(Callback):
    """One line per epoch on rank 0: losses and the epoch's wall time."""

    def on_train_epoch_start(self, trainer, pl_module):
        self.t0 = time.perf_counter()

    @rank_zero_only
    def on_train_epoch_end(self, trainer, pl_module):
        m = trainer.callback_metrics
        parts = [f"{k} {float(m[k]):.5g}" for k in ("train_loss", "val_loss") if k in m]
        dt = time.perf_counter() - getattr(self, "t0", time.perf_counter())
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}  {'  '.join(parts)}  ({dt:.1f} s)", flush=True)


class LogBeforeCheckpoint(Checkpoint):
    """Hands the epoch's training metrics (train_loss, lr, graphs_per_s) to the logger before the
    epoch's checkpoints are written.

    Lightning saves them (Checkpoint callbacks, after LightningModule.on_train_epoch_end) and only
    then logs the epoch's training metrics: a kill in between resumed after that epoch without
    them. Being a Checkpoint, this runs among the checkpoint callbacks, in list order, i.e. first.
    RunLogger drops Lightning's second logging of the same (metric, epoch).
    """

    def on_train_epoch_end(self, trainer, pl_module):
        connector = trainer._logger_connector  # the values Lightning is about to log (no public API)
        metrics = connector.metrics["log"]  # computed on every rank: DDP-synced metrics are collective
        connector.log_metrics(metrics)  # a no-op on ranks without a logger


def checkpoint_callbacks(workdir: Path) -> tuple[ModelCheckpoint, ModelCheckpoint]:
    """best.ckpt (lowest val_loss) and last.ckpt (rewritten after every epoch).

    A separate callback for last.ckpt: since Lightning 2.6 `save_last=True` rewrites it only when
    a top-k checkpoint is saved too, i.e. only on improvement, so a resume would repeat every
    epoch since the best one. The best callback comes first: last.ckpt then holds its updated state.
    """
    common: dict = dict(dirpath=workdir, save_top_k=1, enable_version_counter=False)
    best = ModelCheckpoint(filename="best", monitor="val_loss", mode="min", **common)
    last = ModelCheckpoint(filename="last", monitor=None, every_n_epochs=1, **common)
    return best, last


def early_stopping(patience: int | None) -> list[Callback]:
    """[EarlyStopping on val_loss] for a recipe trained to convergence, else []. Its counter is saved
    in last.ckpt, so a resumed run stops where the uninterrupted one would."""
    if patience is None:
        return []
    from lightning.pytorch.callbacks import EarlyStopping

    return [EarlyStopping(monitor="val_loss", mode="min", patience=patience, check_finite=True)]

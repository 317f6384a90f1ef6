"""Run by test_datamodule.py: validate under a 2-process CPU DDP and record what each rank saw.

usage: python ddp_check.py STORE OUT.json
"""

import json
import sys

import lightning as L
import torch
from torchmetrics import CatMetric, MeanMetric

from datamodules.datamodule import GraphDataModule


class Probe(L.LightningModule):
    """A per-material metric |drude - 3| aggregated as a global mean, and the ids seen."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.metric, self.seen = MeanMetric(), CatMetric()

    def validation_step(self, batch, _):
        self.metric.update((batch.y_drude - 3.0).abs())
        self.seen.update(batch.idx.double())
        self.log("val_metric", self.metric, batch_size=batch.num_graphs)

    def on_validation_epoch_end(self):
        self.ids = self.seen.compute().long().tolist()


if __name__ == "__main__":
    store, out = sys.argv[1], sys.argv[2]
    dm = GraphDataModule(store, batch_size=2)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        use_distributed_sampler=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    probe = Probe()
    metrics = trainer.validate(probe, datamodule=dm, verbose=False)
    if trainer.global_rank == 0:
        json.dump(
            {"val_metric": metrics[0]["val_metric"], "ids": probe.ids, "world": trainer.world_size}, open(out, "w")
        )

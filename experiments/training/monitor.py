"""Per-epoch throughput of a training run, logged to MLflow beside the losses.

`graphs_per_s`: training graphs per second of wall time over the epoch (all ranks), so a run that
starves its GPU shows it in the UI. On CUDA also `gpu_mem_peak_gb` (peak allocated by torch this
epoch) and `gpu_util` (mean of NVML's utilisation samples taken every few batches; absent where
NVML cannot be read).
"""

from __future__ import annotations

import time

import torch
from lightning.pytorch.callbacks import Callback

SAMPLE_EVERY = 10  # batches between utilisation samples


def _gpu_util(device: torch.device) -> float | None:
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # no NVML bindings (nvidia-ml-py) or no permission: the metric is left out
        return None


class ThroughputMonitor(Callback):
    def __init__(self):
        self._t0, self._graphs, self._util = 0.0, 0, []

    def on_train_epoch_start(self, trainer, pl_module):
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        self._t0, self._graphs, self._util = time.perf_counter(), 0, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._graphs += int(batch.num_graphs)
        if pl_module.device.type == "cuda" and batch_idx % SAMPLE_EVERY == 0:
            util = _gpu_util(pl_module.device)
            if util is not None:
                self._util.append(util)

    def on_train_epoch_end(self, trainer, pl_module):
        seconds = max(time.perf_counter() - self._t0, 1e-9)
        rate = self._graphs * trainer.world_size / seconds  # ranks step in lockstep on equal shares
        metrics = {"graphs_per_s": rate}
        if pl_module.device.type == "cuda":
            metrics["gpu_mem_peak_gb"] = torch.cuda.max_memory_allocated(pl_module.device) / 2**30
            if self._util:
                metrics["gpu_util"] = sum(self._util) / len(self._util)
        for name, value in metrics.items():
            pl_module.log(name, float(value), on_step=False, on_epoch=True, batch_size=1)

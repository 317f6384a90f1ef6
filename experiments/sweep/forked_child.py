"""What a forked point process runs (imported once by the fork server: the heavy imports live here)."""

from __future__ import annotations

import lightning  # noqa: F401  (preloaded by the fork server)
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (~1 s of a skipped point when imported late)
import torch
import torch_geometric  # noqa: F401

import mlflow  # noqa: F401
from datamodules.atomic import atomic_write_json
from experiments.training.allocator import tune_malloc
from experiments.training.train import train


def train_point(config: dict, tracking_uri: str, experiment: str, tags: dict, threads: int | None, out: str) -> None:
    """Train one grid point and write its result (or its error, in one line) to `out`."""
    tune_malloc()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        result = train(config, tracking_uri=tracking_uri, experiment=experiment, tags=tags)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        result = {"error": f"{type(err).__name__}: {err}"}
    atomic_write_json(out, result)


def cuda_probe() -> None:
    """Exit 0 where CUDA is absent or works in this forked process, 1 where it fails."""
    import sys

    if torch.cuda.is_available():
        try:
            torch.zeros(1, device="cuda").sum().item()
        except Exception as err:  # "CUDA error: initialization error" after a CUDA call in the server
            print(f"[sweep] CUDA fails in forked processes ({str(err).splitlines()[0]})", flush=True)
            sys.exit(1)

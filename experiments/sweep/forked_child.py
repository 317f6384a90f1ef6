"""What a forked point process runs (imported once by the fork server: the heavy imports live here)."""

from __future__ import annotations

import os

from experiments.training.quiet import quiet

quiet()  # before the imports below create Lightning's and MLflow's loggers; forked points inherit it


def _cuda_driver_loaded() -> bool:
    """Whether libcuda is mapped into this process: only a call into the CUDA driver loads it, and a
    process forked after that cannot use CUDA."""
    try:
        with open(f"/proc/{os.getpid()}/maps") as fh:
            return "libcuda.so" in fh.read()
    except OSError:
        return False


# The heavy imports, one by one, noting the first after which the CUDA driver is loaded: on the
# H200 some import of the server initialised CUDA and every forked point failed; the probe names it.
CUDA_LOADED_BY = None
for _name in ("torch", "torch_geometric", "lightning", "mlflow", "mlflow.store.tracking.sqlalchemy_store"):
    __import__(_name)
    if CUDA_LOADED_BY is None and _cuda_driver_loaded():
        CUDA_LOADED_BY = f"import {_name}"

import torch  # noqa: E402

from datamodules.atomic import atomic_write_json  # noqa: E402
from experiments.training.allocator import tune_malloc  # noqa: E402
from experiments.training.errors import error_line  # noqa: E402
from experiments.training.train import train  # noqa: E402

if CUDA_LOADED_BY is None and _cuda_driver_loaded():
    CUDA_LOADED_BY = "import experiments.training.train"


def train_in_process(config: dict, tracking_uri: str, experiment: str, tags: dict, threads: int | None) -> dict:
    """Train one grid point in this process: its result, or its error in one line."""
    tune_malloc()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return train(config, tracking_uri=tracking_uri, experiment=experiment, tags=tags)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        return {"error": error_line(err, with_type=True)}
    finally:
        if torch.cuda.is_initialized():  # a resident process keeps its context, not the point's cache
            torch.cuda.empty_cache()


def train_point(config: dict, tracking_uri: str, experiment: str, tags: dict, threads: int | None, out: str) -> None:
    """Train one grid point (a forked process) and write its result to `out`."""
    atomic_write_json(out, train_in_process(config, tracking_uri, experiment, tags, threads))


def cuda_probe() -> None:
    """Exit 0 where CUDA is absent or works in this forked process, 1 where it fails."""
    import sys

    if torch.cuda.is_available():
        try:
            torch.zeros(1, device="cuda").sum().item()
        except Exception as err:  # "CUDA error: initialization error" after a CUDA call in the server
            where = f"; the fork server loaded the CUDA driver at {CUDA_LOADED_BY}" if CUDA_LOADED_BY else ""
            print(f"[sweep] CUDA fails in forked processes ({str(err).splitlines()[0]}{where})", flush=True)
            sys.exit(1)

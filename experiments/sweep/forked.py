"""Grid points trained in processes forked from a warm server: isolation without the start-up cost.

`optiscale train` in a fresh subprocess pays its imports (torch, Lightning, PyG, MLflow: ~5 s on a
2-core CPU, 20-30 s per point on the GPU machine with the store, MLflow and CUDA set-up) for every
grid point, and ~26 s even to skip a finished one. Here each sweep worker starts one
`multiprocessing` fork server that imports all of that once; every point is a fresh process forked
from it, so a crash, a leak or a CUDA error stays with its point, as with a subprocess, and its
memory is returned when it ends. The fork server itself never touches CUDA or MLflow (it only
imports), so forking from it is safe.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile

PRELOAD = ["experiments.sweep.forked_child"]
_CTX = None


def context():
    """The fork-server context (one server per worker process, started on first use).

    The server must never initialise CUDA (a process forked after that fails its first CUDA call
    with "initialization error", as seen on an H200): torch answers `is_available()` from NVML
    instead of the CUDA runtime when PYTORCH_NVML_BASED_CUDA_CHECK is set, which the imports need.
    On the H200 that was not enough (some import still initialised CUDA): `forks_can_use_cuda`
    finds out, and the sweep then trains each point in a subprocess instead.
    """
    global _CTX
    if _CTX is None:
        os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
        _CTX = multiprocessing.get_context("forkserver")
        _CTX.set_forkserver_preload(PRELOAD)
    return _CTX


def _train_point(*args) -> None:
    """Process targets are pickled by name: these two stay light here and run, in the forked
    process, what the server has already imported (the worker itself need not import it)."""
    from experiments.sweep.forked_child import train_point

    train_point(*args)


def _cuda_probe() -> None:
    from experiments.sweep.forked_child import cuda_probe

    cuda_probe()


def forks_can_use_cuda() -> bool:
    """Whether a process forked from the server can use the GPU (True where there is none)."""
    proc = context().Process(target=_cuda_probe)
    proc.start()
    proc.join()
    return proc.exitcode == 0


def forked_trainer(
    store: str, recipe: dict, tracking_uri: str, experiment: str, tags: dict, threads=None, per_point=None
):
    """A `train_cmd` for `Worker`: trains a point in a process forked from the warm server
    (`per_point` as for `subprocess_trainer`)."""

    def train(point) -> dict:
        config = {"data": store, "model": point.model, "width": point.width, "D": point.D, "seed": point.seed}
        config.update(recipe)
        config.update(per_point(point) if per_point else {})
        with tempfile.TemporaryDirectory(prefix="optiscale-point-") as tmp:
            out = os.path.join(tmp, "result.json")
            args = (config, tracking_uri, experiment, tags, threads, out)
            proc = context().Process(target=_train_point, args=args)
            proc.start()
            proc.join()
            if os.path.exists(out):
                with open(out) as fh:
                    return json.load(fh)
            return {"error": f"the training process of {point.id} exited with code {proc.exitcode} and wrote no result"}

    return train

"""Grid points trained one after another in a resident, spawned process: the start-up is paid once
per worker where forking cannot be used (a GPU whose driver the fork server initialised).

`forked.py` forks each point from a warm server; on the H200 the server's imports initialised CUDA
and every forked point failed, so the sweep fell back to an `optiscale train` subprocess per point
(20-30 s of start-up each, 26 s to skip a finished one). A resident process is *spawned* (a fresh
interpreter, never forked), so CUDA is initialised in it like in any `optiscale train`, and it then
trains the worker's points in turn with its imports, MLflow store and CUDA context warm.

Isolation: a Python error stays with its point (one error line, as for the other trainers) and the
process is replaced after it, so a point never inherits the state of a failed one; a crash (signal,
OOM kill, `os._exit`) ends only the process: its point gets an error naming the exit code and the
next point starts a fresh one. After a good point the process is kept, with its CUDA cache emptied.
What is shared between good points is only the warm state (imports, caches of compiled kernels).

The process is not a multiprocessing daemon: a daemon may not start children, and its points need
DataLoader workers (four by default on a GPU). Instead it exits by itself when its worker dies.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
import time
from typing import Any

_SPAWN = multiprocessing.get_context("spawn")


def _exit_with(parent: int) -> None:
    """End this process soon after its worker dies (killed with SIGKILL, say) instead of finishing
    a point nobody waits for; its DataLoader workers follow it (they watch their parent)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(70)


def _serve(conn, threads, parent: int) -> None:
    """The resident process: train each job received, answer with its result, until None."""
    threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="exit-with-worker").start()
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    from experiments.sweep.forked_child import train_in_process

    while True:
        job = conn.recv()
        if job is None:
            return
        config, tracking_uri, experiment, tags = job
        conn.send(train_in_process(config, tracking_uri, experiment, tags, threads))


class Resident:
    """One resident process, started on first use and replaced after an error or a crash."""

    def __init__(self, threads: int | None = None):
        self.threads = threads
        self.proc: Any = None  # multiprocessing's spawn Process and Connection
        self.conn: Any = None
        self._stop_at_exit = False

    def _start(self) -> None:
        parent, child = _SPAWN.Pipe()
        self.proc = _SPAWN.Process(target=_serve, args=(child, self.threads, os.getpid()))
        self.proc.start()
        child.close()
        self.conn = parent
        if not self._stop_at_exit:  # before multiprocessing's exit hook, which would join it forever
            atexit.register(self.stop)
            self._stop_at_exit = True

    def stop(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(timeout=30)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()
        self.proc = self.conn = None

    def run(self, job: tuple, name: str) -> dict:
        """Train one job (train_in_process's arguments); its result, or {"error": ...}."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
        try:
            self.conn.send(job)
            result = self.conn.recv()
        except (EOFError, OSError):  # the process died under this point
            self.proc.join()
            code = self.proc.exitcode
            self.proc = self.conn = None
            return {"error": f"the resident training process of {name} exited with code {code} and wrote no result"}
        if "error" in result:
            self.stop()  # the next point gets a fresh process, not one that just failed
        return result


def resident_trainer(
    store: str, recipe: dict, tracking_uri: str, experiment: str, tags: dict, threads=None, per_point=None
):
    """A `train_cmd` for `Worker` (`per_point` as for `subprocess_trainer`); `train.resident` is the
    process holder (its `stop()` ends the process; it also ends when the worker dies)."""
    resident = Resident(threads)

    def train(point) -> dict:
        config = {"data": store, "model": point.model, "width": point.width, "D": point.D, "seed": point.seed}
        config.update(recipe)
        config.update(per_point(point) if per_point else {})
        return resident.run((config, tracking_uri, experiment, tags), point.id)

    train.resident = resident  # type: ignore[attr-defined]
    return train

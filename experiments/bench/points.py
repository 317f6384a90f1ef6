"""`optiscale bench points`: the fixed cost of a grid point under each way a sweep worker can train
it (experiments/sweep): an `optiscale train` subprocess, a process forked from the warm server, the
resident spawned process. Tiny points (2B-TC width 8, one epoch) so that the time is mostly fixed
cost; then the same points again, which must be skipped as finished.

Per mode: `first_s` (the first point, with the resident process's imports; the fork server is
started before, by its CUDA probe, and timed as `server_start_s`), `next_s` (the median of the
others), `skip_s` (the median over the skips).
Where CUDA fails in forked processes (`forks_can_use_cuda`), the forked mode is reported as such
and not timed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from datamodules.atomic import atomic_write_json

MODES = ("subprocess", "forked", "resident")


def _trainer(mode: str, store: str, recipe: dict, uri: str, threads: int | None):
    from experiments.sweep.forked import forked_trainer
    from experiments.sweep.resident import resident_trainer
    from experiments.sweep.worker import subprocess_trainer

    if mode == "subprocess":
        return subprocess_trainer(store, recipe, uri, f"bench-{mode}", {}, (), threads)
    make = forked_trainer if mode == "forked" else resident_trainer
    return make(store, recipe, uri, f"bench-{mode}", {}, threads)


def run(data: str, out: str, points: int = 4, D: int = 64, threads: int | None = None, modes=MODES, log=print) -> dict:
    from datamodules.store import GraphStore
    from experiments.bench.gpu import _cpu_model
    from experiments.sweep.forked import forks_can_use_cuda
    from experiments.sweep.spec import Point

    if points < 2:
        raise ValueError(f"--points must be >= 2, got {points}")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"--modes: unknown mode {unknown[0]!r}: choose from {', '.join(MODES)}")
    import torch

    report: dict = {"data": str(Path(data).resolve()), "data_hash": GraphStore(data).manifest["content_hash"]}
    report.update(cpu=_cpu_model(), cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    report.update(point={"model": "2b-tc", "width": 8, "D": D, "epochs": 1}, points=points, modes={})
    recipe = {"epochs": 1, "batch_size": 16, "warmup_epochs": 0.5}
    grid = [Point("2b-tc", 8, D, seed) for seed in range(points)]
    with tempfile.TemporaryDirectory(prefix="optiscale-bench-points-") as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        for mode in modes:
            started = time.perf_counter()
            if mode == "forked" and not forks_can_use_cuda():  # this starts the fork server (timed)
                report["modes"][mode] = {"error": "CUDA fails in processes forked from the server"}
                continue
            server_s = time.perf_counter() - started
            train = _trainer(mode, data, {**recipe, "workdir": str(Path(tmp) / mode)}, uri, threads)
            times, skips = [], []
            try:
                for p in grid:
                    t0 = time.perf_counter()
                    result = train(p)
                    times.append(time.perf_counter() - t0)
                    if "error" in result:
                        raise RuntimeError(f"{mode}: {p.id}: {result['error']}")
                for p in grid:
                    t0 = time.perf_counter()
                    result = train(p)
                    skips.append(time.perf_counter() - t0)
                    if result.get("status") != "skipped":
                        raise RuntimeError(f"{mode}: {p.id} was not skipped on the second pass: {result}")
            finally:
                if hasattr(train, "resident"):
                    train.resident.stop()
            row = {"first_s": round(times[0], 2), "next_s": round(statistics.median(times[1:]), 2)}
            row["skip_s"] = round(statistics.median(skips), 3)
            if mode == "forked":
                row["server_start_s"] = round(server_s, 2)
            report["modes"][mode] = row
            log(f"[bench points] {mode}: first {row['first_s']} s, next {row['next_s']} s, skip {row['skip_s']} s")
            atomic_write_json(out, report)
    atomic_write_json(out, report)
    return report

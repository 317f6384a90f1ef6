"""`optiscale bench gpu`: what one GPU does with this project's training, and the paper's bill.

Figures (all on batches already on the device, bf16 autocast on CUDA, fp32 on CPU):
- `single`: per-process training-step and evaluation rates (graphs/s) of every model and width;
- `packed`: the summed rate of K processes training at the same moments on one device;
- `compiled`: torch.compile(dynamic=True) against eager at one width (compiled at the same time in
  separate processes, then timed one after the other);
- `loading`: collate (with and without triplets) and host-to-device copy per batch;
- `estimate`: device-hours of the published study's 420 runs (500 epochs, validation on 20,179
  materials every epoch) from the measured rates: one eager process per GPU, packed, packed+compiled.
On a CPU the same runs small (few widths, small batches), so the test suite exercises every part.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from datamodules.atomic import atomic_write_json
from experiments.sweep.packing import visible_gpus
from lightning_modules.registry import model_names

MODELS = model_names()
PAPER_WIDTHS = (16, 32, 64, 128, 256, 512, 1024)
PAPER_D = (2500, 5000, 10000, 20000, 40000, 80000, 160000)
PAPER_VAL, PAPER_EPOCHS, PAPER_SEEDS = 20179, 500, 3


def paper_runs() -> list[tuple[str, int, int]]:
    """(model, width, D) of the published study, once per seed: 420 runs."""
    runs = [(m, 256, d) for m in MODELS for d in PAPER_D]  # data sweep
    runs += [(m, w, 20000) for m in MODELS for w in PAPER_WIDTHS]  # parameter sweep
    runs += [(m, w, d) for m in ("2b-tc", "3b-tc") for w in PAPER_WIDTHS for d in PAPER_D]  # grid
    return [r for r in runs for _ in range(PAPER_SEEDS)]


def _worker(job: dict, env=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "experiments.bench.gpu_worker", json.dumps(job)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def _results(proc: subprocess.Popen, timeout: float | None = None) -> list[dict]:
    """The JSON lines a worker printed; past `timeout` it is killed and what it printed is kept."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        proc.kill()
        reader.join(10)
    proc.wait()
    return [json.loads(line) for line in list(lines) if line.startswith("{")]


def loading(data: str, batch_size: int, cuda: bool) -> dict:
    import numpy as np
    import torch

    from datamodules.datamodule import Collate, StoreDataset
    from datamodules.store import GraphStore

    store = GraphStore(data)
    items = [StoreDataset(store, np.resize(store.indices("train"), batch_size))[k] for k in range(batch_size)]
    out: dict[str, float] = {"batch_size": batch_size}
    for name, triplets in (("2b", False), ("3b", True)):
        collate = Collate(triplets, float(store.manifest["threebody_cutoff"]))
        t0 = time.perf_counter()
        for _ in range(5):
            batch = collate(items)
        out[f"collate_ms_{name}"] = (time.perf_counter() - t0) / 5 * 1e3
        if cuda:
            for pinned in (False, True):
                b = batch.pin_memory() if pinned else batch
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for _ in range(5):
                    b.to("cuda", non_blocking=pinned)
                torch.cuda.synchronize()
                out[f"h2d_ms_{name}{'_pinned' if pinned else ''}"] = (time.perf_counter() - t0) / 5 * 1e3
    return out


def _interp(table: dict[int, float], width: int) -> float:
    """Log-log interpolation of a rate over width (nearest end outside the measured widths)."""
    ws = sorted(table)
    if width <= ws[0]:
        return table[ws[0]]
    if width >= ws[-1]:
        return table[ws[-1]]
    hi = next(w for w in ws if w >= width)
    lo = max(w for w in ws if w <= width)
    if hi == lo:
        return table[lo]
    f = (math.log(width) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return math.exp((1 - f) * math.log(table[lo]) + f * math.log(table[hi]))


def estimate(single: list[dict], packed: list[dict], compiled: list[dict]) -> dict:
    """Device-hours of the 420 published runs from the measured rates (see the module docstring)."""
    train = {m: {r["width"]: r["graphs_per_s"] for r in single if r["model"] == m} for m in MODELS}
    evals = {m: {r["width"]: r["eval_graphs_per_s"] for r in single if r["model"] == m} for m in MODELS}
    missing = [m for m in MODELS if not train[m]]
    if missing:
        return {"runs": len(paper_runs()), "device_hours": None, "why": f"no single-process rates of {missing}"}
    gain: dict[tuple[str, int], float] = {}  # best measured packing gain per (model, width)
    for r in packed:
        if r.get("gain") and math.isfinite(r["gain"]):
            gain[(r["model"], r["width"])] = max(gain.get((r["model"], r["width"]), 1.0), r["gain"])
    speed = {r["model"]: r["speedup"] for r in compiled if r.get("speedup")}
    hours = {"single": 0.0, "packed": 0.0, "packed_compiled": 0.0}
    for model, width, d in paper_runs():
        seconds = PAPER_EPOCHS * (d / _interp(train[model], width) + PAPER_VAL / _interp(evals[model], width))
        measured = [(abs(math.log(w / width)), g) for (m, w), g in gain.items() if m == model]
        g = min(measured)[1] if measured else 1.0  # the nearest measured width of this model
        hours["single"] += seconds / 3600
        hours["packed"] += seconds / 3600 / g
        hours["packed_compiled"] += seconds / 3600 / g / max(1.0, speed.get(model, 1.0))
    return {
        "runs": len(paper_runs()),
        "device_hours": {k: round(v, 1) for k, v in hours.items()},
        "assumes": "packing gain of the nearest measured width of the model; compile speed-up at its measured "
        "width applied to every width and multiplied with the packing gain (not measured together)",
    }


def bench_gpu(
    data: str, out: str, small: bool | None = None, max_seconds: float = 900.0, widths=None, packs=None, log=print
) -> dict:
    gpus = visible_gpus()
    cuda = bool(gpus)
    small = (not cuda) if small is None else small
    widths = tuple(widths or ((8, 16) if small else PAPER_WIDTHS))
    batch = 16 if small else 256
    packs = tuple(packs or ((1, 2) if small else (1, 2, 4, 8)))
    steps, window, start_s = (3, 3.0, 40.0) if small else (10, 5.0, 25.0)
    pairs = (("2b-tc", 8), ("3b-tc", 16)) if small else (("2b-tc", 32), ("3b-tc", 64), ("2b-tc", 256))
    pack_cfgs = [{"model": m, "width": w} for m, w in pairs]  # the regimes where one process idles a GPU
    common = {"data": data, "batch_size": batch, "steps": steps}
    report: dict = {"device": gpus and f"cuda ({len(gpus)} visible)" or "cpu", "data": str(Path(data).resolve())}
    from datamodules.store import GraphStore

    report["data_hash"] = GraphStore(data).manifest["content_hash"]
    report["cpu"] = _cpu_model()
    tmp = tempfile.mkdtemp(prefix="optiscale-bench-gpu-")
    lock = Path(tmp) / "device.lock"
    import fcntl

    held = open(lock, "w")
    fcntl.flock(held, fcntl.LOCK_EX)  # the compiling processes wait until the other figures are taken
    cw = widths[-1] if small else 256
    quiet = dict(os.environ, TORCHINDUCTOR_COMPILE_THREADS="1")  # leave the cores to the timed processes
    job = {**common, "lock": str(lock)}
    comp = [_worker({**job, "configs": [{"model": m, "width": cw, "compile": True}]}, env=quiet) for m in MODELS]
    log(f"[bench gpu] compiling {', '.join(MODELS)} at width {cw} in the background")
    t0 = time.perf_counter()
    configs = [{"model": m, "width": w} for m in MODELS for w in widths]
    report["single"] = _results(_worker({**common, "configs": configs}), timeout=0.4 * max_seconds)
    log(f"[bench gpu] single process: {len(report['single'])} configurations ({time.perf_counter() - t0:.0f} s)")
    report["loading"] = loading(data, batch, cuda)
    atomic_write_json(out, report)
    report["packed"] = []
    base: dict[tuple, float] = {}
    for k in packs:
        t_start = time.time() + start_s
        windows = [[t_start + i * (window + 3.0), t_start + i * (window + 3.0) + window] for i in range(len(pack_cfgs))]
        procs = [_worker({**common, "configs": pack_cfgs, "windows": windows, "warmup": 2}) for _ in range(k)]
        per = [_results(p, timeout=start_s + len(pack_cfgs) * (window + 3.0) + 120) for p in procs]
        for i, cfg in enumerate(pack_cfgs):
            rates = [rs[i]["graphs_per_s"] for rs in per if len(rs) > i]
            key = (cfg["model"], cfg["width"])
            total = sum(rates)
            base.setdefault(key, total if k == 1 else float("nan"))
            report["packed"].append({**cfg, "K": k, "processes_measured": len(rates), "graphs_per_s": total,
                                     "gain": total / base[key] if base[key] else None})  # fmt: skip
        shown = ", ".join(f"{r['graphs_per_s']:.0f}" for r in report["packed"][-len(pack_cfgs) :])
        log(f"[bench gpu] packed K={k}: {shown} graphs/s")
        atomic_write_json(out, report)  # what is measured so far survives a kill
    fcntl.flock(held, fcntl.LOCK_UN)
    held.close()
    report["compiled"] = []
    eager = {(r["model"], r["width"]): r["graphs_per_s"] for r in report["single"]}
    for proc in comp:  # compilation may still be running: wait no longer than the time budget
        for r in _results(proc, timeout=max(5.0, max_seconds - (time.perf_counter() - t0))):
            base_rate = eager.get((r["model"], r["width"]))
            r["speedup"] = r["graphs_per_s"] / base_rate if base_rate else None
            report["compiled"].append(r)
    log("[bench gpu] compiled: " + ", ".join(f"{r['model']} {r['speedup'] or 0:.2f}x" for r in report["compiled"]))
    report["estimate"] = estimate(report["single"], report["packed"], report["compiled"])
    report["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out, report)
    return report


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            name = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        name = "unknown"
    return f"{name}, {os.cpu_count()} cores"

"""One `bench train` configuration, run in a fresh process; prints one JSON line.

python -m experiments.bench.train_worker '{"model": "2b-tc", "width": 64, ...}'
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import threading
import time
import warnings


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_pressure() -> float | None:
    """Share of the last 10 s in which runnable tasks waited for a CPU (Linux PSI), percent."""
    try:
        with open("/proc/pressure/cpu") as fh:
            return float(fh.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def _identity(x):
    return x


class Stepper:
    """forward + joint loss + backward + AdamW step of one model on one device, fp32 or bf16 autocast."""

    def __init__(self, model, device: str, bf16: bool = False, lr: float = 1e-3):
        import torch

        self.model, self.device = model, device
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, fused=True)  # as SpectraModule.configure_optimizers
        self.autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)

    def __call__(self, batch) -> None:
        from lightning_modules.loss import joint_loss

        with self.autocast:
            eps, drude = self.model(batch)
            loss, _ = joint_loss(eps, drude, batch.y_eps, batch.y_drude)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def timed_steps(step, batches, n_steps: int, sync, cpu: list | None = None) -> list[float]:
    """Wall seconds of n_steps steps cycling through the batches, after one warm-up step.

    Each step is timed from its start to the next one's (loader fetch included). With `cpu`, the
    process CPU seconds of each step (all threads together) are appended to it.
    """
    stamps = []
    for k in range(n_steps + 1):
        stamps.append((time.perf_counter(), time.process_time()))
        step(batches[k % len(batches)])
    sync()
    stamps.append((time.perf_counter(), time.process_time()))
    stamps = stamps[1:]  # warm-up step excluded
    if cpu is not None:
        cpu += [b[1] - a[1] for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
    return [b[0] - a[0] for a, b in zip(stamps[:-1], stamps[1:], strict=True)]


def summarise(times: list[float], batch_size: int) -> dict:
    return {
        "steps": len(times),
        "graphs_per_s_best": round(batch_size / min(times), 1),
        "graphs_per_s_median": round(batch_size / statistics.median(times), 1),
        "graphs_per_s_mean": round(batch_size * len(times) / sum(times), 1),
    }


def single_thread(step, batches, bs: int, n: int) -> dict:
    """Graphs per CPU-second of one thread (time.thread_time): little affected by other jobs on the machine."""
    import torch

    torch.set_num_threads(1)
    step(batches[0])
    times = []
    for k in range(n):
        t = time.thread_time()
        step(batches[k % len(batches)])
        times.append(time.thread_time() - t)
    return {"one_thread_graphs_per_cpu_s_best": round(bs / min(times), 1), "one_thread_steps": n}


def loader_steps(step, loader, n_steps: int, cpu: list) -> list[float]:
    """The bare loop over a DataLoader, timed like `lightning_steps` (batch start to batch start)."""
    stamps = []
    for k, batch in enumerate(loader):
        stamps.append((time.perf_counter(), time.process_time()))
        if k == n_steps + 1:
            break
        step(batch)
    pairs = list(zip(stamps[1:-1], stamps[2:], strict=True))
    cpu += [b[1] - a[1] for a, b in pairs]
    return [b[0] - a[0] for a, b in pairs]


def spectra_module(model, name: str, width: int):
    """Branch train's SpectraModule (the real training module) around `model`, with the recipe's defaults."""
    import dataclasses

    from experiments.training.config import load_config
    from lightning_modules.module import SpectraModule

    cfg = dataclasses.asdict(load_config({"data": "bench", "model": name, "width": width, "seed": 0}))
    cfg.update(grid_points=2001, grid_start=0.0, grid_stop=20.0)
    module = SpectraModule(cfg)
    module.model = model  # the bare loop's model: same weights, same work
    return module


def lightning_steps(module, loader, n_steps: int, cpu: list) -> list[float]:
    """Wall seconds per step of a real lightning.Trainer.fit of `module` over `loader`; CPU seconds into `cpu`."""
    import tempfile

    import lightning as L

    starts: list[tuple[float, float]] = []

    class Clock(L.Callback):
        def on_train_batch_start(self, *args):
            starts.append((time.perf_counter(), time.process_time()))

    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=n_steps + 2, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, limit_val_batches=0, callbacks=[Clock()],
                            default_root_dir=tmp)  # fmt: skip
        trainer.fit(module, train_dataloaders=loader)
    pairs = list(zip(starts[1:-1], starts[2:], strict=True))  # start to start; the first step is warm-up
    cpu += [b[1] - a[1] for a, b in pairs]
    return [b[0] - a[0] for a, b in pairs]


def gpu_sampler():
    """(stop function, samples list) sampling torch.cuda.utilization() every 50 ms, if available."""
    import torch

    samples: list[float] = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            try:
                samples.append(float(torch.cuda.utilization()))
            except Exception:  # no NVML: utilisation unknown
                return
            time.sleep(0.05)

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    return stop, samples


def main(cfg: dict) -> dict:
    import torch

    from datamodules.datamodule import Collate
    from experiments.bench.train import graph_records, load_structures
    from experiments.training.allocator import tune_malloc
    from lightning_modules.optimetal import build_model, count_parameters

    malloc = tune_malloc()  # before the graphs and the model are allocated
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    device, bs = cfg["device"], cfg["batch_size"]
    recs = graph_records(load_structures(cfg["structures"]), source=cfg["structures"] or "built-in")
    model = build_model(cfg["model"], cfg["width"], points=2001)
    collate = Collate(with_triplets=model.needs_triplets)
    chunks = [recs[i : i + bs] for i in range(0, len(recs), bs)]
    batches = [collate(c).to(device) for c in chunks if len(c) == bs] or [collate(recs).to(device)]
    if len(recs) < bs:
        bs = len(recs)
    rss_before = rss_mb()
    model = model.to(device).train()
    bf16 = cfg["precision"] == "bf16"
    step = Stepper(model, device, bf16)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    step(batches[0])  # warm-up
    sync()
    t0 = time.perf_counter()
    step(batches[-1])
    sync()
    per_step = time.perf_counter() - t0
    budget = cfg["seconds"] / (2 if cfg["lightning"] else 1)
    n = max(5, min(200, int(budget / max(per_step, 1e-4))))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        stop, util = gpu_sampler()
    cpu: list[float] = []
    times = timed_steps(step, batches, n, sync, cpu)
    res = {"model": cfg["model"], "width": cfg["width"], "device": device, "precision": cfg["precision"]}
    res["parameters"] = count_parameters(model)
    res["malloc"] = malloc
    res.update(summarise(times, bs))
    res["graphs_per_cpu_s_best"] = round(bs / min(cpu), 1)  # per CPU-second of all threads together
    res["cpu_pressure_pct_avg10"] = cpu_pressure()
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    res["rss_growth_mb"] = round(peak_rss_mb() - rss_before, 1)
    if device == "cuda":
        stop.set()
        res["peak_gpu_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        res["gpu_utilisation_pct_mean"] = round(statistics.mean(util), 1) if util else None
    if device == "cpu":
        res.update(single_thread(step, batches, bs, max(3, n // 3)))
        torch.set_num_threads(cfg["threads"])
    if cfg["lightning"]:
        one_step = bs / res["one_thread_graphs_per_cpu_s_best"]
        n_light = cfg.get("lightning_steps") or max(10, min(150, int(cfg["seconds"] / 6 / one_step)))
        res["lightning"] = lightning_overhead(model, cfg, batches, bs, n_light)
    return res


def lightning_overhead(model, cfg: dict, batches, bs: int, n: int, rounds: int = 3) -> dict:
    """SpectraModule under lightning.Trainer against the bare loop over the same DataLoader, in rounds.

    On one thread, by process CPU time per step (the loop's own work; robust to other jobs on the
    machine) and by wall time. Both without gradient clipping (the bare loop does not clip);
    SpectraModule adds its real per-step work: learning-rate schedule and epoch-mean metric updates.
    """
    import logging

    import torch
    from torch.utils.data import DataLoader

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    # one epoch holds all the steps (the same batch objects repeated): epoch boundaries, whose cost
    # real epochs of 10-600 steps amortise, would otherwise fall on every other step
    epoch = [batches[k % len(batches)] for k in range(n + 3)]
    loader: DataLoader = DataLoader(epoch, batch_size=None, shuffle=False, collate_fn=_identity)  # type: ignore[arg-type]
    bare: list[float] = []
    light: list[float] = []
    bare_cpu: list[float] = []
    light_cpu: list[float] = []
    for _ in range(rounds):
        step = Stepper(model, "cpu")
        bare += loader_steps(step, loader, n, bare_cpu)
        light += lightning_steps(spectra_module(model, cfg["model"], cfg["width"]), loader, n, light_cpu)
    med = statistics.median
    return {
        "module": "lightning_modules.module.SpectraModule (branch train), lightning.Trainer.fit",
        "threads": 1,
        "steps_each": len(bare),
        "bare_graphs_per_cpu_s_best": round(bs / min(bare_cpu), 1),
        "lightning_graphs_per_cpu_s_best": round(bs / min(light_cpu), 1),
        "overhead_pct_cpu_time_best": round(100 * (min(light_cpu) / min(bare_cpu) - 1), 2),
        "overhead_pct_cpu_time_median": round(100 * (med(light_cpu) / med(bare_cpu) - 1), 2),
        "overhead_pct_wall_best": round(100 * (min(light) / min(bare) - 1), 2),
        "overhead_pct_wall_median": round(100 * (med(light) / med(bare) - 1), 2),
        "overhead_ms_cpu_time_best": round(1e3 * (min(light_cpu) - min(bare_cpu)), 3),
        "overhead_ms_cpu_time_median": round(1e3 * (med(light_cpu) - med(bare_cpu)), 3),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))

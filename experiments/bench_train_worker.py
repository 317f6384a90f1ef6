"""One `bench train` configuration, run in a fresh process; prints one JSON line.

python -m experiments.bench_train_worker '{"model": "2b-tc", "width": 64, ...}'
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


def _identity(x):
    return x


class Stepper:
    """forward + joint loss + backward + AdamW step of one model on one device (bf16 autocast on CUDA)."""

    def __init__(self, model, device: str, lr: float = 1e-3):
        import torch

        self.model, self.device = model, device
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr)
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda")

    def __call__(self, batch) -> None:
        from lightning_modules.loss import joint_loss

        with self.autocast:
            eps, drude = self.model(batch)
            loss, _ = joint_loss(eps, drude, batch.y_eps, batch.y_drude)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def timed_steps(step, batches, n_steps: int, sync) -> list[float]:
    """Seconds of each of n_steps steps, cycling through the batches (first step excluded: warm-up)."""
    times, t = [], None
    for k in range(n_steps + 1):
        batch = batches[k % len(batches)]
        start = time.perf_counter()
        if t is not None:
            times.append(start - t)
        t = start
        step(batch)
    sync()
    times.append(time.perf_counter() - t)
    return times[1:] if len(times) > 1 else times


def summarise(times: list[float], batch_size: int) -> dict:
    return {
        "steps": len(times),
        "graphs_per_s_best": round(batch_size / min(times), 1),
        "graphs_per_s_median": round(batch_size / statistics.median(times), 1),
        "graphs_per_s_mean": round(batch_size * len(times) / sum(times), 1),
    }


def lightning_steps(model, loader, n_steps: int) -> list[float]:
    """Step times of a real lightning.Trainer.fit over the same model and batches."""
    import tempfile

    import lightning as L
    import torch

    from lightning_modules.loss import joint_loss

    class Thin(L.LightningModule):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            eps, drude = self.net(batch)
            return joint_loss(eps, drude, batch.y_eps, batch.y_drude)[0]

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    starts: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_start(self, *args):
            starts.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=n_steps + 1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, callbacks=[Clock()], default_root_dir=tmp)  # fmt: skip
        trainer.fit(Thin(model), train_dataloaders=loader)
    end = time.perf_counter()
    starts.append(end)
    return [b - a for a, b in zip(starts[1:-1], starts[2:], strict=True)]


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
    from experiments.bench_train import graph_records, load_structures
    from lightning_modules.optimetal import build_model, count_parameters

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
    step = Stepper(model, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    step(batches[0])  # warm-up
    sync()
    t0 = time.perf_counter()
    step(batches[-1])
    sync()
    per_step = time.perf_counter() - t0
    budget = cfg["seconds"] / (2 if cfg["lightning"] else 1)
    n = max(3, min(200, int(budget / max(per_step, 1e-4))))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        stop, util = gpu_sampler()
    times = timed_steps(step, batches, n, sync)
    res = {"model": cfg["model"], "width": cfg["width"], "device": device, "parameters": count_parameters(model)}
    res.update(summarise(times, bs))
    res["peak_rss_mb"] = round(peak_rss_mb(), 1)
    res["rss_growth_mb"] = round(peak_rss_mb() - rss_before, 1)
    if device == "cuda":
        stop.set()
        res["precision"] = "bf16 autocast"
        res["peak_gpu_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        res["gpu_utilisation_pct_mean"] = round(statistics.mean(util), 1) if util else None
    if cfg["lightning"]:
        res["lightning"] = lightning_overhead(model, batches, bs, max(3, n // 4))
    return res


def lightning_overhead(model, batches, bs: int, n: int, rounds: int = 2) -> dict:
    """Lightning's Trainer against the bare loop over the same DataLoader, interleaved in rounds."""
    import logging

    from torch.utils.data import DataLoader

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    loader = DataLoader(batches, batch_size=None, shuffle=False, collate_fn=_identity)
    bare, light = [], []
    for _ in range(rounds):
        step = Stepper(model, "cpu")
        bare += timed_steps(step, list(loader), n, lambda: None)
        light += lightning_steps(model, loader, n)
    b, l = summarise(bare, bs), summarise(light, bs)
    return {
        "module": "thin LightningModule defined in the bench (branch train's SpectraModule not merged yet)",
        "steps_each": len(bare),
        "bare_graphs_per_s_best": b["graphs_per_s_best"],
        "lightning_graphs_per_s_best": l["graphs_per_s_best"],
        "overhead_pct_best_step": round(100 * (min(light) / min(bare) - 1), 2),
        "overhead_pct_median_step": round(100 * (statistics.median(light) / statistics.median(bare) - 1), 2),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))

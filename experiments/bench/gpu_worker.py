"""One `bench gpu` process: training-step and evaluation rates of model configurations.

python -m experiments.bench.gpu_worker '{"data": STORE, "configs": [...], ...}'  (one JSON line per config)

A step is what a training step of SpectraModule does: bf16 autocast on CUDA (fp32 on CPU), the joint
loss, backward, the global-norm clip and a fused AdamW step, on batches already on the device.
`windows` ([start, end] wall-clock times, one per config) make several processes measure at the
same moments (the packed aggregate); `lock` makes compiled configs take turns on the device after
their compilation, which they do at the same time.
"""

from __future__ import annotations

import fcntl
import json
import statistics
import sys
import time


def load_batches(store_path: str, batch_size: int, n_batches: int, triplets: bool, device: str):
    import numpy as np

    from datamodules.datamodule import Collate, StoreDataset
    from datamodules.store import GraphStore

    store = GraphStore(store_path)
    idx = store.indices("train")
    need = batch_size * n_batches
    idx = np.resize(idx, need)  # wrap around on a small store
    data = StoreDataset(store, idx)
    collate = Collate(triplets, float(store.manifest["threebody_cutoff"]))
    out = []
    for b in range(n_batches):
        batch = collate([data[k] for k in range(b * batch_size, (b + 1) * batch_size)])
        out.append(batch.to(device))
    return store.points, out


class Step:
    def __init__(self, model, device: str, clip: float = 100.0):
        import torch

        from lightning_modules.loss import joint_loss

        self.model, self.device, self.clip, self.loss = model, device, clip, joint_loss
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        self.bf16 = device == "cuda"

    def train(self, batch) -> None:
        import torch

        with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            eps, drude = self.model(batch)
        loss, _ = self.loss(eps.float(), drude.float(), batch.y_eps, batch.y_drude)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip, foreach=True)
        self.opt.step()

    def evaluate(self, batch) -> None:
        import torch

        with torch.no_grad(), torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            self.model(batch)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, batches, steps: int, device: str) -> list[float]:
    times = []
    for k in range(steps):
        t0 = time.perf_counter()
        fn(batches[k % len(batches)])
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def in_window(fn, batches, window, device: str) -> float:
    """Graphs per second over [start, end] wall-clock time (steps that end inside it)."""
    start, end = window
    while time.time() < start:
        time.sleep(0.005)
    if time.time() > start + 0.5:
        print(json.dumps({"late_s": time.time() - start}), file=sys.stderr, flush=True)
    graphs, k, t0 = 0, 0, time.perf_counter()
    while time.time() < end:
        fn(batches[k % len(batches)])
        sync(device)
        graphs += int(batches[k % len(batches)].num_graphs)
        k += 1
    return graphs / (time.perf_counter() - t0)


def run(job: dict) -> None:
    import torch

    from lightning_modules.optimetal import build_model

    device = job.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    cache: dict[bool, tuple] = {}
    for i, cfg in enumerate(job["configs"]):
        triplets = cfg["model"].startswith("3b")
        if triplets not in cache:
            cache[triplets] = load_batches(job["data"], job["batch_size"], job.get("n_batches", 4), triplets, device)
        points, batches = cache[triplets]
        model = build_model(cfg["model"], cfg["width"], points).to(device)
        t_compile = time.perf_counter()
        if cfg.get("compile"):
            model = torch.compile(model, dynamic=True)  # type: ignore[assignment]
        step = Step(model, device)
        # every batch shape once (compiles here when asked), then timed
        timed(step.train, batches, job.get("warmup", len(batches) + 1), device)
        res = {**cfg, "device": device, "batch_size": job["batch_size"], "warmup_s": time.perf_counter() - t_compile}
        res["edges_per_graph"] = sum(int(b.edge_index.shape[1]) for b in batches) / sum(b.num_graphs for b in batches)
        if triplets:
            res["triplets_per_graph"] = sum(int(b.triplet_index.shape[1]) for b in batches) / sum(
                b.num_graphs for b in batches
            )
        if job.get("windows"):
            res["graphs_per_s"] = in_window(step.train, batches, job["windows"][i], device)
        else:
            lock = open(job["lock"], "w") if job.get("lock") else None
            if lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # one compiled config on the device at a time
            times = timed(step.train, batches, job.get("steps", 10), device)
            model.eval()
            timed(step.evaluate, batches, 2, device)  # an eval-mode graph to compile
            evals = timed(step.evaluate, batches, job.get("steps", 10), device)
            model.train()
            if lock:
                lock.close()
            res["graphs_per_s"] = job["batch_size"] / statistics.median(times)
            res["eval_graphs_per_s"] = job["batch_size"] / statistics.median(evals)
        if device == "cuda":
            res["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        print(json.dumps(res), flush=True)
        rate = f"{res['graphs_per_s']:.0f}"
        print(f"  {cfg['model']} w{cfg['width']}{' compiled' if cfg.get('compile') else ''}: {rate} graphs/s "
              f"(warm-up {res['warmup_s']:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip
        del model, step
        if device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    run(json.loads(sys.argv[1]))

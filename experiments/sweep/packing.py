"""How many grid points train at once on each device, and which device each worker uses.

One training process leaves a large GPU mostly idle at the paper's widths (launch- and memory-bound
kernels): on an H200, four processes of 2B-TC together reached 3.0x one process at width 32 and 3.2x
at width 256 (docs/benchmarks.md). A sweep therefore runs K points at once per GPU, each in its own
worker process bound to its GPU by CUDA_VISIBLE_DEVICES, with the CPU threads split between them.
On a CPU the same packing runs K workers with cores / K threads each.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

MAX_PACK = 8
GIB = 2**30


@dataclass(frozen=True)
class Slot:
    """One local worker: the GPU it sees (None on CPU) and its CPU threads."""

    device: str | None
    threads: int


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[tuple[str, float]]:
    """(CUDA index, free GiB) of the GPUs this process may use, read with nvidia-smi so that the
    sweep process itself never initialises CUDA (its training processes are forked)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = [(i.strip(), float(m) / 1024) for i, m in (line.split(",") for line in out.strip().splitlines())]
    allowed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if allowed is not None:
        keep = [d.strip() for d in allowed.split(",") if d.strip()]
        gpus = [g for g in gpus if g[0] in keep]
    return gpus


def memory_gib(model: str, width: int, batch_size: int) -> float:
    """A generous estimate of one training process's GPU memory: CUDA context and allocator slack,
    plus the activations kept for backward (reference-size cells: 172 edges, 837 triplets per graph;
    about 40 tensors of E x h or T x h each)."""
    rows = 172 + (837 if model.startswith("3b") else 0)
    return 1.5 + batch_size * rows * width * 4 * 40 / GIB


def auto_pack(points, batch_size: int, free_gib: float | None, cores: int) -> int:
    """K for a GPU: 4 up to width 256, 2 above (larger models keep the GPU busier); never more than
    the memory (85 % of the free memory of the GPU) or half the CPU cores per GPU allow."""
    widest = max(points, key=lambda p: memory_gib(p.model, p.width, batch_size))
    k = 4 if widest.width <= 256 else 2
    if free_gib is not None:
        k = min(k, int(0.85 * free_gib // memory_gib(widest.model, widest.width, batch_size)))
    return max(1, min(k, cores // 2, MAX_PACK))


def plan_slots(points, recipe: dict, workers: int | None = None, pack: str | int = "auto") -> list[Slot]:
    """The local workers of a sweep: `workers` in all (spread round-robin over the GPUs), else
    `pack` per GPU (auto: see `auto_pack`; on a CPU auto means one worker)."""
    cores = cpu_count()
    accelerator = str(recipe.get("accelerator", "auto"))
    gpus = visible_gpus() if accelerator in ("auto", "gpu", "cuda") else []
    if accelerator in ("gpu", "cuda") and not gpus:
        raise ValueError("the sweep's recipe asks for a GPU (accelerator) but nvidia-smi lists none")
    if pack != "auto":
        try:
            pack = int(pack)
        except ValueError:
            raise ValueError(f"--pack: {pack!r} is not 'auto' or a number of points per device") from None
        if not 1 <= pack <= MAX_PACK:
            raise ValueError(f"--pack: {pack} is not between 1 and {MAX_PACK}")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers: {workers} is not a positive number")
    if workers is None:
        if pack == "auto":
            batch = int(recipe.get("batch_size", 256))
            per = min(auto_pack(points, batch, free, cores // max(1, len(gpus))) for _, free in gpus) if gpus else 1
        else:
            per = int(pack)
        workers = per * max(1, len(gpus))
    threads = max(1, cores // workers)
    return [Slot(gpus[i % len(gpus)][0] if gpus else None, threads) for i in range(workers)]

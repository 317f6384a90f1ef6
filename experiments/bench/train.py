"""`optiscale bench train`: training throughput and peak memory of the models, Lightning-loop overhead.

Every (model, width) runs in a fresh process on the same fixed graphs (`--structures` or the built-in
cells), batch 32, AdamW: graphs/s of forward + backward + optimiser step (best and median step over a
time budget, after warm-up) and the peak resident memory (getrusage maxrss) with its growth over the
process before the model was built. The Lightning overhead compares a real `lightning.Trainer.fit`
over the same model and batches with a bare PyTorch loop, interleaved in rounds. With CUDA present
the same runs on the GPU in bf16 autocast, with its utilisation and peak allocated memory. CPU runs
are repeated in bf16 autocast (`cpu_bf16`; this CPU has AVX512-BF16 GEMMs, ~3x fp32), as extra rows.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from datamodules.atomic import atomic_write_json
from lightning_modules.registry import model_names

REPO = Path(__file__).resolve().parents[2]
METALS = ["Li", "Na", "Mg", "Al", "Ca", "Sc", "Ti", "V", "Cr", "Fe", "Co", "Ni", "Cu", "Zn", "Y", "Zr",
          "Nb", "Mo", "Pd", "Ag", "Sn", "Hf", "Ta", "W", "Pt", "Au"]  # fmt: skip
FCC4 = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
BCC4 = [[0, 0, 0], [0.25, 0.5, 0.5], [0.5, 0, 0], [0.75, 0.5, 0.5]]  # B2 doubled along a


def default_structures(n: int = 64, seed: int = 0) -> list:
    """Reproducible 4-atom metallic cells: L1_2, L1_0-like, fcc and doubled B2, strained and rattled."""
    from pymatgen.core import Lattice, Structure

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        a, b, c = rng.choice(METALS, 3, replace=False)
        x = 0.958 * (1 + rng.uniform(-0.03, 0.03))  # 0.958: 170 edges per cell, as the reference's
        kind = k % 4
        if kind == 0:  # L1_2
            lat, species, frac = Lattice.cubic(4.0 * x), [a, b, b, b], FCC4
        elif kind == 1:  # L1_0-like with a third species
            lat, species, frac = Lattice.tetragonal(4.0 * x, 3.8 * x), [a, a, b, c], FCC4
        elif kind == 2:  # fcc element, conventional cell
            lat, species, frac = Lattice.cubic(4.05 * x), [a] * 4, FCC4
        else:  # B2, two primitive cells along a
            lat, species, frac = Lattice.tetragonal(6.3 * x, 3.15 * x), [a, b, a, b], BCC4
        rattle = rng.normal(0, 0.005, (4, 3))
        out.append(Structure(lat, species, np.asarray(frac) + rattle))
    return out


def load_structures(path: str | None) -> list:
    """Structures of a JSON list of pymatgen Structure dicts, or the built-in cells."""
    if path is None:
        return default_structures()
    from pymatgen.core import Structure

    try:
        items = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read a JSON list of structures ({err})") from err
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a non-empty JSON list of pymatgen Structure dicts")
    out = []
    for i, d in enumerate(items):
        try:
            out.append(Structure.from_dict(d))
        except Exception as err:  # pymatgen raises many kinds
            raise ValueError(
                f"{path}: entry {i} is not a pymatgen Structure dict ({type(err).__name__}: {err})"
            ) from err
    return out


def graph_records(structures, points: int = 2001, source: str = "structures") -> list[dict]:
    """Records in the store's format (targets: fixed smooth spectra) for the data layer's Collate."""
    from datamodules.graphs import GraphError, build_graph

    w = np.linspace(0, 20, points)
    recs = []
    for i, s in enumerate(structures):
        try:
            g = build_graph(s.lattice.matrix, s.atomic_numbers, s.cart_coords)
        except GraphError as err:
            raise ValueError(f"{source}: entry {i} ({s.composition.reduced_formula}): {err}") from err
        eps = np.stack([1 + 10 / (1 + (w - 1 - i % 5) ** 2), w / (1 + w**2) ** 2 * (1 + i % 3)], -1)
        recs.append(
            dict(numbers=g.numbers, pos=g.cart.astype(np.float32), lattice=g.lattice.astype(np.float32),
                 edge_index=g.edge_index, edge_vec=g.edge_vec, eps=eps.astype(np.float32),
                 drude=np.array([3.0 + i % 4], np.float32), idx=i)
        )  # fmt: skip
    return recs


def graph_sizes(recs: list[dict]) -> dict:
    from datamodules.graphs import triplets

    return {
        "structures": len(recs),
        "mean_atoms": round(float(np.mean([r["numbers"].size for r in recs])), 2),
        "mean_edges": round(float(np.mean([r["edge_index"].shape[1] for r in recs])), 1),
        "mean_triplets": round(float(np.mean([triplets(r["edge_index"], r["edge_vec"]).shape[1] for r in recs])), 1),
    }


def run(
    out: str,
    structures: str | None = None,
    models: tuple[str, ...] | None = None,
    widths=(64, 256),
    batch_size: int = 32,
    threads: int = 2,
    seconds: float = 8.0,
    lightning: bool = True,
    cpu_bf16: bool = True,
) -> dict:
    import torch

    MODEL_NAMES = model_names()
    models = MODEL_NAMES if models is None else models

    bad = [m for m in models if m not in MODEL_NAMES]
    if bad:
        raise ValueError(f"unknown models {bad}; choose from {', '.join(MODEL_NAMES)}")
    figures: dict = {
        "machine": {
            "cores": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
            "note": "best step ~ uncontended speed, median = typical; on a loaded machine the one-thread "
            "CPU-time figures are the least affected by other jobs (compare the load averages)",
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "setup": {
            "batch_size": batch_size,
            "threads": threads,
            "points": 2001,
            "optimizer": "AdamW(fused=True), in the Lightning comparison too",
            "structures": structures or "built-in default_structures(64)",
        },
        "graphs": graph_sizes(graph_records(load_structures(structures), source=structures or "built-in")),
    }  # fmt: skip
    runs = [("cpu", "cpu", "fp32")] + ([("cpu_bf16", "cpu", "bf16")] if cpu_bf16 else [])
    runs += [("gpu", "cuda", "bf16")] if torch.cuda.is_available() else []
    for key, device, precision in runs:
        figures[key] = []
        for name in models:
            for width in widths:
                cfg = dict(model=name, width=width, structures=structures, batch_size=batch_size, threads=threads,
                           seconds=seconds, lightning=lightning and key == "cpu", device=device,
                           precision=precision)  # fmt: skip
                figures[key].append(_in_subprocess(cfg))
                print(json.dumps(figures[key][-1]), flush=True)
    if lightning:
        figures["lightning_loop"] = loop_overhead(figures["cpu"], structures, batch_size, seconds)
    if "gpu" not in figures:
        figures["gpu"] = "no CUDA device on this machine"
    figures["machine"]["load_average_at_end"] = list(os.getloadavg())
    atomic_write_json(out, figures)
    return figures


def loop_overhead(rows: list[dict], structures, batch_size: int, seconds: float) -> dict:
    """The Lightning loop's own cost per step, measured on a tiny model (2B-TC, h = 16) over many
    steps, where it is large against the step and stands out of the noise of a shared machine;
    then as a share of each configuration's one-thread step time."""
    cfg = dict(model="2b-tc", width=16, structures=structures, batch_size=batch_size, threads=1, seconds=seconds,
               lightning=True, device="cpu", precision="fp32", lightning_steps=150)  # fmt: skip
    tiny = _in_subprocess(cfg)["lightning"]
    ms = max(tiny["overhead_ms_cpu_time_median"], 0.0)
    share = {
        f"{r['model']}-{r['width']}": round(100 * ms / (1e3 * batch_size / r["one_thread_graphs_per_cpu_s_best"]), 2)
        for r in rows
    }
    return {"tiny_model": tiny, "overhead_ms_per_step": ms, "overhead_pct_of_one_thread_step": share}


def _in_subprocess(cfg: dict) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["threads"]), PYTHONPATH=os.pathsep.join([str(REPO)] + sys.path))
    cmd = [sys.executable, "-m", "experiments.bench.train_worker", json.dumps(cfg)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
    if res.returncode:
        raise RuntimeError(f"bench worker {cfg['model']} h={cfg['width']} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])

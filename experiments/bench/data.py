"""`optiscale bench data`: figures of the data layer, written to a JSON file.

- graph building from pymatgen Structures (structures/s, without and with triplets);
- loader throughput (graphs/s) with 0 and 2 DataLoader workers, batch 256;
- bytes per material on disk (2001- and 201-point grids);
- resident memory of a fresh process streaming a whole store of each size once.
Stores are built by replicating the real sample records (or built-in cells when they are absent).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from datamodules.atomic import atomic_write_json
from datamodules.records import Material

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples" / "optimetal"
METALS = ["Li", "Na", "Mg", "Al", "Ca", "Sc", "Ti", "V", "Cr", "Fe", "Co", "Ni", "Cu", "Zn", "Y", "Zr",
          "Nb", "Mo", "Pd", "Ag", "Sn", "Hf", "Ta", "W", "Pt", "Au"]  # fmt: skip
_BASE: list[Material] = []  # inherited by forked import workers


def bench_structures(n: int = 200, seed: int = 0) -> list:
    """Small intermetallic cells (2-6 atoms): the samples' and common prototypes, decorated, strained."""
    from pymatgen.core import Lattice, Structure

    rng = np.random.default_rng(seed)
    out = _sample_structures()
    half: list[float] = [0.5, 0.5, 0.5]
    while len(out) < n:
        a, b, c = rng.choice(METALS, 3, replace=False)
        kind = rng.choice(5, p=[0.1, 0.35, 0.1, 0.1, 0.35])
        x = 1 + rng.uniform(-0.04, 0.04)
        if kind == 0:  # B2
            s = Structure(Lattice.cubic(2.95 * x), [a, b], [[0.0, 0.0, 0.0], half])
        elif kind == 1:  # L1_2
            s = Structure(
                Lattice.cubic(3.9 * x), [a, b, b, b], [[0.0, 0.0, 0.0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
            )
        elif kind == 2:  # hcp-based
            s = Structure(Lattice.hexagonal(2.9 * x, 4.7 * x), [a, b], [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])
        elif kind == 3:  # Heusler-like, primitive fcc cell with 3 atoms
            fcc = np.array([[0, 3.0, 3.0], [3.0, 0, 3.0], [3.0, 3.0, 0]]) * x
            s = Structure(Lattice(fcc), [a, b, c], [[0.0, 0.0, 0.0], [0.25, 0.25, 0.25], half])
        else:  # L1_0-like conventional cell with three species
            s = Structure(
                Lattice.cubic(4.0 * x), [a, a, b, c], [[0.0, 0.0, 0.0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]
            )
        s.perturb(0.02, min_distance=0.0)
        out.append(s)
    return out[:n]


def _sample_structures() -> list:
    from pymatgen.core import Structure

    if not SAMPLES.is_dir():
        return []
    return [Structure.from_dict(json.loads(p.read_text())["structure"]) for p in sorted(SAMPLES.glob("*.json"))]


def bench_graph_building(structures, repeat: int = 5) -> dict:
    from datamodules.graphs import build_graph, triplets

    def rate(with_triplets: bool) -> float:
        t0 = time.perf_counter()
        for _ in range(repeat):
            for s in structures:
                g = build_graph(s.lattice.matrix, s.atomic_numbers, s.cart_coords)
                if with_triplets:
                    triplets(g.edge_index, g.edge_vec)
        return len(structures) * repeat / (time.perf_counter() - t0)

    graphs = [build_graph(s.lattice.matrix, s.atomic_numbers, s.cart_coords) for s in structures]
    return {
        "structures": len(structures),
        "mean_atoms": float(np.mean([len(s) for s in structures])),
        "mean_edges": float(np.mean([g.n_edges for g in graphs])),
        "mean_triplets": float(np.mean([triplets(g.edge_index, g.edge_vec).shape[1] for g in graphs])),
        "structures_per_s_without_triplets": round(rate(False), 1),
        "structures_per_s_with_triplets": round(rate(True), 1),
    }


def _replicate_chunk(items):
    """Loader for build_store: item k is base material k % len(base), strained, under a new id."""
    for k in items:
        m = _BASE[k % len(_BASE)]
        x = 1 + 0.001 * (k % 17)
        yield (
            f"replica-{k}",
            Material(f"{m.mat_id}-r{k}", f"{m.formula}{k % 97}", m.lattice * x, m.numbers, m.cart * x, m.eps,
                     m.drude, m.source),
        )  # fmt: skip


def _base_materials() -> list[Material]:
    from datamodules.records import read_json_record

    if SAMPLES.is_dir():
        return [read_json_record(str(p)) for p in sorted(SAMPLES.glob("*.json"))]
    w = np.linspace(0, 20, 2001)
    eps = 1 + 10 / (1 + w**2) + 1j * w / (1 + w**2) ** 2
    return [
        Material(f"cell{i}", s.composition.reduced_formula, s.lattice.matrix, np.array(s.atomic_numbers),
                 s.cart_coords, eps, 4.0, "built-in")
        for i, s in enumerate(bench_structures(8))
    ]  # fmt: skip


def build_replicated_store(out: Path, n: int, grid_points: int = 2001) -> Path:
    from datamodules.importer import build_store

    if not _BASE:
        _BASE.extend(_base_materials())
    settings = {"kind": "bench-replicas", "n": n}
    build_store(out, list(range(n)), _replicate_chunk, settings, grid_points=grid_points, progress=False,
                chunk_size=1024)  # fmt: skip
    return out


def bench_loader(store: Path, workers: int, batch_size: int = 256, triplets: bool = True) -> float:
    from datamodules.datamodule import GraphDataModule

    dm = GraphDataModule(store, batch_size=batch_size, num_workers=workers, triplets=triplets)
    loader = dm.train_dataloader()
    next(iter(loader))  # worker start-up is not throughput
    t0, n = time.perf_counter(), 0
    for batch in loader:
        n += batch.num_graphs
    return n / (time.perf_counter() - t0)


def store_bytes(store: Path) -> int:
    return sum(f.stat().st_size for f in store.rglob("*") if f.is_file())


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


def stream_once(store: str) -> dict:
    """In a fresh process: read every material of the store once; report resident memory."""
    from datamodules.datamodule import GraphDataModule

    dm = GraphDataModule(store, batch_size=256, triplets=True)
    before = peak = _rss_mb()
    n = 0
    for split in ("train", "val", "test"):
        for batch in dm.loader(split):
            n += batch.num_graphs
            peak = max(peak, _rss_mb())
    return {
        "materials_streamed": n,
        "rss_before_mb": round(before, 1),
        "peak_rss_streaming_mb": round(peak, 1),
        "growth_mb": round(peak - before, 1),
    }


def run(out: str, sizes=(1000, 20000), workdir: str | None = None) -> dict:
    import torch

    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    work = Path(tmp.name) if tmp is not None else Path(str(workdir))
    figures: dict = {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
        "graph_building": bench_graph_building(bench_structures()),
    }
    stores = {n: build_replicated_store(work / f"store-{n}", n) for n in sizes}
    small = min(sizes)
    figures["loader_graphs_per_s"] = {
        "store": small,
        "batch_size": 256,
        "workers_0": round(bench_loader(stores[small], 0), 1),
        "workers_2": round(bench_loader(stores[small], 2), 1),
        "workers_0_without_triplets": round(bench_loader(stores[small], 0, triplets=False), 1),
    }
    coarse = build_replicated_store(work / "store-201", small, grid_points=201)
    figures["bytes_per_material"] = {
        "grid_2001": round(store_bytes(stores[small]) / small),
        "grid_201": round(store_bytes(coarse) / small),
    }
    figures["streaming_memory"] = []
    for n, path in stores.items():
        cmd = [sys.executable, "-m", "experiments.bench.data", "--stream", str(path)]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        figures["streaming_memory"].append({"materials": n, **json.loads(res.stdout)})
    atomic_write_json(out, figures)
    print(json.dumps(figures, indent=1))
    if tmp:
        tmp.cleanup()
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--stream"]:
        print(json.dumps(stream_once(sys.argv[2])))

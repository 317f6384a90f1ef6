"""Building a store from records: chunked, parallel, atomic and resumable.

`build_store` is the one engine behind `optiscale data import` (published records) and the
surrogate generator: a list of picklable items is cut into chunks; each chunk is loaded by a
`load_chunk(items)` function yielding `(source, Material | RecordError)`, turned into graphs and
written as one shard (atomically, the .json last). A rerun skips finished shards whose .bin matches
the sha256 in their .json and rebuilds the others (a complete store with a damaged shard is
repaired). When all shards exist, the index, the split and the manifest are written; the manifest
last. If every record is rejected, nothing is left behind and ValueError says why.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_json
from .content_hash import HASH_VERSION, shard_values_sha256
from .environment import environment
from .graphs import CUTOFF, THREEBODY_CUTOFF, GraphError, build_graph
from .grid import REFERENCE_GRID, Grid, resample
from .integrity import shard_path, shard_problem
from .records import Material, RecordError, RecordRef, read_h5_record, read_json_record, release_split
from .splits import split_by_composition, subset_order
from .store import FORMAT_VERSION, SPLIT_CODE, SPLITS, pack

LoadChunk = Callable[[list], Iterable[tuple[str, "Material | RecordError"]]]


def load_published(refs: list[RecordRef]):
    """Loader of the published data: JSON records and HDF5 release groups."""
    open_h5: dict = {}
    try:
        for ref in refs:
            try:
                if ref.key is None:
                    yield ref.name, read_json_record(ref.path)
                else:
                    if ref.path not in open_h5:
                        import h5py

                        open_h5[ref.path] = h5py.File(ref.path, "r")
                    yield ref.name, read_h5_record(open_h5[ref.path], ref, release_split(ref.path))
            except RecordError as err:
                yield ref.name, err
            except (KeyError, OSError, ValueError, TypeError) as err:
                yield ref.name, RecordError(ref.name, f"unreadable record ({type(err).__name__}: {err})")
    finally:
        for h5 in open_h5.values():
            h5.close()


_shard_path = shard_path


def _build_chunk(args) -> tuple[int, int, int]:
    """Load, graph and pack one chunk; write its shard atomically. Returns (k, n_ok, n_rejected)."""
    k, items, out, load_chunk, points = args
    out, grid = Path(out), Grid(points=points)
    blobs, materials, rejected, offset = [], [], [], 0
    for source, result in load_chunk(items):
        if isinstance(result, Exception):
            rejected.append({"source": source, "reason": getattr(result, "reason", str(result))})
            continue
        try:
            graph = build_graph(result.lattice, result.numbers, result.cart, CUTOFF)
        except GraphError as err:
            rejected.append({"source": source, "reason": str(err)})
            continue
        blob = pack(graph, resample(result.eps, grid), result.drude)
        materials.append(
            {
                "mat_id": result.mat_id,
                "formula": result.formula,
                "source": source,
                "split": result.split,
                "n_atoms": int(graph.numbers.size),
                "n_edges": int(graph.n_edges),
                "offset": offset,
                "drude": result.drude,
                "core_hours": result.core_hours,  # DFT cost from the record's timing (None: unknown)
            }
        )
        blobs.append(blob)
        offset += len(blob)
    data = b"".join(blobs)
    atomic_write_bytes(_shard_path(out, k, "bin"), data)
    meta = {"materials": materials, "rejected": rejected, "sha256": hashlib.sha256(data).hexdigest()}
    meta["values_sha256"] = shard_values_sha256(data, materials, points)  # the content hash's part
    atomic_write_json(_shard_path(out, k, "json"), meta)
    return k, len(materials), len(rejected)


def build_store(
    out: str | os.PathLike,
    items: list,
    load_chunk: LoadChunk,
    settings: dict,
    grid_points: int = REFERENCE_GRID.points,
    split_seed: int = 0,
    workers: int | None = None,
    chunk_size: int = 512,
    progress: bool = True,
    force: bool = False,
    allow_empty: bool = False,
) -> dict:
    """Build (or finish) the store at `out`; returns its manifest. Unless `allow_empty`, a build in which
    every record is rejected raises ValueError and leaves nothing behind."""
    out = Path(out)
    plan = {
        "format_version": FORMAT_VERSION,
        **settings,
        "n_items": len(items),
        "items_sha256": hashlib.sha256(json.dumps([repr(i) for i in items]).encode()).hexdigest(),
        "grid": Grid(points=grid_points).as_dict(),
        "cutoff": CUTOFF,
        "threebody_cutoff": THREEBODY_CUTOFF,
        "split_seed": split_seed,
        "chunk_size": chunk_size,
    }
    if not items:
        raise ValueError(f"{out}: nothing to build (no records); nothing was written")
    plan_file = out / "import-plan.json"
    created = not out.exists()
    if force and out.exists():
        for name in ("manifest.json", "import-plan.json", "shards", "index"):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    if plan_file.exists():
        old = json.loads(plan_file.read_text())
        if old != plan:
            changed = sorted(k for k in plan if old.get(k) != plan[k])
            raise ValueError(
                f"{out} holds a store built with other sources or settings (differs in: {', '.join(changed)}); "
                "use a new --out directory or --force to rebuild"
            )
        damaged = _damaged_shards(out, range(-(-len(items) // chunk_size)))
        if (out / "manifest.json").exists():
            if not damaged:
                return json.loads((out / "manifest.json").read_text())
            (out / "manifest.json").unlink()  # incomplete until the damaged shards are rebuilt
        for k, problem in damaged:
            print(f"optiscale: {out}: shards/{problem}; rebuilding shard {k}", file=sys.stderr)
            _shard_path(out, k, "json").unlink(missing_ok=True)
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not an optiscale store; choose an empty or new directory")
    atomic_write_json(plan_file, plan)
    for stale in (out / "shards").glob(".*.tmp"):  # left by an interrupted write
        stale.unlink()

    chunks = [(k, items[s : s + chunk_size]) for k, s in enumerate(range(0, len(items), chunk_size))]
    pending = [(k, c, str(out), load_chunk, grid_points) for k, c in chunks if not _shard_path(out, k, "json").exists()]
    done = len(items) - sum(len(p[1]) for p in pending)
    bar = _progress(len(items), done, progress, desc=f"building {out.name}")
    workers = max(1, min(workers or os.cpu_count() or 1, len(pending)))
    if workers == 1:
        results: Iterable[tuple[int, int, int]] = map(_build_chunk, pending)
    else:
        pool = get_context("fork").Pool(workers)
        results = pool.imap_unordered(_build_chunk, pending)
    try:
        for _, n_ok, n_bad in results:
            bar.update(n_ok + n_bad)
    finally:
        if workers > 1:
            pool.terminate()
        bar.close()
    try:
        return _finalize(out, plan, [k for k, _ in chunks], split_seed, allow_empty)
    except NoMaterials:
        _discard(out, created)
        raise


class NoMaterials(ValueError):
    """Every record was rejected: no store is written."""


def _damaged_shards(out: Path, shard_ids) -> list[tuple[int, str]]:
    """(k, problem) of the finished shards (those with a .json) whose .bin does not match its record."""
    found = []
    for k in shard_ids:
        if _shard_path(out, k, "json").exists():
            problem = shard_problem(out, k)
            if problem:
                found.append((k, problem))
    return found


def _discard(out: Path, created: bool) -> None:
    """Remove what `build_store` wrote at `out` (and `out` itself if this call created it)."""
    if created:
        shutil.rmtree(out, ignore_errors=True)
        return
    for name in ("manifest.json", "import-plan.json", "shards", "index"):
        p = out / name
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _progress(total, done, enabled, desc):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, disable=not enabled or None, desc=desc, unit="rec", file=sys.stderr)


def _finalize(out: Path, plan: dict, shard_ids: list[int], split_seed: int, allow_empty: bool = False) -> dict:
    """Write the index (split, nested train order) and, last, the manifest."""
    rows: list = []
    rejected: list = []
    hashes: list = []
    seen: dict = {}
    points = int(plan["grid"]["points"])
    for k in shard_ids:
        meta = json.loads(_shard_path(out, k, "json").read_text())
        if "values_sha256" not in meta:  # a shard written before content hash version 2
            meta["values_sha256"] = shard_values_sha256(
                _shard_path(out, k, "bin").read_bytes(), meta["materials"], points
            )
        hashes.append(meta["values_sha256"])
        rejected += meta["rejected"]
        for m in meta["materials"]:
            if m["mat_id"] in seen:
                rejected.append(
                    {"source": m["source"], "reason": f"duplicate mat_id {m['mat_id']} (kept {seen[m['mat_id']]})"}
                )
                continue
            seen[m["mat_id"]] = m["source"]
            rows.append((k, m))
    if not rows and not allow_empty:
        first = f" (e.g. {rejected[0]['source']}: {rejected[0]['reason']})" if rejected else ""
        raise NoMaterials(
            f"{out}: no usable materials: all {plan['n_items']} records were rejected{first}; nothing was written"
        )
    formulas = np.array([m["formula"] for _, m in rows], dtype=str)
    hint = np.array([SPLIT_CODE[m["split"]] if m["split"] else -1 for _, m in rows], dtype=np.int8)
    fixed: dict[str, str] = {}  # a composition the release already placed stays in that split
    for _, m in rows:
        if m["split"]:
            fixed.setdefault(m["formula"], m["split"])
    split = split_by_composition(formulas, split_seed, fixed) if rows else np.zeros(0, np.int8)
    split = np.where(hint >= 0, hint, split).astype(np.int8)
    train_order = subset_order(np.flatnonzero(split == 0), split_seed)
    arrays: dict[str, np.ndarray] = {
        "shard": np.array([k for k, _ in rows], dtype=np.int32),
        "offset": np.array([m["offset"] for _, m in rows], dtype=np.int64),
        "n_atoms": np.array([m["n_atoms"] for _, m in rows], dtype=np.int32),
        "n_edges": np.array([m["n_edges"] for _, m in rows], dtype=np.int32),
        "drude": np.array([m["drude"] for _, m in rows], dtype=np.float32),
        "split": split.astype(np.int8),
        "train_order": train_order.astype(np.int64),
        "mat_id": np.array([m["mat_id"] for _, m in rows], dtype=np.bytes_),
        "formula": formulas.astype(np.bytes_),
    }
    content = hashlib.sha256()
    for h in hashes:
        content.update(h.encode())
    for name in ("split", "train_order", "mat_id"):
        content.update(arrays[name].tobytes())
    for name, arr in arrays.items():
        buf = _npy_bytes(arr)
        atomic_write_bytes(out / "index" / f"{name}.npy", buf)
    counts = {s: int((split == c).sum()) for c, s in enumerate(SPLITS)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **{k: v for k, v in plan.items() if k not in ("format_version", "items_sha256", "n_items", "chunk_size")},
        "n_records": plan["n_items"],
        "n_materials": len(rows),
        "splits": counts,
        "split_method": "release" if rows and np.all(hint >= 0) else ("mixed" if np.any(hint >= 0) else "composition"),
        "n_shards": len(shard_ids),
        "content_hash": content.hexdigest(),
        "content_hash_version": HASH_VERSION,  # absent (= 1) in older stores: see content_hash
        "environment": environment(),  # what else determined the stored numbers
        "rejected": rejected,
    }
    cost = dft_cost_summary([m.get("core_hours") for _, m in rows])
    if cost:
        manifest["dft_core_hours"] = cost
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def dft_cost_summary(core_hours: list) -> dict | None:
    """Mean, median and total DFT core-hours per material over the materials whose records carry
    their timing (records.dft_core_hours); None if none does."""
    timed = np.array([h for h in core_hours if h is not None], float)
    if timed.size == 0:
        return None
    return {
        "per_material_mean": float(timed.mean()),
        "per_material_median": float(np.median(timed)),
        "total": float(timed.sum()),
        "n_timed": int(timed.size),
        "n_materials": len(core_hours),
        "from": "records: (parameters.conv_time + parameters.nscf_time) * parameters.ncores / 3600",
    }


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def import_records(sources: list[str], out, **kwargs) -> dict:
    """`optiscale data import`: published JSON records and/or HDF5 release files into a store."""
    from .records import expand_sources

    refs = expand_sources(sources)
    if not refs:
        raise ValueError(f"no records found in {sources}")
    settings = {"kind": "published", "sources": sorted({os.path.abspath(r.path) for r in refs})}
    return build_store(out, refs, load_published, settings, **kwargs)

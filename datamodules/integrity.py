"""Integrity of a store: shard checksums and record sanity, each problem as one line.

A shard's .json records the sha256 of its .bin at write time. `shard_problem` compares the two;
`record_problem` checks the decoded arrays of one material (finite targets, edge indices inside
the material). `GraphStore` hashes each shard once per process before reading from it; the importer
uses `shard_problem` to repair shards on a rerun; `verify_store` (`optiscale data verify`) checks all.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

_BLOCK = 1 << 22
REPAIR_HINT = "rerun `optiscale data import` / `data generate` with the same arguments to repair it"


def shard_path(store: Path, k: int, suffix: str) -> Path:
    return Path(store) / "shards" / f"shard-{k:05d}.{suffix}"


def fd_sha256(fd: int) -> str:
    """sha256 of a whole open file, read with pread (the descriptor's offset is untouched)."""
    h, off = hashlib.sha256(), 0
    while True:
        block = os.pread(fd, _BLOCK, off)
        if not block:
            return h.hexdigest()
        h.update(block)
        off += len(block)


def recorded_sha256(store: Path, k: int) -> tuple[str | None, str | None]:
    """(sha256 recorded in shard k's .json, None) or (None, what is wrong with the .json)."""
    meta_path = shard_path(store, k, "json")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        return None, f"{meta_path.name} is missing"
    except (OSError, ValueError) as err:
        return None, f"{meta_path.name} is unreadable ({type(err).__name__}: {err})"
    sha = meta.get("sha256") if isinstance(meta, dict) else None
    if not isinstance(sha, str):
        return None, f"{meta_path.name} records no sha256"
    return sha, None


def fd_problem(fd: int, name: str, expected: str | None) -> str | None:
    actual = fd_sha256(fd)
    if actual != expected:
        return f"{name} does not match its record (sha256 {actual[:16]}..., recorded {(expected or 'nothing')[:16]}...)"
    return None


def shard_problem(store: str | os.PathLike, k: int) -> str | None:
    """What is wrong with shard k (its .bin against the sha256 in its .json), or None."""
    store = Path(store)
    expected, problem = recorded_sha256(store, k)
    if problem:
        return problem
    bin_path = shard_path(store, k, "bin")
    try:
        fd = os.open(bin_path, os.O_RDONLY)
    except OSError as err:
        return f"{bin_path.name} cannot be opened ({err.strerror})"
    try:
        return fd_problem(fd, bin_path.name, expected)
    finally:
        os.close(fd)


def record_problem(rec: dict[str, np.ndarray]) -> str | None:
    """What is wrong with one decoded material (see `store.unpack`), or None."""
    for name in ("eps", "drude"):
        if not np.all(np.isfinite(rec[name])):
            return f"{name} contains NaN or infinite values"
    ei, n = rec["edge_index"], rec["numbers"].size
    if ei.size and (int(ei.min()) < 0 or int(ei.max()) >= n):
        return f"edge_index holds atom indices {int(ei.min())}..{int(ei.max())}, outside 0..{n - 1}"
    return None


def verify_store(path: str | os.PathLike) -> tuple[list[str], int, int]:
    """Check every shard's checksum and every record of a complete store.

    Returns (problems, one line each; number of shards; number of materials)."""
    from .store import GraphStore, StoreError

    store = GraphStore(path)
    n_shards = int(store.manifest.get("n_shards", 0))
    problems, bad = [], set()
    for k in range(n_shards):
        try:
            store.verify_shard(k)
        except StoreError as err:
            problems.append(str(err))
            bad.add(k)
    shards = np.asarray(store.shard)
    for i in range(len(store)):
        if int(shards[i]) not in bad:
            try:
                store.read(i)
            except (StoreError, ValueError) as err:
                problems.append(str(err))
    store.close()
    return problems, n_shards, len(store)

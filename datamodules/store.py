"""The on-disk graph store: shards of packed material records plus a small memory-mapped index.

Layout of a store directory:
    manifest.json          written last; the store is complete if and only if it exists
    import-plan.json       sources and settings of the import (resume checks it)
    shards/shard-K.bin     packed records of chunk K, one contiguous blob per material
    shards/shard-K.json    chunk K's catalogue: materials, rejected records, sha256 of the .bin
    index/*.npy            one row per material: shard, offset, n_atoms, n_edges, split, ...

A material blob is float32 pos (n,3), lattice (3,3), int32 edge_index (2,E), float32 edge_vec
(E,3), eps (P,2) [Re, Im], drude (1), then uint8 numbers (n) and int8 edge_shift (E,3).
Reading a material is one pread; memory does not grow with the number of materials.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .graphs import Graph
from .integrity import REPAIR_HINT, fd_problem, record_problem, recorded_sha256, shard_path

SPLITS = ("train", "val", "test")
SPLIT_CODE = {s: i for i, s in enumerate(SPLITS)}
FORMAT_VERSION = 1


def blob_nbytes(n: int, e: int, p: int) -> int:
    return 4 * (3 * n + 9 + 5 * e + 2 * p + 1) + n + 3 * e


def pack(graph: Graph, eps: np.ndarray, drude: float) -> bytes:
    """Serialise one material (graph + targets) into its blob."""
    eps2 = np.stack([eps.real, eps.imag], axis=-1).astype("<f4")
    parts = [
        graph.cart.astype("<f4"),
        graph.lattice.astype("<f4"),
        graph.edge_index.astype("<i4"),
        graph.edge_vec.astype("<f4"),
        eps2,
        np.array([drude], dtype="<f4"),
        graph.numbers.astype("u1"),
        graph.edge_shift.astype("i1"),
    ]
    return b"".join(np.ascontiguousarray(a).tobytes() for a in parts)


def unpack(buf: bytes, n: int, e: int, p: int) -> dict[str, np.ndarray]:
    """Inverse of `pack`: views into `buf`."""
    out, off = {}, 0
    for name, dtype, shape in (
        ("pos", "<f4", (n, 3)),
        ("lattice", "<f4", (3, 3)),
        ("edge_index", "<i4", (2, e)),
        ("edge_vec", "<f4", (e, 3)),
        ("eps", "<f4", (p, 2)),
        ("drude", "<f4", (1,)),
        ("numbers", "u1", (n,)),
        ("edge_shift", "i1", (e, 3)),
    ):
        count = int(np.prod(shape))
        out[name] = np.frombuffer(buf, dtype=dtype, count=count, offset=off).reshape(shape)
        off += count * np.dtype(dtype).itemsize
    if off != len(buf):
        raise ValueError(f"corrupt record: {len(buf)} bytes, layout needs {off}")
    return out


class StoreError(RuntimeError):
    """A store that is missing, incomplete or inconsistent."""


class GraphStore:
    """Read access to a complete store; safe to use from DataLoader workers and DDP ranks."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        if not manifest.exists():
            hint = (
                " (an import was interrupted: rerun `optiscale data import` with the same arguments to finish it)"
                if (self.path / "import-plan.json").exists()
                else ""
            )
            raise StoreError(f"{self.path} is not a complete optiscale store: no manifest.json{hint}")
        self.manifest = json.loads(manifest.read_text())
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise StoreError(f"{self.path}: store format {self.manifest.get('format_version')} is not {FORMAT_VERSION}")
        self.points = int(self.manifest["grid"]["points"])
        idx = self.path / "index"
        load = lambda name: np.load(idx / f"{name}.npy", mmap_mode="r")  # noqa: E731
        self.shard, self.offset = load("shard"), load("offset")
        self.n_atoms, self.n_edges, self.split = load("n_atoms"), load("n_edges"), load("split")
        self._files: dict[int, int] = {}
        self._verified: set[int] = set()  # shards whose sha256 matched their record in this process
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self.shard.shape[0])

    @property
    def omega(self) -> np.ndarray:
        g = self.manifest["grid"]
        return np.linspace(g["start"], g["stop"], g["points"])

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # forked worker: never share file offsets with the parent
            self._files, self._pid = {}, os.getpid()
        fd = self._files.get(shard)
        if fd is None:
            path = shard_path(self.path, shard, "bin")
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as err:
                raise StoreError(
                    f"{self.path}: shards/{path.name} cannot be opened ({err.strerror}); {REPAIR_HINT}"
                ) from None
            if shard not in self._verified:
                try:
                    self._check(shard, fd, path.name)
                except BaseException:
                    os.close(fd)
                    raise
            self._files[shard] = fd
        return fd

    def _check(self, shard: int, fd: int, name: str) -> None:
        expected, problem = recorded_sha256(self.path, shard)
        problem = problem or fd_problem(fd, name, expected)
        if problem:
            raise StoreError(f"{self.path}: shards/{problem}; {REPAIR_HINT}")
        self._verified.add(shard)

    def verify_shard(self, shard: int) -> None:
        """Raise StoreError unless shard's .bin matches the sha256 of its .json (hashed once per process)."""
        self._fd(shard)

    def verify(self, indices: np.ndarray | None = None) -> None:
        """Check the shards holding materials `indices` (default: all), each once per process."""
        shards = np.asarray(self.shard) if indices is None else np.asarray(self.shard)[np.asarray(indices)]
        for k in np.unique(shards).tolist():
            self.verify_shard(int(k))

    def read(self, i: int) -> dict[str, np.ndarray]:
        """Arrays of material i (see `unpack`); StoreError if the shard or the record is corrupt."""
        n, e = int(self.n_atoms[i]), int(self.n_edges[i])
        size = blob_nbytes(n, e, self.points)
        buf = os.pread(self._fd(int(self.shard[i])), size, int(self.offset[i]))
        if len(buf) != size:
            raise StoreError(f"{self.path}: shard {int(self.shard[i])} is truncated at material {i}")
        rec = unpack(buf, n, e, self.points)
        problem = record_problem(rec)
        if problem:
            raise StoreError(f"{self.path}: record {i} ({self.mat_ids()[i]}): {problem}")
        return rec

    def indices(self, split: str) -> np.ndarray:
        """Global indices of a whole split, in store order."""
        return np.flatnonzero(np.asarray(self.split) == SPLIT_CODE[split])

    def subset(self, d: int | None) -> np.ndarray:
        """The first d materials of the fixed permutation of the train split (nested prefixes)."""
        order = np.load(self.path / "index" / "train_order.npy", mmap_mode="r")
        if d is None:
            return np.asarray(order)
        if not 0 < d <= order.size:
            raise ValueError(f"D={d} is outside 1..{order.size} (the train split of {self.path})")
        return np.asarray(order[:d])

    def mat_ids(self) -> np.ndarray:
        return np.load(self.path / "index" / "mat_id.npy").astype(str)

    def formulas(self) -> np.ndarray:
        return np.load(self.path / "index" / "formula.npy").astype(str)

    def lookup(self, mat_id: str) -> int:
        hits = np.flatnonzero(self.mat_ids() == mat_id)
        if hits.size == 0:
            raise KeyError(f"{mat_id} is not in the store {self.path}")
        return int(hits[0])

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files = {}

    def __getstate__(self):  # picklable for spawn-started workers: reopen files lazily
        state = self.__dict__.copy()
        state["_files"] = {}
        return state

"""Readers of the published data: raw ComputedStructureEntry JSON records and the HDF5 release.

Every reader yields `Material`s on the reference grid or raises `RecordError` naming the record
and what is wrong with it; the importer turns those into the store's `rejected` list.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .grid import REFERENCE_GRID, check_grid

JSON_SUFFIXES = (".json", ".json.gz")
H5_SUFFIXES = (".h5", ".hdf5")
RELEASE_SPLITS = {"train": "train", "val": "val", "test": "test"}


class RecordError(ValueError):
    """A record that cannot be imported; `source` names the file (and HDF5 group)."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source, self.reason = source, reason


@dataclass
class Material:
    """One material with its targets on the reference grid (eV, Å)."""

    mat_id: str
    formula: str  # reduced formula: the unit of the composition split
    lattice: np.ndarray  # (3, 3), rows are lattice vectors
    numbers: np.ndarray  # (n,) atomic numbers
    cart: np.ndarray  # (n, 3) Cartesian positions
    eps: np.ndarray  # (points,) complex, direction-averaged interband eps
    drude: float  # RMS Drude frequency, eV
    source: str
    split: str | None = None  # kept from the HDF5 release
    core_hours: float | None = None  # DFT cost of the record: (conv_time + nscf_time) * ncores / 3600


def dft_core_hours(doc: dict) -> float | None:
    """Core-hours the record's DFT took, from its own timing: `parameters.conv_time` (s, the converged
    run) plus `parameters.nscf_time` (s, the non-self-consistent step) times `parameters.ncores`;
    None where a field is missing or not a finite number >= 0 (the timing is optional)."""
    p = doc.get("parameters")
    if not isinstance(p, dict):
        return None
    try:
        conv, nscf, cores = (float(p[k]) for k in ("conv_time", "nscf_time", "ncores"))
    except (KeyError, TypeError, ValueError):
        return None
    if not all(np.isfinite(v) and v >= 0 for v in (conv, nscf, cores)):
        return None
    return (conv + nscf) * cores / 3600.0


@dataclass(frozen=True)
class RecordRef:
    """Where one record lives: a JSON file, or a group of an HDF5 file."""

    path: str
    key: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path}:{self.key}" if self.key else self.path


def expand_sources(sources: list[str]) -> list[RecordRef]:
    """Files, directories (searched recursively) and globs -> sorted record references."""
    files: list[str] = []
    for src in sources:
        if os.path.isdir(src):
            for root, _, names in os.walk(src):
                files += [os.path.join(root, n) for n in names if n.endswith(JSON_SUFFIXES + H5_SUFFIXES)]
        elif os.path.exists(src):
            files.append(src)
        else:
            matched = glob.glob(src, recursive=True)
            if not matched:
                raise FileNotFoundError(f"no such file, directory or glob match: {src}")
            files += matched
    refs: list[RecordRef] = []
    for f in sorted({os.path.abspath(f) for f in files}):
        if f.endswith(H5_SUFFIXES):
            import h5py

            try:
                with h5py.File(f, "r") as h5:
                    refs += [RecordRef(f, k) for k in sorted(h5.keys())]
            except OSError as err:
                raise FileNotFoundError(f"{f}: not a readable HDF5 file ({err})") from err
        else:
            refs.append(RecordRef(f))
    return refs


def _np_array(obj, name: str, source: str) -> np.ndarray:
    if isinstance(obj, dict) and obj.get("@class") == "array" and "data" in obj:
        obj = obj["data"]
    try:
        arr = np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise RecordError(source, f"{name} is not a numeric array ({err})") from None
    return arr


def _finite(arr: np.ndarray, name: str, source: str) -> None:
    if not np.all(np.isfinite(arr)):
        raise RecordError(source, f"{name} contains NaN or infinite values")


def read_json_record(path: str) -> Material:
    """Parse one raw record (`ComputedStructureEntry.as_dict()`, plain or gzipped)."""
    from pymatgen.core import Structure

    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as fh:
            doc = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as err:
        raise RecordError(path, f"invalid or truncated JSON ({err})") from None
    except OSError as err:
        raise RecordError(path, f"unreadable file ({err})") from None
    if not isinstance(doc, dict):
        raise RecordError(path, "top level is not a JSON object")
    data: dict = doc.get("data") or {}
    missing = [k for k in ("structure", "data") if k not in doc]
    if isinstance(data, dict):
        missing += [f"data.{k}" for k in ("mat_id", "drude_freq", "eps_inter_re", "eps_inter_im") if k not in data]
    if missing:
        raise RecordError(path, f"missing keys: {', '.join(missing)}")
    try:
        structure = Structure.from_dict(doc["structure"])
    except Exception as err:  # pymatgen raises many kinds on malformed dicts
        raise RecordError(path, f"structure cannot be parsed ({type(err).__name__}: {err})") from None
    if not structure.is_ordered:
        raise RecordError(path, "structure has partially occupied (disordered) sites")

    points = REFERENCE_GRID.points
    cols = {}
    for part in ("re", "im"):
        name = f"eps_inter_{part}"
        arr = _np_array(data[name], name, path)
        if arr.shape != (points, 4):
            raise RecordError(path, f"{name} has shape {arr.shape}, expected ({points}, 4) [w, xx, yy, zz]")
        try:
            check_grid(arr[:, 0])
        except ValueError as err:
            raise RecordError(path, f"{name}: {err}") from None
        _finite(arr[:, 1:], name, path)
        cols[part] = arr[:, 1:].mean(axis=1)
    drude = _np_array(data["drude_freq"], "drude_freq", path)
    if drude.shape != (3,):
        raise RecordError(path, f"drude_freq has shape {drude.shape}, expected (3,)")
    _finite(drude, "drude_freq", path)
    return Material(
        mat_id=str(data["mat_id"]),
        formula=structure.composition.reduced_formula,
        lattice=np.array(structure.lattice.matrix, dtype=np.float64),
        numbers=np.array(structure.atomic_numbers, dtype=np.int64),
        cart=np.array(structure.cart_coords, dtype=np.float64),
        eps=cols["re"] + 1j * cols["im"],
        drude=float(np.sqrt(np.mean(drude**2))),
        source=path,
        core_hours=dft_core_hours(doc),
    )


def _text(value) -> str:
    value = value[()] if hasattr(value, "shape") else value
    return value.decode() if isinstance(value, bytes) else str(value)


def read_h5_record(h5, ref: RecordRef, split: str | None) -> Material:
    """One group of the authors' release (schema: docs/reference.md, HDF5 release); `h5` is the open file."""
    source = ref.name
    g = h5[ref.key]
    need = ("lattice", "atomic_number", "position", "drude", "eps")
    missing = [k for k in need if k not in g]
    if missing:
        raise RecordError(source, f"missing datasets: {', '.join(missing)}")
    lattice = np.asarray(g["lattice"][()], dtype=np.float64)
    numbers = np.asarray(g["atomic_number"][()], dtype=np.int64).reshape(-1)
    cart = np.asarray(g["position"][()], dtype=np.float64)
    eps = np.asarray(g["eps"][()]).astype(np.complex128)
    drude = np.asarray(g["drude"][()], dtype=np.float64)
    if lattice.shape != (3, 3):
        raise RecordError(source, f"lattice has shape {lattice.shape}, expected (3, 3)")
    if cart.shape != (numbers.size, 3) or numbers.size == 0:
        raise RecordError(source, f"position has shape {cart.shape}, expected ({numbers.size}, 3)")
    if eps.shape != (REFERENCE_GRID.points,):
        raise RecordError(source, f"eps has shape {eps.shape}, expected ({REFERENCE_GRID.points},)")
    if drude.size != 1:
        raise RecordError(source, f"drude has shape {drude.shape}, expected a scalar")
    for name, arr in (("lattice", lattice), ("position", cart), ("eps", eps), ("drude", drude)):
        _finite(arr, name, source)
    if abs(np.linalg.det(lattice)) < 1e-6:
        raise RecordError(source, "lattice is singular")
    from pymatgen.core import Composition, Element

    try:
        formula = Composition(Counter(Element.from_Z(int(z)) for z in numbers)).reduced_formula
    except ValueError as err:
        raise RecordError(source, f"atomic_number: {err}") from None
    mat_id = _text(g["mat_id"]) if "mat_id" in g else str(ref.key)
    return Material(mat_id, formula, lattice, numbers, cart, eps, float(drude.reshape(())), source, split)


def release_split(path: str) -> str | None:
    """The split of a release file from its name (train.h5, val.h5, test.h5), else None."""
    stem = Path(path).name.split(".")[0].lower()
    return RELEASE_SPLITS.get(stem)

"""`optiscale data label`: surrogate spectra of user structures into a new store.

Inputs are CIF or POSCAR files (id = file stem) or store directories (each material keeps its
mat_id; only its structure is read, its spectra are replaced by the surrogate's)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from ..records import RecordError
from ..store import StoreError
from .generate import SURROGATE_VERSION, material_of, single_thread
from .optics import OpticsSettings
from .params import UnsupportedElement, species


def read_structure(path: str):
    """A pymatgen Structure from a CIF or POSCAR file; RecordError naming the file otherwise."""
    from pymatgen.core import Structure
    from pymatgen.io.vasp import Poscar

    if not os.path.isfile(path):
        raise RecordError(path, "no such file")
    try:
        if path.lower().endswith(".cif"):
            import warnings

            from pymatgen.io.cif import CifParser

            with warnings.catch_warnings():  # the reason is reported in the rejected entry
                warnings.simplefilter("ignore")
                structures = CifParser(path).parse_structures(primitive=False)
            if not structures:
                raise ValueError("no structure in the CIF")
            structure = structures[0]
        else:
            try:
                structure = Structure.from_file(path)
            except Exception:  # pymatgen guesses the format from the name; POSCAR has many names
                structure = Poscar.from_file(path, check_for_potcar=False).structure
    except Exception as err:  # pymatgen raises many kinds on malformed files
        raise RecordError(path, f"cannot be read as CIF or POSCAR ({type(err).__name__}: {err})") from None
    if not structure.is_ordered:
        raise RecordError(path, "structure has partially occupied (disordered) sites")
    return structure


def load_labelled(paths: list[str], settings: OpticsSettings):
    """`build_store` loader: one file -> one Material (or a RecordError naming it)."""
    with single_thread():
        yield from _labelled(paths, settings)


def _store_structure(item: str):
    """(mat_id, lattice, numbers, cart) of `<store>#<index>`."""
    from ..store import GraphStore

    store, index = item.rsplit("#", 1)
    if store not in _STORES:
        _STORES[store] = GraphStore(store)
    g = _STORES[store]
    rec = g.read(int(index))
    return (
        str(g.mat_ids()[int(index)]),
        rec["lattice"].astype(float),
        rec["numbers"].astype(int),
        rec["pos"].astype(float),
    )


_STORES: dict = {}


def _labelled(paths, settings):
    for path in paths:
        try:
            if "#" in path and os.path.isdir(path.rsplit("#", 1)[0]):
                mat_id, lattice, numbers, cart = _store_structure(path)
            else:
                s = read_structure(path)
                mat_id, lattice, numbers, cart = (
                    Path(path).stem,
                    s.lattice.matrix,
                    np.array(s.atomic_numbers),
                    s.cart_coords,
                )
            for z in sorted(set(numbers.tolist())):
                try:
                    species(int(z))
                except UnsupportedElement as err:
                    raise RecordError(path, str(err)) from None
            yield path, material_of(mat_id, path, lattice, numbers, cart, settings)
        except RecordError as err:
            yield path, err
        except (ValueError, np.linalg.LinAlgError, StoreError) as err:
            yield path, RecordError(path, f"surrogate failed ({type(err).__name__}: {err})")


def label(files: list[str], out, settings: OpticsSettings | None = None, **store_kwargs) -> dict:
    from ..importer import build_store
    from .fidelity import fidelity_of, timed_build

    settings = settings or OpticsSettings()
    sources = sorted({os.path.abspath(f) for f in files})
    if not sources:
        raise ValueError("no structure files given")
    items = [i for src in sources for i in (_store_items(src) if os.path.isdir(src) else [src])]
    plan = {"kind": "surrogate-label", "surrogate_version": SURROGATE_VERSION, "sources": sources,
            "optics": settings.as_dict(), "fidelity": fidelity_of(settings)}  # fmt: skip
    store_kwargs.setdefault("chunk_size", 64)
    store_kwargs.setdefault("allow_empty", True)  # kept as before: an all-rejected label run writes an empty store
    loader = partial(load_labelled, settings=settings)
    return timed_build(lambda: build_store(out, items, loader, plan, **store_kwargs), out, store_kwargs.get("workers"))


def _store_items(path: str) -> list[str]:
    """`<store>#<index>` for every material of the store at `path`, in store order."""
    from ..store import GraphStore

    if not os.path.isfile(os.path.join(path, "manifest.json")):
        raise ValueError(f"{path}: a directory given to label is not an optiscale store (no manifest.json)")
    g = GraphStore(path)
    try:
        return [f"{path}#{i}" for i in range(len(g))]
    finally:
        g.close()

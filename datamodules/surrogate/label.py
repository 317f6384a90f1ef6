"""`optiscale data label`: surrogate spectra of user structures (CIF or POSCAR); id = file stem."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from ..records import RecordError
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


def _labelled(paths, settings):
    for path in paths:
        try:
            s = read_structure(path)
            numbers = np.array(s.atomic_numbers)
            for z in sorted(set(numbers.tolist())):
                try:
                    species(int(z))
                except UnsupportedElement as err:
                    raise RecordError(path, str(err)) from None
            yield path, material_of(Path(path).stem, path, s.lattice.matrix, numbers, s.cart_coords, settings)
        except RecordError as err:
            yield path, err
        except (ValueError, np.linalg.LinAlgError) as err:
            yield path, RecordError(path, f"surrogate failed ({type(err).__name__}: {err})")


def label(files: list[str], out, settings: OpticsSettings | None = None, **store_kwargs) -> dict:
    from ..importer import build_store

    settings = settings or OpticsSettings()

    paths = sorted({os.path.abspath(f) for f in files})
    if not paths:
        raise ValueError("no structure files given")
    plan = {"kind": "surrogate-label", "surrogate_version": SURROGATE_VERSION, "sources": paths,
            "optics": settings.as_dict()}  # fmt: skip
    store_kwargs.setdefault("chunk_size", 64)
    store_kwargs.setdefault("allow_empty", True)  # kept as before: an all-rejected label run writes an empty store
    return build_store(out, paths, partial(load_labelled, settings=settings), plan, **store_kwargs)

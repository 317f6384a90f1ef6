"""The built-in dataset: seeded surrogate crystals -> TB spectra -> a store (via `build_store`).

Items are the specs of `prototypes.draw_specs` (drawn and de-duplicated in the parent process);
each chunk is computed in a worker and written as one shard, so an interrupted run resumes at the
first missing shard. Material ids are `tb<seed>-<index>`.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ..grid import REFERENCE_GRID
from ..records import Material, RecordError
from .hamiltonian import build_model
from .optics import OpticsSettings, compute_optics
from .prototypes import PROTOTYPES, draw_specs, structure_arrays

SURROGATE_VERSION = 1  # bump when the physics changes: a store records it in its plan


def spectra_of(lattice, numbers, cart, settings: OpticsSettings) -> tuple[np.ndarray, float]:
    """(eps on the reference grid (2001,) complex, RMS Drude frequency eV) of one crystal."""
    model = build_model(lattice, numbers, cart)
    optics = compute_optics(model, settings, numbers=numbers)
    return optics.eps_average(REFERENCE_GRID.points), optics.drude


def formula_of(numbers) -> str:
    from collections import Counter

    from pymatgen.core import Composition, Element

    return Composition(Counter(Element.from_Z(int(z)) for z in numbers)).reduced_formula


def material_of(mat_id: str, source: str, lattice, numbers, cart, settings: OpticsSettings) -> Material:
    eps, drude = spectra_of(lattice, numbers, cart, settings)
    if not (np.all(np.isfinite(eps)) and np.isfinite(drude)):
        raise RecordError(source, "surrogate produced non-finite spectra")
    return Material(mat_id, formula_of(numbers), np.asarray(lattice), np.asarray(numbers), np.asarray(cart), eps,
                    float(drude), source)  # fmt: skip


def load_generated(items: list[tuple], seed: int, settings: OpticsSettings):
    """`build_store` loader: specs -> Materials."""
    for k, name, elements, strain, ca in items:
        source = f"surrogate:{name}:{'-'.join(elements)}"
        try:
            lattice, numbers, cart = structure_arrays(PROTOTYPES[name], elements, strain, ca)
            yield source, material_of(f"tb{seed}-{k:07d}", source, lattice, numbers, cart, settings)
        except (ValueError, np.linalg.LinAlgError) as err:
            yield source, RecordError(source, f"surrogate failed ({type(err).__name__}: {err})")


def generate(n: int, seed: int, out, settings: OpticsSettings | None = None, **store_kwargs) -> dict:
    """`optiscale data generate`: n distinct surrogate materials into the store at `out`."""
    from ..importer import build_store

    settings = settings or OpticsSettings()

    specs = draw_specs(n, seed)
    plan = {"kind": "surrogate", "surrogate_version": SURROGATE_VERSION, "seed": seed, "optics": settings.as_dict()}
    store_kwargs.setdefault("chunk_size", 128)
    return build_store(out, specs, partial(load_generated, seed=seed, settings=settings), plan, **store_kwargs)

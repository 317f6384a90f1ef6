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
from .optics import OpticsSettings, compute_optics, point_operations
from .prototypes import PROTOTYPES, draw_specs, structure_arrays

SURROGATE_VERSION = 2  # bump when the physics changes: a store records it in its plan


def spectra_of(lattice, numbers, cart, settings: OpticsSettings, rotations=None) -> tuple[np.ndarray, float]:
    """(eps on the reference grid (2001,) complex, RMS Drude frequency eV) of one crystal."""
    model = build_model(lattice, numbers, cart)
    optics = compute_optics(model, settings, numbers=numbers, rotations=rotations)
    return optics.eps_average(REFERENCE_GRID.points), optics.drude


def formula_of(numbers) -> str:
    from collections import Counter

    from pymatgen.core import Composition, Element

    return Composition(Counter(Element.from_Z(int(z)) for z in numbers)).reduced_formula


def material_of(mat_id: str, source: str, lattice, numbers, cart, settings: OpticsSettings, rotations=None) -> Material:
    eps, drude = spectra_of(lattice, numbers, cart, settings, rotations)
    if not (np.all(np.isfinite(eps)) and np.isfinite(drude)):
        raise RecordError(source, "surrogate produced non-finite spectra")
    return Material(mat_id, formula_of(numbers), np.asarray(lattice), np.asarray(numbers), np.asarray(cart), eps,
                    float(drude), source)  # fmt: skip


def single_thread():
    """BLAS on one thread: the matrices are small (<= 54 x 54); parallelism comes from processes."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def load_generated(items: list[tuple], seed: int, settings: OpticsSettings):
    """`build_store` loader: specs -> Materials."""
    with single_thread():
        yield from _generated(items, seed, settings)


def prototype_rotations(name: str) -> np.ndarray:
    """Point operations of a prototype: distinct letters take distinct elements and the strain is
    isotropic, so every decoration of a prototype has the same space group (in fractional form)."""
    if name not in _ROTATIONS:
        p = PROTOTYPES[name]
        lattice, _, cart = structure_arrays(p, ("Cu",) * len(p.letters), 0.0, p.hexagonal_ca)
        letters = np.array([p.letters.index(c) + 1 for c in p.pattern])
        _ROTATIONS[name] = point_operations(lattice, cart @ np.linalg.inv(lattice), letters)
    return _ROTATIONS[name]


_ROTATIONS: dict[str, np.ndarray] = {}


def _generated(items, seed, settings):
    for k, name, elements, strain, ca in items:
        source = f"surrogate:{name}:{'-'.join(elements)}"
        try:
            lattice, numbers, cart = structure_arrays(PROTOTYPES[name], elements, strain, ca)
            rot = prototype_rotations(name)
            yield source, material_of(f"tb{seed}-{k:07d}", source, lattice, numbers, cart, settings, rot)
        except (ValueError, np.linalg.LinAlgError) as err:
            yield source, RecordError(source, f"surrogate failed ({type(err).__name__}: {err})")


def generate(n: int, seed: int, out, settings: OpticsSettings | None = None, **store_kwargs) -> dict:
    """`optiscale data generate`: n distinct surrogate materials into the store at `out`."""
    from ..importer import build_store
    from .fidelity import fidelity_of, timed_build

    if n < 1:
        raise ValueError(f"{out}: --n must be at least 1 (got {n}); nothing was written")
    settings = settings or OpticsSettings()

    specs = draw_specs(n, seed)
    plan = {"kind": "surrogate", "surrogate_version": SURROGATE_VERSION, "seed": seed, "optics": settings.as_dict(),
            "fidelity": fidelity_of(settings)}  # fmt: skip
    store_kwargs.setdefault("chunk_size", 64)
    loader = partial(load_generated, seed=seed, settings=settings)
    return timed_build(lambda: build_store(out, specs, loader, plan, **store_kwargs), out, store_kwargs.get("workers"))

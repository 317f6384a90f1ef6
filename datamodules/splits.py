"""Composition-grouped 80/10/10 split and nested data-scaling subsets."""

from __future__ import annotations

import numpy as np

from .store import SPLIT_CODE

FRACTIONS = (0.8, 0.1, 0.1)


def split_by_composition(formulas, seed: int, fixed: dict[str, str] | None = None) -> np.ndarray:
    """Split codes (0 train, 1 val, 2 test) with no reduced composition in two splits.

    Compositions are visited in a seeded random order and filled into train until 80 % of the
    materials, then val until 90 %, then test. `fixed` maps compositions whose split is already
    decided (e.g. by the authors' release) to that split; they count towards the totals.
    """
    formulas = np.asarray(formulas, dtype=str)
    fixed = fixed or {}
    uniq, inverse, counts = np.unique(formulas, return_inverse=True, return_counts=True)
    code_of = np.full(uniq.size, -1, dtype=np.int8)
    for j, f in enumerate(uniq):
        if f in fixed:
            code_of[j] = SPLIT_CODE[fixed[f]]
    n = formulas.size
    bounds = np.cumsum(FRACTIONS) * n
    filled = np.array([counts[code_of == c].sum() for c in range(3)], dtype=float)
    for j in np.random.default_rng(seed).permutation(uniq.size):
        if code_of[j] >= 0:
            continue
        # the first split whose share is not yet full, counting what is already in it
        c = next((c for c in range(3) if filled[: c + 1].sum() < bounds[c]), 2)
        code_of[j] = c
        filled[c] += counts[j]
    return code_of[inverse]


def subset_order(train_indices: np.ndarray, seed: int) -> np.ndarray:
    """One fixed permutation of the train split; subset D is its first D entries."""
    return np.asarray(train_indices)[np.random.default_rng(seed).permutation(len(train_indices))]

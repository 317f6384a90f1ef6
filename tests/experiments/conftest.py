"""Synthetic runs drawn from a scaling-law form with known parameters."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.fitting.forms import FORMS

D_VALUES = [2500, 5000, 10000, 20000, 40000, 80000, 160000]  # the reference's data subsets
N_VALUES = [278275, 600000, 1288483, 3000000, 8140195, 20000000, 80521123]


def draw(form: str, params, xs=D_VALUES, seeds=(1, 42, 137), noise=0.02, rng_seed=0, model="m", fixed_N=1288483):
    """Runs with multiplicative log-normal noise; 1-D forms along D (N fixed), 2-D over the (N, D) grid."""
    rng = np.random.default_rng(rng_seed)
    f = FORMS[form]
    runs = []
    points = [(fixed_N, d) for d in xs] if f.ndim == 1 else [(n, d) for d in D_VALUES for n in N_VALUES]
    for n, d in points:
        x = np.array([float(d)]) if f.ndim == 1 else np.array([[float(n)], [float(d)]])
        mean = float(f.linear(x, *params)[0])
        for s in seeds:
            runs.append(
                {
                    "model": model,
                    "D": int(d),
                    "N": int(n),
                    "seed": s,
                    "val_loss": mean * np.exp(noise * rng.standard_normal()),
                }
            )
    return runs


@pytest.fixture
def draw_runs():
    return draw

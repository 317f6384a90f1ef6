"""`optiscale bench fit`: cost of the two methods and calibration of their stated errors.

Synthetic runs (the reference's 7 D values, 3 seeds, multiplicative log-normal noise) are drawn
from known laws many times; for each exponent the z-score (estimate - truth) / stderr is collected.
A calibrated method has RMS(z) near 1 and |z| > 3 in well under 1 % of draws.
"""

from __future__ import annotations

import platform
import time

import numpy as np

from experiments.fitting.forms import FORMS

D_VALUES = (2500, 5000, 10000, 20000, 40000, 80000, 160000)
SEEDS = (1, 42, 137)
LAWS = {
    "power": (1e4, 0.3),
    "broken": (2e4, 0.6, 0.2),
    "broken_amp": (1.0, 2e4, 0.1, 0.6),
}


def synthetic_runs(form: str, params, noise: float, rng: np.random.Generator) -> list[dict]:
    f = FORMS[form]
    mean = f.linear(np.array(D_VALUES, float), *params)
    return [
        {"model": "synthetic", "D": d, "N": 1, "seed": s, "val_loss": float(m * np.exp(noise * rng.standard_normal()))}
        for d, m in zip(D_VALUES, mean, strict=True)
        for s in SEEDS
    ]


def calibration(draws: int, noise: float, starts: int, bootstrap: int, seed: int) -> dict:
    from experiments.fitting import fit_runs

    out = {}
    rng = np.random.default_rng(seed)
    for form, params in LAWS.items():
        truth = dict(zip(FORMS[form].params, params, strict=True))
        z: dict[str, dict[str, list[float]]] = {
            m: {k: [] for k in truth if k.startswith("alpha")} for m in ("paper", "robust")
        }
        for _ in range(draws):
            runs = synthetic_runs(form, params, noise, rng)
            for fit in fit_runs(runs, axes=("D",), method="both", forms=[form], starts=starts, bootstrap=bootstrap):
                for k, vals in z[fit["method"]].items():
                    est, err = (fit["params"] or {}).get(k), (fit["stderr"] or {}).get(k)
                    vals.append((est - truth[k]) / err if est is not None and err else np.inf)
        out[form] = {
            m: {
                k: {
                    "rms_z": float(np.sqrt(np.mean(np.square(v)))),
                    "median_abs_z": float(np.median(np.abs(v))),
                    "frac_abs_z_over_3": float(np.mean(np.abs(v) > 3)),
                }
                for k, v in per.items()
            }
            for m, per in z.items()
        }
    return out


def timing(starts: int, bootstrap: int, seed: int) -> dict:
    from experiments.fitting import fit_runs

    runs = synthetic_runs("broken_amp", LAWS["broken_amp"], 0.02, np.random.default_rng(seed))
    out = {}
    for method in ("paper", "robust"):
        t0 = time.perf_counter()
        fit_runs(runs, axes=("D",), method=method, starts=starts, bootstrap=bootstrap)
        out[f"{method}_s_per_series_5_forms"] = time.perf_counter() - t0
    return out


def run_bench(draws=30, noise=0.02, starts=8, bootstrap=60, seed=0) -> dict:
    return {
        "machine": {"cpu_count": __import__("os").cpu_count(), "python": platform.python_version()},
        "setup": {"draws": draws, "noise": noise, "starts": starts, "bootstrap": bootstrap, "seeds": len(SEEDS)},
        "timing_defaults": timing(starts=32, bootstrap=200, seed=seed),
        "calibration": calibration(draws, noise, starts, bootstrap, seed),
    }

"""The fit record shared by both methods: schema, AICc, parameters at their bounds."""

from __future__ import annotations

import math

import numpy as np

from .forms import Form
from .series import Series

LEVEL_TOL = 1e-3  # a level (L_inf, L0) below LEVEL_TOL * min(loss) sits on its bound 0
EXPONENT_TOL = 1e-4
SHAPE_TOL = 1e-3  # relative


def num(v) -> float | None:
    """A JSON-safe float: None for NaN/inf."""
    v = float(v)
    return v if math.isfinite(v) else None


def new_fit(series: Series, form: Form, method: str, n_points: int) -> dict:
    xs = series.cell_x if series.axis != "ND" else series.cell_x[1]
    return {
        "model": series.model,
        "axis": series.axis,
        "fixed": dict(series.fixed),
        "form": form.name,
        "method": method,
        "params": None,
        "stderr": None,
        "ci95": None,
        "aicc": None,
        "n_points": int(n_points),
        "n_runs": int(series.n_runs),
        "x_range": [float(xs.min()), float(xs.max())],
        "status": "ok",
        "at_bound": [],
        "oos": None,
        "bootstrap": None,
    }


def too_few(series: Series, form: Form) -> str | None:
    """Why the series cannot determine the form, or None."""
    if series.n_cells < form.k:
        what = "(N, D) points" if series.axis == "ND" else f"distinct {series.axis}"
        return f"too few {what}: {series.n_cells} for {form.k} parameters"
    return None


def aicc(rss: float, n: int, k: int) -> tuple[float | None, str | None]:
    """AICc = 2k + n ln(RSS/n) + (2k^2 + 2k)/(n - k - 1) -> (value, why it is undefined)."""
    if n - k - 1 <= 0:
        return None, f"no AICc: n - k - 1 = {n - k - 1} <= 0 (n={n}, k={k})"
    if rss <= 0:
        rss = np.finfo(float).tiny  # an exact fit: the smallest positive RSS
    return 2 * k + n * math.log(rss / n) + (2 * k * k + 2 * k) / (n - k - 1), None


def at_bound(form: Form, values, y) -> list[str]:
    """Parameters sitting on a finite bound (levels on 0, exponents on their limits, sharpness)."""
    lo, hi = form.bounds()
    out = []
    for name, kind, v, a, b in zip(form.params, form.kinds, values, lo, hi, strict=True):
        tol = {"level": LEVEL_TOL * float(np.min(y)), "exponent": EXPONENT_TOL, "shape": SHAPE_TOL * v}.get(kind)
        if tol is not None and (v - a <= tol or b - v <= tol):
            out.append(name)
    return out


def add_status(fit: dict, why: str | None) -> None:
    if why:
        fit["status"] = why if fit["status"] == "ok" else f"{fit['status']}; {why}"

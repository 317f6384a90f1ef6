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


NO_EFFECT = 1e-7  # RMS change of log L per unit change of a parameter (in its fitting space)
COLLINEAR = 1e-7  # smallest singular value of the column-normalised Jacobian


def undetermined(form: Form, x, values) -> str | None:
    """Why the data cannot determine the parameters at this solution, or None.

    From the Jacobian of log L at the data points with respect to the parameters in their fitting
    space (log for scales): a parameter without effect (e.g. xc when both slopes are 0, x0 of a
    term that vanished) or a rank-deficient set (parameters that only act together).
    """
    values = np.asarray(values, float)
    cols = []
    with np.errstate(all="ignore"):
        for j, kind in enumerate(form.kinds):
            if kind == "level":  # linear, one-sided at its bound 0
                h = 1e-6 * max(abs(values[j]), 1e-3)
                up, dn = values.copy(), values.copy()
                up[j] += h
                dn[j] = max(dn[j] - h, 0.0)
            else:
                q = form.to_internal(values)
                h = 1e-6 * max(1.0, abs(q[j]))
                qu, qd = q.copy(), q.copy()
                qu[j] += h
                qd[j] -= h
                up, dn = form.to_natural(qu), form.to_natural(qd)
            step = (up[j] - dn[j]) if kind == "level" else 2 * h
            cols.append((form.log(x, *up) - form.log(x, *dn)) / step)
    J = np.array(cols).T
    if not np.all(np.isfinite(J)):
        return "degenerate: the law is not finite near the solution"
    size = np.sqrt(np.mean(J**2, axis=0))
    dead = [p for p, s in zip(form.params, size, strict=True) if s < NO_EFFECT]
    if dead:
        return f"degenerate: {', '.join(dead)} without effect on the loss at the data"
    sv = np.linalg.svd(J / (size * np.sqrt(len(J))), compute_uv=False)
    if sv[-1] < COLLINEAR:
        return "degenerate: parameters not determined separately (rank-deficient Jacobian)"
    return None


def add_status(fit: dict, why: str | None) -> None:
    if why:
        fit["status"] = why if fit["status"] == "ok" else f"{fit['status']}; {why}"

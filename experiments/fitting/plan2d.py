"""The cheapest (N, D) that reaches a target loss under a 2-D law L(N, D) (`kaplan`, `hoffmann`).

The training cost of one run is taken as C(N, D) = D * epochs / graphs_per_s(N) (hours), with
graphs_per_s(N) = g0 * N^-s fitted log-log to the throughput the sweep's runs logged (two distinct
N or more); without it, the 6 N D epochs proxy (s = 1). Both are c * D * N^s, so the cheapest point
on the iso-loss curve L(N, D) = target minimises log D + s log N, whatever c is. This assumes the
fixed-epochs recipe (the cost grows with D); the DFT cost of the materials is reported at the
optimum but is not in the objective (core-hours of DFT and hours of training are not one unit).

Search: N and D each from 1/1000 of the smallest observed value to 10^SEARCH_DECADES times the
largest, a 240 x 240 log grid (per D the smallest N with L <= target), then refined along the
curve (N solved by brentq, D by a bounded scalar minimisation). Unreachable: no grid point reaches
the target (the target is below the law's floor, the minimum of L over the box). The 95 %
intervals: percentiles over the bootstrap replicates of the law (unreachable ones count as +inf).
`at_search_edge`: the optimum lies on the box's edge (the cost does not turn up inside it, e.g.
a throughput that does not fall with N): the figures then say only "at least this far".
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from .forms import FORMS
from .plan import SEARCH_DECADES, _interval, replicate_params

GRID = 240


def _log_loss(form, params, N, D):
    args = [params[p] for p in form.params]
    with np.errstate(all="ignore"):
        return form.log(np.array([np.ravel(N), np.ravel(D)], float), *args)


def _n_needed(form, params, log_target, D, n_lo, n_hi) -> float | None:
    """The smallest N in [n_lo, n_hi] with L(N, D) <= target at this D (log grid, then brentq)."""
    grid = np.geomspace(n_lo, n_hi, GRID)
    below = np.flatnonzero(_log_loss(form, params, grid, np.full(GRID, D)) <= log_target)
    if below.size == 0:
        return None
    i = below[0]
    if i == 0:
        return float(grid[0])
    g = lambda ln: float(_log_loss(form, params, [np.exp(ln)], [D])[0] - log_target)  # noqa: E731
    return float(np.exp(brentq(g, np.log(grid[i - 1]), np.log(grid[i]), xtol=1e-9)))


def cheapest_point(form, params: dict, target: float, box, s: float) -> dict | None:
    """(N, D) minimising D * N^s on L(N, D) = target inside box ((n_lo, n_hi), (d_lo, d_hi)), or None."""
    (n_lo, n_hi), (d_lo, d_hi) = box
    Ns, Ds = np.geomspace(n_lo, n_hi, GRID), np.geomspace(d_lo, d_hi, GRID)
    mesh = _log_loss(form, params, np.repeat(Ns, GRID), np.tile(Ds, GRID)).reshape(GRID, GRID)
    ok = mesh <= np.log(target)  # [i, j] = (N_i, D_j)
    if not ok.any():
        return None
    first = np.where(ok.any(axis=0), ok.argmax(axis=0), -1)  # per D: the first N that reaches
    cols = np.flatnonzero(first >= 0)
    cost = np.log(Ds[cols]) + s * np.log(Ns[first[cols]])
    j = cols[int(np.argmin(cost))]

    def log_cost(ld):
        n = _n_needed(form, params, np.log(target), np.exp(ld), n_lo, n_hi)
        return np.inf if n is None else ld + s * np.log(n)

    a, b = np.log(Ds[max(j - 3, 0)]), np.log(Ds[min(j + 3, GRID - 1)])
    res = minimize_scalar(log_cost, bounds=(a, b), method="bounded", options={"xatol": 1e-6})
    ld = float(res.x) if np.isfinite(res.fun) and res.fun <= log_cost(np.log(Ds[j])) else float(np.log(Ds[j]))
    D = float(np.exp(ld))
    N = _n_needed(form, params, np.log(target), D, n_lo, n_hi)
    if N is None:
        return None
    edge = j in (0, GRID - 1) or N >= n_hi * 0.999 or N <= n_lo * 1.001
    return {"N": N, "D": D, "log_cost": float(ld + s * np.log(N)), "at_search_edge": bool(edge)}


def floor_2d(form, params: dict, box) -> float:
    """The minimum of L over the search box (the corner of the largest N and D for monotone laws)."""
    (n_lo, n_hi), (d_lo, d_hi) = box
    Ns, Ds = np.geomspace(n_lo, n_hi, 60), np.geomspace(d_lo, d_hi, 60)
    return float(np.exp(np.min(_log_loss(form, params, np.repeat(Ns, 60), np.tile(Ds, 60)))))


def search_box(fit: dict):
    cells = np.array(fit["_cells"], float)
    n, d = cells[:, 0], cells[:, 1]
    far = 10.0**SEARCH_DECADES
    return (n.min() / 1e3, n.max() * far), (d.min() / 1e3, d.max() * far)


def cheapest_for_target(fit: dict, target: float, s: float = 1.0) -> dict:
    """The cheapest (N, D) for `target` under the 2-D fit, with 95 % intervals over its replicates."""
    form, box = FORMS[fit["form"]], search_box(fit)
    best = cheapest_point(form, fit["params"], target, box, s)
    reps = replicate_params(fit)
    floors = [floor_2d(form, p, box) for p in reps]
    out = {
        "reachable": best is not None,
        "floor": floor_2d(form, fit["params"], box),
        "floor_ci95": _interval(floors),
        "cost_exponent_N": s,
        "N_needed": None,
        "D_needed": None,
        "N_needed_ci95": None,
        "D_needed_ci95": None,
        "reachable_share": None,
        "at_search_edge": None,
    }
    if best is None:
        return out
    found = [cheapest_point(form, p, target, box, s) for p in reps]
    out.update(N_needed=best["N"], D_needed=best["D"], at_search_edge=best["at_search_edge"])
    if found:
        out["reachable_share"] = float(np.mean([f is not None for f in found]))
        out["N_needed_ci95"] = _interval([np.inf if f is None else f["N"] for f in found])
        out["D_needed_ci95"] = _interval([np.inf if f is None else f["D"] for f in found])
    return out

"""`optiscale plan`: from the robust fits to decisions: the x (D or N) needed for a target loss,
whether a model is data- or model-limited at each observed point, and what the answer costs.

- Law of a (model, axis): the series with the most distinct x (ties: the largest fixed value, i.e.
  the current N along D, the current D along N); its robust fit marked `law` (select.py), else the
  form with the largest selection share whose break lies inside the data (`law_decided` False; the
  forms the data cannot tell apart are listed under `candidates`, each with its own x_needed).
- x_needed: the smallest x with L(x) <= target, searched up to SEARCH_DECADES decades beyond the
  largest observed x (L(x) = target solved by brentq in log x). Unreachable: None. Its ci95: the
  2.5-97.5 percentiles over the bootstrap replicates of the law (an unreachable replicate counts as
  +inf; an upper end at +inf is written null). floor: the limit of the law (L_inf, else 0 for a
  law that still falls at the end of the search, else its minimum there), with its ci95.
- Diagnosis of an observed point: the fall of log L from doubling D and from doubling N, from the
  2-D law where the model's runs form a grid (is_grid; a cross of two 1-D sweeps is none), else
  from the two 1-D laws (the N-law's gain at the point's N, the D-law's at its D: exact where the
  series cross, elsewhere assuming that the relative gain of one axis does not depend on the
  other). p_data_limited: share of replicates where doubling D gains more; "data" at >= 95 %,
  "model" at <= 5 %, else "unclear".
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .forms import FORMS
from .select import break_outside

SEARCH_DECADES = 6
DECIDED = 0.95


def solve_x(form, params: dict, target: float, x_min: float, x_max: float) -> float | None:
    """Smallest x in [x_min / 1e3, x_max * 10^SEARCH_DECADES] with L(x) <= target, or None."""
    grid = np.geomspace(x_min / 1e3, x_max * 10.0**SEARCH_DECADES, 3000)
    with np.errstate(all="ignore"):
        loss = form.predict(grid, params)
    below = np.flatnonzero(loss <= target)
    if below.size == 0:
        return None
    i = below[0]
    if i == 0:
        return float(grid[0])
    g = lambda lx: float(np.log(form.predict(np.array([np.exp(lx)]), params)[0]) - np.log(target))  # noqa: E731
    return float(np.exp(brentq(g, np.log(grid[i - 1]), np.log(grid[i]), xtol=1e-10)))


def floor_of(form, params: dict, x_max: float) -> float:
    """The loss the law tends to beyond the data (see the module docstring)."""
    grid = np.geomspace(x_max, x_max * 10.0**SEARCH_DECADES, 400)
    with np.errstate(all="ignore"):
        loss = form.predict(grid, params)
    if loss[-1] < loss[-2]:
        return float(params.get("L_inf", params.get("L0", 0.0)))
    return float(np.min(loss))


def _interval(values) -> list | None:
    """2.5-97.5 percentile interval; an end at +inf (unreachable replicates) is None."""
    v = np.asarray(list(values), float)
    if v.size < 2:
        return None
    lo, hi = np.percentile(np.where(np.isfinite(v), v, 1e300), [2.5, 97.5])
    return [float(lo) if lo < 1e299 else None, float(hi) if hi < 1e299 else None]


def replicate_params(fit: dict) -> list[dict]:
    form = FORMS[fit["form"]]
    return [dict(zip(form.params, r, strict=True)) for r in fit.get("_reps") or [] if r is not None]


def x_for_target(fit: dict, target: float) -> dict:
    """x_needed, its ci95, the share of replicates that reach the target, the floor and its ci95."""
    form, (lo, hi) = FORMS[fit["form"]], fit["x_range"]
    x = solve_x(form, fit["params"], target, lo, hi)
    reps = replicate_params(fit)
    xs = [solve_x(form, p, target, lo, hi) for p in reps]
    xs = [np.inf if v is None else v for v in xs]
    return {
        "reachable": x is not None,
        "x_needed": x,
        "x_needed_ci95": _interval(xs) if x is not None else None,
        "reachable_share": float(np.mean(np.isfinite(np.asarray(xs, float)))) if xs else None,
        "floor": floor_of(form, fit["params"], hi),
        "floor_ci95": _interval([floor_of(form, p, hi) for p in reps]),
    }


def choose_law(group: list[dict]) -> dict | None:
    """The fit used for planning in one robust series (see the module docstring), or None."""
    usable = [f for f in group if f["params"] and f.get("selection_share") is not None and not break_outside(f)]
    usable = [f for f in usable if f["delta_aicc"] is not None]
    law = [f for f in group if f.get("law")]
    if law:
        return law[0]
    return max(usable, key=lambda f: (f["selection_share"], -f["aicc"]), default=None)


def is_grid(fit: dict | None) -> bool:
    """An (N, D) fit over a grid: at least 2 N values with at least 2 D values each (not a cross)."""
    per_n: dict[float, set] = {}
    for n, d in (fit or {}).get("_cells") or []:
        per_n.setdefault(n, set()).add(d)
    return sum(len(ds) >= 2 for ds in per_n.values()) >= 2


def series_groups(fits: list[dict]) -> dict[tuple, list[dict]]:
    """(model, axis) -> the robust fits of its planning series."""
    by: dict[tuple, dict[tuple, list]] = {}
    for f in fits:
        if f["method"] == "robust":
            key = tuple(sorted(f["fixed"].items()))
            by.setdefault((f["model"], f["axis"]), {}).setdefault(key, []).append(f)
    out = {}
    for k, groups in by.items():
        pick = max(groups.items(), key=lambda kv: (kv[1][0]["n_points"], kv[0]))
        out[k] = pick[1]
    return out


def _log_gain(form, params, x, doubled) -> float:
    """log L(x) - log L(doubled): how much the doubling lowers the log loss."""
    args = [params[p] for p in form.params]
    return float(np.ravel(form.log(np.asarray(x, float), *args) - form.log(np.asarray(doubled, float), *args))[0])


def diagnose(point: tuple[float, float], laws: dict) -> dict | None:
    """Log-loss gains of doubling D and of doubling N at point (N, D) with their uncertainty."""
    N, D = point
    pairs = []  # (gain_D, gain_N) for the best fit, then per replicate
    if is_grid(laws.get("ND")):
        f = laws["ND"]
        form = FORMS[f["form"]]
        for p in [f["params"], *replicate_params(f)]:
            pairs.append(
                (_log_gain(form, p, [[N], [D]], [[N], [2 * D]]), _log_gain(form, p, [[N], [D]], [[2 * N], [D]]))
            )
        source = "2-D law " + f["form"]
    elif laws.get("D") and laws.get("N"):
        fd, fn = laws["D"], laws["N"]
        ld, ln = FORMS[fd["form"]], FORMS[fn["form"]]
        pairs.append((_log_gain(ld, fd["params"], [D], [2 * D]), _log_gain(ln, fn["params"], [N], [2 * N])))
        for pd, pn in zip(replicate_params(fd), replicate_params(fn), strict=False):
            pairs.append((_log_gain(ld, pd, [D], [2 * D]), _log_gain(ln, pn, [N], [2 * N])))
        source = f"1-D laws {fd['form']} (D) and {fn['form']} (N)"
    else:
        return None
    g = np.array(pairs)
    p = float(np.mean(g[1:, 0] > g[1:, 1])) if len(g) > 1 else None
    limited = "unclear" if p is None else "data" if p >= DECIDED else "model" if p <= 1 - DECIDED else "unclear"
    return {
        "N": N,
        "D": D,
        "gain_D_log": float(g[0, 0]),
        "gain_D_ci95": _interval(g[1:, 0]),
        "gain_N_log": float(g[0, 1]),
        "gain_N_ci95": _interval(g[1:, 1]),
        "p_data_limited": p,
        "limited": limited,
        "from": source,
    }

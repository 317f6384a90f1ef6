"""`plan` with pretraining: how many expensive materials reach the target loss when the model is
first trained on D_F cheap ones (the transfer law of fitting/transfer.py).

A scratch model needs x_needed target materials (the D-law of the plan). A model pretrained on D_F
cheap materials and fine-tuned on D expensive ones behaves like a scratch model with D + D_T(D_F, D)
of them, D_T = k D_F^a D^b. So the expensive materials needed are the smallest D >= D_lo with

    D + k D_F^a D^b >= x_needed,

D_lo the smallest fine-tuned D the law was fitted on (below it the law is not trusted: with b < 0
it would promise unbounded transfer as D -> 0). If even D_lo suffices, D_lo is reported as an upper
bound (`bound: "at most"`). Where D or D_F lies outside the fitted cells, `extrapolated` is true.

Interval: x_needed's bootstrap replicates paired with the transfer law's (two independent
bootstraps, paired by index and cycled to the longer one), each pair solved the same way.
Costs: the expensive materials beyond those the sweep already has, at the plan's cost per material,
and the D_F cheap ones (the whole pretraining set, as if none were labelled yet) at
`cheap_cost_per_material`; `cost_saved` compares with the scratch path's expensive materials.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .forms import FORMS
from .plan import _interval, replicate_params, solve_x


def expensive_needed(law: dict, d_f: float, x_needed: float, d_lo: float) -> tuple[float, bool]:
    """(D, at_most): the smallest D >= d_lo with D + k d_f^a D^b >= x_needed (see the docstring)."""
    gain = lambda d: d + law["k"] * d_f ** law["a"] * d ** law["b"] - x_needed  # noqa: E731
    if gain(d_lo) >= 0:
        return float(d_lo), True
    grid = np.geomspace(d_lo, max(x_needed, d_lo * 1.000001), 400)
    ok = np.flatnonzero([gain(d) >= 0 for d in grid])
    i = int(ok[0])  # gain(x_needed) = k d_f^a x^b > 0: the last grid point always qualifies
    return float(brentq(gain, grid[i - 1], grid[i], xtol=1e-9 * grid[i])), False


def _cells(rec: dict) -> tuple[list[float], list[float]]:
    pts = [p for p in rec["points"] if p.get("D_T") is not None and p["D_T"] > 0]
    return sorted({p["D"] for p in pts}), sorted({p["D_F"] for p in pts})


def _x_reps(law_fit: dict, target: float) -> list[float]:
    form, (lo, hi) = FORMS[law_fit["form"]], law_fit["x_range"]
    xs = [solve_x(form, p, target, lo, hi) for p in replicate_params(law_fit)]
    return [np.inf if v is None else v for v in xs]


def with_pretraining(entry: dict, law_fit: dict, rec: dict, d_fs=(), cheap_cost: float | None = None) -> list[dict]:
    """One row per D_F (the fitted D_F values and `d_fs`) for a reachable D entry of the plan."""
    law = rec.get("law")
    x = entry.get("x_needed")
    if entry["axis"] != "D" or law is None or x is None:
        return []
    ds, fitted_fs = _cells(rec)
    d_lo = ds[0]
    x_reps = _x_reps(law_fit, entry["target_loss"])
    law_reps = rec.get("_law_reps") or []
    n = max(len(x_reps), len(law_reps)) if x_reps and law_reps else 0
    have = entry["x_observed_max"]
    cost = entry.get("cost_per_material_core_hours")
    rows = []
    for d_f in sorted(set(fitted_fs) | {float(v) for v in d_fs}):
        d, at_most = expensive_needed(law, d_f, x, d_lo)
        reps = []
        for i in range(n):
            xi, li = x_reps[i % len(x_reps)], law_reps[i % len(law_reps)]
            reps.append(np.inf if not np.isfinite(xi) else expensive_needed(li, d_f, xi, d_lo)[0])
        row = {
            "D_F": d_f,
            "expensive_needed": d,
            "expensive_needed_ci95": _interval(reps),
            "bound": "at most" if at_most else "estimate",
            "extrapolated": not (ds[0] <= d <= ds[-1] and fitted_fs[0] <= d_f <= fitted_fs[-1]),
            "expensive_to_compute": max(d - have, 0.0),
            "saved_vs_scratch": x - d,
            "cheap_to_compute": d_f,
        }
        row["expensive_core_hours"] = None if cost is None else row["expensive_to_compute"] * cost
        row["cheap_core_hours"] = None if cheap_cost is None else d_f * cheap_cost
        if cost is not None and cheap_cost is not None:
            scratch = max(x - have, 0.0) * cost
            row["core_hours_saved"] = scratch - row["expensive_core_hours"] - row["cheap_core_hours"]
        else:
            row["core_hours_saved"] = None
        rows.append(row)
    return rows


def markdown_lines(rows: list[dict]) -> list[str]:
    """The entry's table of pretraining options."""
    if not rows:
        return []
    g = lambda v: "–" if v is None else f"{v:.4g}"  # noqa: E731
    ci = lambda c: "–" if not c else f"[{g(c[0])}, {'∞' if c[1] is None else g(c[1])}]"  # noqa: E731
    out = [
        "",
        "With pretraining on D_F cheap materials (transfer law D_T = k D_F^a D^b):",
        "",
        "| D_F | expensive D needed | 95 % interval | to compute | core-hours (expensive + cheap) | saved |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        flag = (" (at most)" if r["bound"] == "at most" else "") + (" (extrapolated)" if r["extrapolated"] else "")
        hours = f"{g(r['expensive_core_hours'])} + {g(r['cheap_core_hours'])}"
        out.append(
            f"| {r['D_F']:.4g} | {g(r['expensive_needed'])}{flag} | {ci(r['expensive_needed_ci95'])}"
            f" | {g(r['expensive_to_compute'])} | {hours} | {g(r['core_hours_saved'])} |"
        )
    return out

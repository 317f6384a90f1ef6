"""The plan of a sweep: one entry per (model, axis) with a law (plan.py), with its costs.

Costs of reaching the target along D (per seed):
- materials_to_compute = x_needed - the largest observed D (0 if already there), with its ci95;
  dft_core_hours = that x the cost per material (costs.py: from the flag, the records' timing or
  the surrogate's generation time; `cost_source` says which), else null.
- train_hours = D * epochs / graphs_per_s / 3600: one run at the needed D (graphs per epoch = D),
  with the run's `epochs` and the median `graphs_per_s` (throughput logged per epoch; the last
  epoch's value per run) of the model's runs at the series' N. Along N: one run at the series' D
  with the throughput at the needed N, interpolated log-log in N over the model's runs (needs two
  distinct N). null where the runs logged no throughput.

Along ND (a model whose runs form a grid, plan.is_grid): the cheapest (N, D) on L(N, D) = target
(plan2d.py), with its materials, DFT core-hours and training hours as above.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .plan import choose_law, diagnose, is_grid, series_groups, x_for_target
from .plan2d import cheapest_for_target
from .plan_transfer import with_pretraining
from .select import CANDIDATE_SHARE, break_outside

SECONDS_PER_HOUR = 3600.0


def read_csv_throughput(path) -> list[dict]:
    """Optional columns graphs_per_s and epochs of a runs CSV (rows without them are left out)."""
    out = []
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            row = {(k or "").strip(): v for k, v in row.items()}
            try:
                gps, ep = float(row.get("graphs_per_s") or "nan"), float(row.get("epochs") or "nan")
                rec = {"model": row["model"].strip(), "N": float(row["N"]), "D": float(row["D"])}
            except (ValueError, KeyError, AttributeError):
                continue
            if math.isfinite(gps) and gps > 0 and math.isfinite(ep) and ep > 0:
                out.append({**rec, "graphs_per_s": gps, "epochs": ep})
    return out


def read_mlflow_throughput(experiment: str, tracking_uri: str | None = None) -> list[dict]:
    """graphs_per_s (last epoch) and the epochs param of the FINISHED runs of an experiment."""
    from experiments.stores import tracking

    client = tracking.client_for(tracking_uri or tracking.default_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    out, token = [], None
    while exp is not None:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        for r in page:
            p, m = r.data.params, r.data.metrics
            try:
                rec = {"model": p["model"], "N": float(p["n_parameters"]), "D": float(p["D"])}
                gps, ep = float(m["graphs_per_s"]), float(p["epochs"])
            except (KeyError, ValueError):
                continue
            if r.info.status == "FINISHED" and gps > 0 and ep > 0:
                out.append({**rec, "graphs_per_s": gps, "epochs": ep})
        token = page.token
        if not token:
            break
    return out


def rate_at(throughput: list[dict], model: str, N: float) -> tuple[float | None, float | None]:
    """(graphs_per_s at N, median epochs) of a model's runs; None where it cannot be told."""
    rows = [t for t in throughput if t["model"] == model]
    if not rows:
        return None, None
    epochs = float(np.median([t["epochs"] for t in rows]))
    by_n: dict[float, list] = {}
    for t in rows:
        by_n.setdefault(t["N"], []).append(t["graphs_per_s"])
    if N in by_n:
        return float(np.median(by_n[N])), epochs
    if len(by_n) < 2:
        return None, epochs
    slope, icpt = _rate_law(by_n)
    return float(np.exp(icpt + slope * np.log(N))), epochs


def _rate_law(by_n: dict) -> tuple[float, float]:
    ns = np.array(sorted(by_n))
    rates = np.array([np.median(by_n[n]) for n in ns])
    slope, icpt = np.polyfit(np.log(ns), np.log(rates), 1)
    return float(slope), float(icpt)


def cost_exponent(throughput: list[dict], model: str) -> float | None:
    """s in graphs_per_s ~ N^-s over the model's runs (two distinct N or more), else None."""
    by_n: dict[float, list] = {}
    for t in throughput:
        if t["model"] == model:
            by_n.setdefault(t["N"], []).append(t["graphs_per_s"])
    return -_rate_law(by_n)[0] if len(by_n) >= 2 else None


def _costs_nd(entry: dict, law: dict, throughput, cost_per_material) -> dict:
    """Materials, DFT core-hours and training hours at the cheapest (N, D) and its interval ends."""
    have = max(d for _, d in law["_cells"])
    more = lambda v: None if v is None else max(v - have, 0.0)  # noqa: E731
    dft = lambda v: None if v is None or cost_per_material is None else more(v) * cost_per_material  # noqa: E731
    D, dci = entry["D_needed"], entry["D_needed_ci95"] or [None, None]
    out = {"materials_to_compute": more(D), "materials_to_compute_ci95": [more(v) for v in dci] if D else None}
    out.update(dft_core_hours=dft(D), dft_core_hours_ci95=[dft(v) for v in dci] if D and cost_per_material else None)
    out.update(train_hours=None, train_hours_ci95=None, graphs_per_s=None, epochs=None)
    if D is not None:
        gps, ep = rate_at(throughput, entry["model"], entry["N_needed"])
        out.update(graphs_per_s=gps, epochs=ep)
        if gps is not None:
            out["train_hours"] = D * ep / gps / SECONDS_PER_HOUR
    return out


def choose_law_nd(group: list[dict]) -> dict | None:
    """The 2-D fit to plan with: the law (select.py), else the form with the largest selection share
    whose D_c is not above the largest observed D. A D_c below the data is no unseen break for a plan
    that extrapolates upwards (the data already show the slope beyond it), though select.py, which
    names the headline law, does not make that distinction."""
    law = choose_law(group)
    if law is not None:
        return law
    ok = [f for f in group if f["params"] and f.get("selection_share") is not None and f["delta_aicc"] is not None]
    ok = [f for f in ok if f["params"].get("D_c") is not None and f["params"]["D_c"] <= f["x_range"][1]]
    return max(ok, key=lambda f: (f["selection_share"], -f["aicc"]), default=None)


def plan_nd(model: str, law: dict, target: float, throughput, cost_per_material, laws: dict) -> dict:
    """The ND entry of a model whose runs form a grid: the cheapest (N, D) for the target."""
    s = cost_exponent(throughput, model)
    entry = {"model": model, "axis": "ND", "fixed": {}, "law": law["form"], "target_loss": target}
    entry.update(law_decided=bool(law.get("law")), selection=law.get("selection"))
    entry.update(selection_share=law["selection_share"], x_observed_max=law["x_range"][1])
    found = cheapest_for_target(law, target, 1.0 if s is None else s)
    entry.update(reachable=found.pop("reachable"), x_needed=None, x_needed_ci95=None)
    entry["objective"] = "6ND" if s is None else "train_hours"
    entry.update(found, candidates=[], x_needed_ci95_across_forms=None)
    entry.update(_costs_nd(entry, law, throughput, cost_per_material))
    entry["diagnosis"] = [d for d in (diagnose(tuple(c), laws) for c in law["_cells"]) if d is not None]
    return entry


def _costs(entry: dict, law: dict, throughput, cost_per_material) -> dict:
    x, ci = entry["x_needed"], entry["x_needed_ci95"] or [None, None]
    have = law["x_range"][1]
    out: dict = {"materials_to_compute": None}
    out.update(materials_to_compute_ci95=None, dft_core_hours=None, dft_core_hours_ci95=None)
    out.update(train_hours=None, train_hours_ci95=None, graphs_per_s=None, epochs=None)
    more = (lambda v: None if v is None else max(v - have, 0.0)) if entry["axis"] == "D" else (lambda v: None)
    if entry["axis"] == "D" and x is not None:
        out["materials_to_compute"], out["materials_to_compute_ci95"] = more(x), [more(v) for v in ci]
        if cost_per_material is not None:
            out["dft_core_hours"] = more(x) * cost_per_material
            out["dft_core_hours_ci95"] = [None if v is None else more(v) * cost_per_material for v in ci]
    if x is None:
        return out
    fixed = next(iter(law["fixed"].values()))
    N_of = (lambda v: fixed) if entry["axis"] == "D" else (lambda v: v)
    D_of = (lambda v: v) if entry["axis"] == "D" else (lambda v: fixed)

    def hours(v):
        if v is None:
            return None
        gps, ep = rate_at(throughput, entry["model"], N_of(v))
        return None if gps is None else D_of(v) * ep / gps / SECONDS_PER_HOUR

    gps, ep = rate_at(throughput, entry["model"], N_of(x))
    out.update(graphs_per_s=gps, epochs=ep, train_hours=hours(x))
    if out["train_hours"] is not None:
        out["train_hours_ci95"] = [hours(v) for v in ci]
    return out


def plan_fits(
    fits: list[dict],
    target: float,
    throughput=(),
    cost_per_material: float | None = None,
    cost: dict | None = None,
    transfer: list[dict] | None = None,
    pretrain_D=(),
    cheap_cost: dict | None = None,
) -> list[dict]:
    """The plan entries of robust `fits` (with their replicates) for the target loss. `cost`: the
    cost fields of costs.material_cost (default: from `cost_per_material`, source "flag" or null).
    `transfer`: records of fitting.transfer; a D entry of a model with a transfer law then lists the
    expensive materials needed after pretraining on each fitted D_F and each of `pretrain_D`
    (plan_transfer.py), the cheap ones costed by `cheap_cost` (material_cost of the cheap store)."""
    if not (isinstance(target, int | float) and math.isfinite(target) and target > 0):
        raise ValueError(f"--target-loss must be a positive number, got {target!r}")
    if cost_per_material is not None and not (math.isfinite(cost_per_material) and cost_per_material >= 0):
        raise ValueError(f"--cost-per-material must be >= 0, got {cost_per_material!r}")
    if cost is None:
        cost = {
            "cost_per_material_core_hours": cost_per_material,
            "cost_source": None if cost_per_material is None else "flag",
        }
    cost_per_material = cost["cost_per_material_core_hours"]
    groups = series_groups(fits)
    laws = {k: (choose_law_nd if k[1] == "ND" else choose_law)(g) for k, g in groups.items()}
    entries = []
    for (model, axis), group in sorted(groups.items()):
        law = laws[(model, axis)]
        if law is None:
            continue
        if axis == "ND":
            if is_grid(law):
                model_laws = {a: laws.get((model, a)) for a in ("D", "N", "ND")}
                entries.append({**plan_nd(model, law, target, throughput, cost_per_material, model_laws), **cost})
            continue
        entry = {"model": model, "axis": axis, "fixed": law["fixed"], "law": law["form"], "target_loss": target}
        entry.update(law_decided=bool(law.get("law")), selection=law.get("selection"))
        entry.update(selection_share=law["selection_share"], x_observed_max=law["x_range"][1])
        entry.update(x_for_target(law, target))
        entry["candidates"] = []
        if not entry["law_decided"]:
            for f in group:
                if f["params"] and (f.get("selection_share") or 0) >= CANDIDATE_SHARE and not break_outside(f):
                    r = x_for_target(f, target)
                    entry["candidates"].append({"form": f["form"], "selection_share": f["selection_share"], **r})
        lows = [c["x_needed_ci95"][0] for c in entry["candidates"] if c["x_needed_ci95"]]
        highs = [c["x_needed_ci95"][1] if c["x_needed_ci95"] else None for c in entry["candidates"]]
        entry["x_needed_ci95_across_forms"] = (
            [min(lows), None if None in highs else max(h for h in highs if h is not None)]
            if lows and entry["candidates"]
            else None
        )
        entry.update(_costs(entry, law, throughput, cost_per_material))
        entry.update(cost)
        rec = next((r for r in transfer or () if r["model"] == model and r.get("law")), None)
        if axis == "D" and rec is not None:
            cheap = (cheap_cost or {}).get("cost_per_material_core_hours")
            entry["transfer_law"] = {k: v for k, v in rec["law"].items()}
            entry["cheap_cost_per_material_core_hours"] = cheap
            entry["cheap_cost_source"] = (cheap_cost or {}).get("cost_source")
            entry["with_pretraining"] = with_pretraining(entry, law, rec, pretrain_D, cheap)
        model_laws = {a: laws.get((model, a)) for a in ("D", "N", "ND")}
        fixed = next(iter(law["fixed"].values()))
        pts = sorted({(fixed, x) if axis == "D" else (x, fixed) for x in _cells(law)})
        entry["diagnosis"] = [d for d in (diagnose(p, model_laws) for p in pts) if d is not None]
        entries.append(entry)
    return entries


def _cells(fit: dict) -> list[float]:
    return list(fit.get("_cells") or fit["x_range"])

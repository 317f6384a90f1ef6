"""The plan of a sweep: one entry per (model, axis) with a law (plan.py), with its costs.

Costs of reaching the target along D (per seed):
- materials_to_compute = x_needed - the largest observed D (0 if already there), with its ci95;
  dft_core_hours = that x `--cost-per-material` (core-hours per material), else null.
- train_hours = D * epochs / graphs_per_s / 3600: one run at the needed D (graphs per epoch = D),
  with the run's `epochs` and the median `graphs_per_s` (throughput logged per epoch; the last
  epoch's value per run) of the model's runs at the series' N. Along N: one run at the series' D
  with the throughput at the needed N, interpolated log-log in N over the model's runs (needs two
  distinct N). null where the runs logged no throughput.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .plan import choose_law, diagnose, series_groups, x_for_target
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
    ns = np.array(sorted(by_n))
    rates = np.array([np.median(by_n[n]) for n in ns])
    slope, icpt = np.polyfit(np.log(ns), np.log(rates), 1)
    return float(np.exp(icpt + slope * np.log(N))), epochs


def _costs(entry: dict, law: dict, throughput, cost_per_material) -> dict:
    x, ci = entry["x_needed"], entry["x_needed_ci95"] or [None, None]
    have = law["x_range"][1]
    out = {"cost_per_material_core_hours": cost_per_material, "materials_to_compute": None}
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


def plan_fits(fits: list[dict], target: float, throughput=(), cost_per_material: float | None = None) -> list[dict]:
    """The plan entries of robust `fits` (with their replicates) for the target loss."""
    if not (isinstance(target, int | float) and math.isfinite(target) and target > 0):
        raise ValueError(f"--target-loss must be a positive number, got {target!r}")
    if cost_per_material is not None and not (math.isfinite(cost_per_material) and cost_per_material >= 0):
        raise ValueError(f"--cost-per-material must be >= 0, got {cost_per_material!r}")
    groups = series_groups(fits)
    laws = {k: choose_law(g) for k, g in groups.items()}
    entries = []
    for (model, axis), group in sorted(groups.items()):
        law = laws[(model, axis)]
        if axis == "ND" or law is None:
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
            [min(lows), None if None in highs else max(highs)] if lows and entry["candidates"] else None
        )
        entry.update(_costs(entry, law, throughput, cost_per_material))
        model_laws = {a: laws.get((model, a)) for a in ("D", "N", "ND")}
        fixed = next(iter(law["fixed"].values()))
        pts = sorted({(fixed, x) if axis == "D" else (x, fixed) for x in _cells(law)})
        entry["diagnosis"] = [d for d in (diagnose(p, model_laws) for p in pts) if d is not None]
        entries.append(entry)
    return entries


def _cells(fit: dict) -> list[float]:
    return list(fit.get("_cells") or fit["x_range"])

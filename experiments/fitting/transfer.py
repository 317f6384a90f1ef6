"""Effective data transferred by pre-training (Hernandez et al. 2021, "Scaling laws for transfer").

Rows: one run of one model on the target data: model, D (target materials), seed, val_loss (the
metric `fit` uses: MLflow's best_val_loss) and D_F, the materials of the source run it was
fine-tuned from (0 or None: trained from scratch). From MLflow, D_F is the param `pretrain_D`
(the fine-tuning code logs the source run key as `init_from` and its D as `pretrain_D`).

The scratch law L_scratch(D) is a robust fit (power_floor, else power) of the scratch runs. A
fine-tuned point at D with loss L reaches the loss that scratch training reaches at D_eff
(L_scratch(D_eff) = L, solved as plan.solve_x does), so D_T = D_eff - D. D_T <= 0 is negative
(or no) transfer: reported, never dropped, but left out of the law D_T = k D_F^a D^b, fitted by
least squares in log space. Intervals: 95 % bootstrap, runs resampled within every (D_F, D) cell,
scratch law refitted per replicate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .forms import FORMS
from .plan import solve_x
from .robust import point_fit
from .series import Series
from .sources import make_run


def make_row(model, D, seed, val_loss, D_F) -> dict:
    """One validated row; raises ValueError("column: why")."""
    run = make_run(model, D, 1, seed, val_loss)
    run.pop("N")
    if D_F is None or str(D_F).strip() in ("", "0", "0.0", "None", "nan"):
        run["D_F"] = 0
        return run
    try:
        v = float(D_F)
    except (TypeError, ValueError):
        raise ValueError(f"column 'D_F': not a number: {D_F!r}") from None
    if not np.isfinite(v) or v < 0 or v != int(v):
        raise ValueError(f"column 'D_F': must be 0 or a positive whole number, got {D_F!r}")
    run["D_F"] = int(v)
    return run


def rows_from_records(records, source: str = "records") -> list[dict]:
    """Rows from mappings (CSV dicts or a DataFrame's records); one clear error line per bad row."""
    if hasattr(records, "to_dict"):
        records = records.to_dict("records")
    rows = []
    for i, r in enumerate(records):
        try:
            rows.append(make_row(r.get("model"), r.get("D"), r.get("seed"), r.get("val_loss"), r.get("D_F")))
        except ValueError as err:
            raise ValueError(f"{source}: row {i + 1}: {err}") from None
    return rows


def row_from_mlflow(run_id: str, params: dict, metrics: dict) -> dict:
    """A row from one MLflow run: params model, D, seed, pretrain_D (absent: scratch), metric best_val_loss."""
    missing = [f"param {k!r}" for k in ("model", "D", "seed") if k not in params]
    missing += ["metric 'best_val_loss'"] if "best_val_loss" not in metrics else []
    if missing:
        raise ValueError(f"run {run_id}: missing {', '.join(missing)}")
    try:
        return make_row(
            params["model"], params["D"], params["seed"], metrics["best_val_loss"], params.get("pretrain_D")
        )
    except ValueError as err:
        raise ValueError(f"run {run_id}: {err}".replace("column 'D_F'", "param 'pretrain_D'")) from None


def has_transfer(rows) -> bool:
    return any(r.get("D_F") for r in rows)


def _cells(rows, model):
    """{(D_F, D): array of losses} for one model."""
    out: dict = {}
    for r in rows:
        if r["model"] == model:
            out.setdefault((r["D_F"], r["D"]), []).append(r["val_loss"])
    return {k: np.asarray(v, float) for k, v in sorted(out.items())}


def _scratch_series(model, cells) -> Series:
    ds = sorted(d for f, d in cells if f == 0)
    x, y, c = [], [], []
    for i, d in enumerate(ds):
        v = cells[(0, d)]
        x += [d] * len(v)
        y += list(v)
        c += [i] * len(v)
    return Series(model, "D", {}, np.array(x, float), np.array(y, float), np.array(c), np.array(ds, float))


def _scratch_law(model, cells, starts):
    """(form, params) of the scratch law: power_floor when it fits, else power; None if neither."""
    s = _scratch_series(model, cells)
    for name in ("power_floor", "power"):
        fit, q, _ = point_fit(s, FORMS[name], starts=starts)
        if q is not None and fit.get("params"):
            return FORMS[name], fit["params"], s
    return None, None, s


def _estimate(model, cells, starts):
    """D_T per fine-tuned cell and the law (k, a, b) from the cells' mean losses."""
    form, params, s = _scratch_law(model, cells, starts)
    if form is None:
        return None
    lo, hi = float(s.cell_x.min()), float(s.cell_x.max())
    points = []
    for (d_f, d), v in cells.items():
        if d_f == 0:
            continue
        d_eff = solve_x(form, params, float(v.mean()), lo, hi)
        points.append(
            {"D_F": d_f, "D": d, "loss": float(v.mean()), "D_eff": d_eff, "D_T": None if d_eff is None else d_eff - d}
        )
    return form, params, points, _law(points)


def _law(points) -> dict | None:
    ok = [p for p in points if p["D_T"] is not None and p["D_T"] > 0]
    if len(ok) < 3 or len({p["D_F"] for p in ok}) < 2 or len({p["D"] for p in ok}) < 2:
        return None
    A = np.array([[1.0, np.log(p["D_F"]), np.log(p["D"])] for p in ok])
    coef = np.linalg.lstsq(A, np.log([p["D_T"] for p in ok]), rcond=None)[0]
    return {"k": float(np.exp(coef[0])), "a": float(coef[1]), "b": float(coef[2])}


def _why_excluded(p) -> str | None:
    if p["D_T"] is None:
        return "loss below the scratch law's reach (D_eff beyond the search range)"
    if p["D_T"] <= 0:
        return "negative transfer (D_T <= 0): fine-tuning no better than scratch at this D"
    return None


def _ci(values):
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    return None if v.size < 2 else [float(x) for x in np.percentile(v, [2.5, 97.5])]


def fit_transfer(rows, bootstrap=200, starts=16, seed=0, cost_expensive=None, cost_cheap=None) -> list[dict]:
    """One transfer record per model with fine-tuned rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    records = []
    for model in sorted({r["model"] for r in rows if r["D_F"]}):
        cells = _cells(rows, model)
        rec = {"model": model, "kind": "transfer", "status": "ok", "law": None, "points": [], "excluded": []}
        records.append(rec)
        if len({d for f, d in cells if f == 0}) < 3:
            rec["status"] = "too few scratch D values (need 3) for the scratch law"
            continue
        est = _estimate(model, cells, starts)
        if est is None:
            rec["status"] = "scratch law fit failed"
            continue
        form, params, points, law = est
        rec["scratch_law"] = {"form": form.name, "params": params}
        reps = []
        for _ in range(bootstrap):
            rc = {k: rng.choice(v, size=len(v)) for k, v in cells.items()}
            r = _estimate(model, rc, max(4, starts // 4))
            if r is not None:
                reps.append(r)
        rec["bootstrap"] = {"replicates": bootstrap, "converged": len(reps)}
        for i, p in enumerate(points):
            dts = [r[2][i]["D_T"] for r in reps]
            p["D_T_ci95"] = _ci(dts)
            p["saved_fraction"] = None if p["D_T"] is None else p["D_T"] / (p["D"] + p["D_T"])
            why = _why_excluded(p)
            if why:
                rec["excluded"].append({"D_F": p["D_F"], "D": p["D"], "reason": why})
        rec["points"] = points
        apply_costs(rec, cost_expensive, cost_cheap)
        if law is None:
            rec["status"] = "too few positive-transfer points (need 3 over >= 2 D_F and >= 2 D) for the law"
            continue
        laws = [r[3] for r in reps if r[3] is not None]
        rec["law"] = {**law, **{f"{k}_ci95": _ci([w[k] for w in laws]) for k in ("k", "a", "b")}}
        rec["law"]["n_points"] = len(points) - len(rec["excluded"])
        rec["_law_reps"] = laws  # for plan's intervals; private: not written to fits.json
    return records


def apply_costs(rec: dict, expensive: float | None, cheap: float | None, unit: str | None = None) -> None:
    """Each point's `cost_saved` = D_T x expensive - D_F x cheap (the labels pretraining replaced,
    less the cheap ones it used), where the expensive cost is known."""
    rec["cost_expensive"], rec["cost_cheap"] = expensive, cheap
    if unit is not None:
        rec["cost_unit"] = unit
    for p in rec["points"]:
        if expensive is not None and p.get("D_T") is not None:
            p["cost_saved"] = p["D_T"] * expensive - p["D_F"] * (cheap or 0.0)


def _iv(ci) -> str:
    return "n/a" if not ci else f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def transfer_markdown(records) -> str:
    """The fits.md section."""
    out = ["## Transfer (effective data transferred, D_T = k D_F^a D^b)", ""]
    for rec in records:
        out.append(f"### {rec['model']}: {rec['status']}")
        law = rec.get("law")
        if law:
            out.append(
                f"k = {law['k']:.4g} {_iv(law['k_ci95'])}, a = {law['a']:.3f} {_iv(law['a_ci95'])}, "
                f"b = {law['b']:.3f} {_iv(law['b_ci95'])} (95 % bootstrap; {law['n_points']} points)"
            )
        out += ["", "| D_F | D | D_T | D_T ci95 | saved fraction |", "|---|---|---|---|---|"]
        for p in rec["points"]:
            dt = "n/a" if p["D_T"] is None else f"{p['D_T']:.4g}"
            sf = "n/a" if p["saved_fraction"] is None else f"{p['saved_fraction']:.3f}"
            out.append(f"| {p['D_F']} | {p['D']} | {dt} | {_iv(p['D_T_ci95'])} | {sf} |")
        for e in rec["excluded"]:
            out.append(f"- excluded D_F={e['D_F']}, D={e['D']}: {e['reason']}")
        out.append("")
    return "\n".join(out)


def read_csv_rows(path) -> list[dict]:
    """Rows from a CSV with columns model,D,seed,val_loss[,D_F] (D_F absent or empty: scratch)."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(newline="") as fh:
        records = [{(k or "").strip(): v for k, v in row.items()} for row in csv.DictReader(fh)]
    missing = [c for c in ("model", "D", "seed", "val_loss") if records and c not in records[0]]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    try:
        return rows_from_records(records, str(path))
    except ValueError as err:  # rows counted from the data; +1 for the header line
        raise ValueError(str(err).replace(": row ", ": data row ", 1)) from None


def plot_transfer(record: dict, path) -> Path:
    """Scratch law, fine-tuned points (mean loss) and arrows from D to D_eff, saved as `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .report import _save

    law, pts = record["scratch_law"], record["points"]
    xs = [p["D"] for p in pts] + [p["D_eff"] for p in pts if p["D_eff"]]
    grid = np.geomspace(min(xs) / 2, max(xs) * 2, 200)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(grid, FORMS[law["form"]].predict(grid, law["params"]), "k-", label=f"scratch ({law['form']})")
    for d_f in sorted({p["D_F"] for p in pts}):
        mine = [p for p in pts if p["D_F"] == d_f]
        ax.plot([p["D"] for p in mine], [p["loss"] for p in mine], "o", label=f"fine-tuned, D_F={d_f}")
        for p in mine:
            if p["D_eff"]:
                ax.annotate(
                    "", (p["D_eff"], p["loss"]), (p["D"], p["loss"]), arrowprops={"arrowstyle": "->", "lw": 0.7}
                )
    ax.set(xscale="log", yscale="log", xlabel="D (target materials)", ylabel="val loss", title=record["model"])
    ax.legend(fontsize=7)
    return _save(fig, Path(path))

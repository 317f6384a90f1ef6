"""The study's report: best configuration, parameter importances and every trial, as JSON and
Markdown (written atomically), logged as artifacts of one report run per study in MLflow.

JSON: {"study", "storage", "best": {number, value, params, n_parameters} | null,
"importances": {param: share} | null, "counts": {state: n}, "trials": [{number, state, params,
value, n_parameters, rejected, mlflow_run_id}]}. Importances: Optuna's fANOVA evaluator (its own
random forest, seeded) over the complete trials; null with fewer than 2 complete trials or no
varied parameter.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.atomic import atomic_write_json, atomic_write_text

REPORT_KIND_TAG = "optiscale.kind"


def trial_rows(study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "params": dict(t.params),
                "value": t.value,
                "n_parameters": t.user_attrs.get("n_parameters"),
                "rejected": t.user_attrs.get("rejected"),
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
            }
        )
    return rows


def importances(study) -> dict | None:
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = [p for p in (complete[0].params if complete else {}) if len({str(t.params.get(p)) for t in complete}) > 1]
    if len(complete) < 2 or not varied:
        return None
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator, params=varied)
    except (RuntimeError, ValueError):
        return None
    return {k: float(v) for k, v in found.items()}


def study_report(study, storage_url: str) -> dict:
    from optuna.trial import TrialState

    rows = trial_rows(study)
    complete = [r for r in rows if r["state"] == TrialState.COMPLETE.name]
    best = min(complete, key=lambda r: r["value"]) if complete else None
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    return {
        "study": study.study_name,
        "storage": storage_url,
        "best": None if best is None else {k: best[k] for k in ("number", "value", "params", "n_parameters")},
        "importances": importances(study),
        "counts": counts,
        "trials": rows,
    }


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (params or {}).items())


def markdown(report: dict) -> str:
    lines = [f"# Study `{report['study']}`", "", f"Storage: `{report['storage']}`", ""]
    lines.append("Trials: " + ", ".join(f"{n} {s}" for s, n in sorted(report["counts"].items())))
    best = report["best"]
    lines += ["", "## Best configuration", ""]
    if best is None:
        lines.append("No complete trial yet.")
    else:
        lines.append(f"Trial {best['number']}: best_val_loss {best['value']:.6g}, {best['n_parameters']:,} parameters")
        lines += [
            "",
            "| knob | value |",
            "|---|---|",
            *(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in best["params"].items()),
        ]
    lines += ["", "## Parameter importances (fANOVA)", ""]
    if report["importances"]:
        lines += [
            "| knob | importance |",
            "|---|---|",
            *(f"| {k} | {v:.3f} |" for k, v in report["importances"].items()),
        ]
    else:
        lines.append("Not enough complete trials with varied parameters.")
    lines += ["", "## Trials", "", "| # | state | value | parameters | knobs |", "|---|---|---|---|---|"]
    for r in report["trials"]:
        value = "" if r["value"] is None else f"{r['value']:.6g}"
        state = r["state"] + (f" ({r['rejected']})" if r["rejected"] else "")
        knobs = _fmt(r["params"])
        n = "" if r["n_parameters"] is None else f"{r['n_parameters']:,}"
        lines.append(f"| {r['number']} | {state} | {value} | {n} | {knobs} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{report['study']}.json", out_dir / f"{report['study']}.md"
    atomic_write_json(js, report)
    atomic_write_text(md, markdown(report))
    return js, md


def log_report(paths, study_name: str, tracking_uri: str, experiment: str) -> str:
    """Log the report files to the study's report run (created once, reused by reruns)."""
    from experiments.stores import tracking

    client = tracking.client_for(tracking_uri)
    exp_id = tracking.experiment_id(client, experiment, tracking_uri)
    found = client.search_runs(
        [exp_id], filter_string=f"tags.`optuna.study` = '{study_name}' and tags.`{REPORT_KIND_TAG}` = 'study-report'"
    )
    if found:
        run_id = found[0].info.run_id
    else:
        tags = {"optuna.study": study_name, REPORT_KIND_TAG: "study-report", "mlflow.runName": f"study-{study_name}"}
        run_id = client.create_run(exp_id, tags=tags, run_name=f"study-{study_name}").info.run_id
    for p in paths:
        client.log_artifact(run_id, str(p), artifact_path="study")
    client.set_terminated(run_id, "FINISHED")
    return run_id


def capacity_table(reports: list[dict], cells) -> dict:
    """D x budget -> the best trial of each cell (the capacity preset's answer)."""
    rows = []
    for spec, rep in zip(cells, reports, strict=True):
        best = rep["best"] or {}
        rows.append(
            {
                "study": rep["study"],
                "D": spec.D,
                "budget": spec.budget,
                "best_val_loss": best.get("value"),
                "n_parameters": best.get("n_parameters"),
                "params": best.get("params"),
                "complete": rep["counts"].get("COMPLETE", 0),
            }
        )
    return {"cells": rows}


def capacity_markdown(table: dict) -> str:
    lines = ["# Capacity: best model within each parameter budget", ""]
    lines += ["| D | budget | best_val_loss | parameters | knobs | complete trials |", "|---|---|---|---|---|---|"]
    for r in table["cells"]:
        v = "" if r["best_val_loss"] is None else f"{r['best_val_loss']:.5g}"
        n = "" if r["n_parameters"] is None else f"{r['n_parameters']:,}"
        knobs = _fmt(r["params"])
        lines.append(f"| {r['D']} | {r['budget']:.0e} | {v} | {n} | {knobs} | {r['complete']} |")
    return "\n".join(lines) + "\n"

"""The end of a sweep: fit the scaling laws to its runs, write the report, log it to MLflow."""

from __future__ import annotations

from pathlib import Path

from .spec import SweepSpec

REPORT_DIR = Path("reports")


def fit_and_report(spec: SweepSpec, axis: str, tracking_uri: str, method: str = "both", log=print) -> dict:
    """Fit every form along `axis` to the finished runs, write reports/<experiment>/, log it as one run."""
    import mlflow
    from experiments.fitting import best_fits, fit_runs, read_mlflow, write_report
    from experiments.stores.tracking import KIND_TAG

    experiment = spec.experiment(axis)
    runs, skipped = read_mlflow(experiment, tracking_uri)
    for s in skipped:
        log(f"[sweep] fit skips run {s['run_id']}: {s['reason']}")
    fits = fit_runs(runs, axes=(axis,), method=method, bootstrap=100)
    out = REPORT_DIR / experiment
    paths = write_report(fits, runs, out)
    best = best_fits(fits)
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"no MLflow experiment {experiment!r} in {tracking_uri}")
    old = client.search_runs([exp.experiment_id], f"tags.`{KIND_TAG}` = 'report'", max_results=1)
    run_id = (
        old[0].info.run_id
        if old
        else client.create_run(
            exp.experiment_id, run_name=f"report-{experiment}", tags={KIND_TAG: "report"}
        ).info.run_id
    )
    client.log_artifacts(run_id, str(out), artifact_path="report")
    for f in best:
        if f.get("status") != "ok":
            continue
        for name, value in (f.get("params") or {}).items():
            if name.startswith("alpha") and value is not None:
                client.log_metric(run_id, f"{f['model']}.{f['method']}.{f['form']}.{name}", float(value))
    client.set_terminated(run_id, "FINISHED")
    log(f"[sweep] fitted {len(fits)} laws to {len(runs)} runs; report in {out}/ (fits.md, fits.json, figures/)")
    return {"dir": str(out), "markdown": str(paths["markdown"]), "best": best, "mlflow_run_id": run_id}

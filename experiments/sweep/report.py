"""The end of a sweep: fit the scaling laws to its runs, write the report, log it to MLflow."""

from __future__ import annotations

from pathlib import Path

from .spec import SweepSpec

REPORT_DIR = Path("reports")


def labelling_cost(store: str) -> float | None:
    """Measured seconds per material of a built-in store (its manifest), else None."""
    import json

    manifest = Path(store) / "manifest.json"
    return json.loads(manifest.read_text()).get("seconds_per_material") if manifest.exists() else None


def transfer_report(spec: SweepSpec, transfer: list, fits: list, out: Path, log=print) -> dict:
    """The transfer fit of axis T: costs from the two stores' labelling times, into fits.json/fits.md."""
    from experiments.fitting import write_json, write_markdown
    from experiments.fitting.transfer import apply_costs, plot_transfer

    expensive, cheap = labelling_cost(spec.dataset.store), labelling_cost(spec.dataset_for("P").store)
    for rec in transfer:
        apply_costs(rec, expensive, cheap, "seconds of labelling per material (the stores' measured build times)")
        ok = [p for p in rec["points"] if p.get("D_T") is not None]
        shown = ", ".join(f"D={p['D']} D_F={p['D_F']}: D_T={p['D_T']:.0f}" for p in ok)
        log(f"[sweep] transfer {rec['model']}: {shown or rec['status']}")
    figures = [
        str(plot_transfer(rec, out / "figures" / f"transfer-{rec['model']}.png"))
        for rec in transfer
        if "scratch_law" in rec
    ]
    return {
        "json": write_json(fits, out / "fits.json", transfer=transfer),
        "markdown": write_markdown(fits, out / "fits.md", transfer=transfer),
        "transfer_figures": figures,
    }


def fit_and_report(spec: SweepSpec, axis: str, tracking_uri: str, method: str = "both", log=print) -> dict:
    """Fit every form along `axis` to the finished runs, write reports/<experiment>/, log it as one run."""
    import mlflow
    from experiments.fitting import best_fits, fit_runs, read_mlflow, write_report
    from experiments.stores.tracking import KIND_TAG

    experiment = spec.experiment(axis)
    runs, skipped = read_mlflow(experiment, tracking_uri)
    for s in skipped:
        log(f"[sweep] fit skips run {s['run_id']}: {s['reason']}")
    transfer: list | None = [] if axis == "T" else None
    fits = fit_runs(runs, axes=("D",) if axis == "T" else (axis,), method=method, bootstrap=100, transfer=transfer)
    out = REPORT_DIR / experiment
    paths = write_report(fits, runs, out)
    if transfer:
        paths.update(transfer_report(spec, transfer, fits, out, log))
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
    from experiments.fitting.report import public

    best = [public(f) for f in best]  # JSON-ready: no per-replicate arrays (`sweep --json`)
    return {"dir": str(out), "markdown": str(paths["markdown"]), "best": best, "mlflow_run_id": run_id}

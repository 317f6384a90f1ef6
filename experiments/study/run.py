"""Run a study (or each cell of a capacity preset) and write its report.

A rerun with the same name continues the study in its storage: `--n-trials K` adds K trials.
Trials left RUNNING by a killed worker stop sending heartbeats; the next worker to start a trial
fails them and `RetryHeartbeatStaleTrialCallback` queues them again with the same parameters (the
retry resumes the MLflow run from the trial's last checkpoint). Several workers may run the same
command against one storage at once.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from .spec import StudySpec, make_pruner, make_sampler

SETTING_KEYS = ("data", "D", "model", "seed", "epochs", "budget", "space", "recipe")


def _setting(spec: StudySpec) -> dict:
    out = {k: getattr(spec, k) for k in SETTING_KEYS}
    out["data"] = str(Path(spec.data).resolve())
    return out


def check_data(spec: StudySpec) -> None:
    """The store and D exist: a bad --data or --D fails before any trial is recorded."""
    from datamodules.store import GraphStore

    if not Path(spec.data).is_dir():
        raise FileNotFoundError(f"store {spec.data} not found (optiscale data generate / data import)")
    GraphStore(spec.data).subset(spec.D)  # raises naming the store when D is outside the train split


def _choices(dom) -> list:
    return list(dom) if isinstance(dom, list) else [dom]


def _int(value) -> int | None:
    return None if value is None else int(value)


def fit_space(spec: StudySpec, log=print) -> StudySpec:
    """With a budget, the searched space keeps only the widths and block counts that fit it in some
    combination: the others could never be within it and would waste the study's trials on
    rejections (a kept combination may still be over budget: the trial is rejected). Parameters are
    counted on the meta device; the head count moves none, so the first head count that divides the
    width stands for all. ValueError (one line) when nothing of the space fits."""
    if spec.budget is None:
        return spec
    import dataclasses

    from datamodules.store import GraphStore
    from experiments.training.config import n_parameters

    points = GraphStore(spec.data).points
    space, budget = spec.space, int(spec.budget)
    counts = {}
    for w in _choices(space["width"]):
        for b in _choices(space.get("blocks")):
            for h in _choices(space.get("heads")):
                try:
                    counts[(w, b)] = n_parameters(spec.model, int(w), points, _int(b), _int(h))
                    break
                except ValueError:  # no head count of the space divides this width: it never builds
                    continue
    fits = [combo for combo, n in counts.items() if n <= budget]
    if not fits:
        smallest = min(counts.items(), key=lambda kv: kv[1], default=None)
        least = (
            f"; the smallest, width {smallest[0][0]} with blocks {smallest[0][1]}, has {smallest[1]:,}"
            if smallest
            else ""
        )
        raise ValueError(
            f"study {spec.name}: no model of the search space fits the budget of {budget:,} parameters{least}"
        )
    fitted, dropped = dict(space), []
    for i, knob in enumerate(("width", "blocks")):
        if isinstance(space.get(knob), list):
            fitted[knob] = [v for v in space[knob] if any(combo[i] == v for combo in fits)]
            dropped += [f"{knob} {v}" for v in space[knob] if v not in fitted[knob]]
    if dropped:
        log(f"[study {spec.name}] {', '.join(dropped)}: over the budget of {budget:,} parameters, not searched")
    return dataclasses.replace(spec, space=fitted)


def run_study(spec: StudySpec, report_dir: str | Path = "reports/studies", log=print) -> dict:
    import optuna

    from experiments.stores import tracking

    from .objective import Objective
    from .report import log_report, study_report, write_report
    from .storage import default_storage, open_study

    check_data(spec)
    spec = fit_space(spec, log)
    storage_url = spec.storage or default_storage()
    tracking_uri = spec.tracking_uri or tracking.default_tracking_uri()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(storage_url, spec.name, make_sampler(spec), make_pruner(spec))
    setting = _setting(spec)
    known = study.user_attrs.get("setting")
    if known is None:
        study.set_user_attr("setting", setting)
    elif known != setting:
        diff = sorted(k for k in setting if known.get(k) != setting[k])
        raise ValueError(
            f"study {spec.name!r} in {storage_url} was made with other settings ({', '.join(diff)}): "
            f"rerun with the same ones or choose another --study-name"
        )
    before = len(study.trials)
    # offset the TPE seed by the trials so far (a rerun does not replay the first run's draws), and by
    # the process id when other workers are running trials now (workers do not draw the same knobs)
    busy = any(t.state == optuna.trial.TrialState.RUNNING for t in study.trials)
    study.sampler = make_sampler(spec, offset=before + (os.getpid() if busy else 0))
    log(f"[study {spec.name}] {before} trials so far; adding {spec.n_trials} (storage {storage_url})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.optimize(Objective(spec, tracking_uri, storage_url, log), n_trials=spec.n_trials, catch=(RuntimeError,))
    report = study_report(study, storage_url)
    paths = write_report(report, Path(report_dir))
    report["report_run_id"] = log_report(paths, spec.name, tracking_uri, spec.experiment)
    best = report["best"]
    summary = "no complete trial" if best is None else f"best trial {best['number']}: {best['value']:.5g}"
    log(f"[study {spec.name}] {len(study.trials)} trials ({report['counts']}); {summary}; report {paths[1]}")
    return report


def run_capacity(spec: StudySpec, report_dir: str | Path = "reports/studies", log=print) -> dict:
    """Each (D, budget) cell as its own study, then the D x budget table (JSON + Markdown)."""
    from datamodules.atomic import atomic_write_json, atomic_write_text

    from .report import capacity_markdown, capacity_table

    cells = spec.cells()
    for cell in cells:
        check_data(cell)
    cells = [fit_space(cell, log) for cell in cells]  # every cell can fit its budget before any trains
    reports = [run_study(cell, report_dir, log) for cell in cells]
    table = capacity_table(reports, cells)
    out = Path(report_dir)
    atomic_write_json(out / f"{spec.name}-capacity.json", table)
    atomic_write_text(out / f"{spec.name}-capacity.md", capacity_markdown(table))
    log(f"[study {spec.name}] capacity table {out / f'{spec.name}-capacity.md'}")
    return {"study": spec.name, "capacity": table, "studies": reports}

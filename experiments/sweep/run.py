"""Running a sweep: the dataset, the workers, the check that every point ran once, the fit.

`run_sweep` is what `optiscale sweep` and `make sweep-data|sweep-params|sweep-grid` call. It is
idempotent: rerun it after an interruption and it trains only what is missing, then fits again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

from experiments.stores.optuna_storage import default_storage  # noqa: F401  (used by commands)

from .forked import forked_trainer, forks_can_use_cuda
from .packing import plan_slots
from .progress import ProgressWatcher
from .resident import resident_trainer
from .spec import SweepSpec
from .transfer import source_runs
from .worker import Worker, open_study, subprocess_trainer

# "resident": train the points in a resident spawned process without trying the fork server first
# (where forks are known to fail on the GPU, or to test that path on a CPU); else forked when it works.
POINT_PROCESS = "OPTISCALE_POINT_PROCESS"


def ensure_dataset(spec: SweepSpec, log=print, axis: str = "D") -> str:
    """Path of the store of `axis`; the built-in surrogate dataset is generated if it is missing."""
    from datamodules.store import GraphStore, StoreError

    ds = spec.dataset_for(axis)
    try:
        GraphStore(ds.store)
        return ds.store
    except StoreError as err:
        if not ds.builtin:
            raise FileNotFoundError(
                f"{err}. Sweep {spec.name!r} ({spec.source}) needs this store: build it with "
                f"`optiscale data import SRC... --out {ds.store}`"
            ) from None
    log(f"[sweep] generating the built-in dataset ({ds.fidelity} fidelity): {ds.n} materials into {ds.store}")
    from datamodules.surrogate.fidelity import settings_for
    from datamodules.surrogate.generate import generate

    generate(n=ds.n, seed=ds.seed, out=ds.store, settings=settings_for(ds.fidelity), grid_points=ds.grid_points)
    return ds.store


def data_hash(store: str) -> str:
    from datamodules.store import GraphStore

    return GraphStore(store).manifest["content_hash"]


def run_worker(
    spec: SweepSpec, axis: str, store: str, storage: str, tracking_uri: str, extra_args=(), threads=None, log=print
):
    """One worker of one axis, in this process; each point trains with `threads` threads in a process
    forked from a warm server, or in an `optiscale train` subprocess when it runs DDP itself."""
    points = spec.points(axis)
    study = open_study(storage, spec.study_name(axis, data_hash(store)), [p.id for p in points])
    tags = {"optiscale.sweep": spec.name, "optiscale.axis": axis, "optiscale.study": study.study_name}
    tags["optiscale.worker"] = f"{socket.gethostname()}:{os.getpid()}"  # which worker trained the point
    experiment = spec.experiment(axis)
    per_point = source_runs(spec, tracking_uri) if axis == "T" else None
    if extra_args:  # --devices/--strategy: Lightning relaunches the training command for DDP
        trainer = subprocess_trainer(store, spec.recipe, tracking_uri, experiment, tags, extra_args, threads, per_point)
    elif os.environ.get(POINT_PROCESS) != "resident" and forks_can_use_cuda():
        trainer = forked_trainer(store, spec.recipe, tracking_uri, experiment, tags, threads, per_point)
    else:  # CUDA fails in forks: one spawned process trains the worker's points in turn (resident.py)
        log("[sweep] training the points in a resident process instead of forked ones")
        trainer = resident_trainer(store, spec.recipe, tracking_uri, experiment, tags, threads, per_point)
    try:
        return Worker(study, points, trainer, log=log).run()
    finally:
        if hasattr(trainer, "resident"):
            trainer.resident.stop()


def run_sweep(
    spec: SweepSpec,
    axis: str,
    workers: int | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    extra_args=(),
    fit: bool = True,
    log=print,
    pack: str | int = "auto",
    slurm: dict | None = None,
    progress=None,
) -> dict:
    """Train every point of one axis with local workers (`workers` in all, else `pack` per device:
    experiments.sweep.packing), then fit and report.

    `slurm`: run the workers as a SLURM job array instead (experiments.sweep.slurm.submit's
    options, and "wait"); without "wait" this returns after the submission, with "job" set and
    no fit: rerun the sweep once the array is done.

    `progress`: a `show(counts)` called as points finish (experiments.sweep.progress)."""
    from experiments.stores import tracking
    from experiments.stores.tracking import default_tracking_uri

    storage = storage or default_storage()
    tracking_uri = tracking_uri or default_tracking_uri()
    if storage.startswith("sqlite:///"):
        Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if axis == "T":  # the pretraining runs first: every fine-tuned point starts from one
        pre = run_sweep(spec, "P", workers, storage, tracking_uri, extra_args, fit, log, pack, slurm)
        if pre["missing"] or "job" in pre:
            log(f"[sweep] axis T waits for its pretraining runs: {len(pre['missing'])} of axis P not finished")
            return pre
    store = ensure_dataset(spec, log, axis)
    points = spec.points(axis)
    if slurm is not None:
        return _run_on_slurm(spec, axis, store, storage, tracking_uri, extra_args, fit, log, dict(slurm))
    slots = plan_slots(points, spec.recipe, workers, pack)
    where = "CPU" if slots[0].device is None else "GPU " + ",".join(sorted({str(s.device) for s in slots}))
    log(
        f"[sweep] {spec.name} along {axis}: {len(points)} points, {len(slots)} worker(s) on {where}, "
        f"{slots[0].threads} thread(s) each; Optuna {storage}"
    )
    study = open_study(storage, spec.study_name(axis, data_hash(store)), [p.id for p in points])  # created here
    client = tracking.client_for(tracking_uri)  # the tracking store and experiment too, before any worker
    tracking.experiment_id(client, spec.experiment(axis), tracking_uri)
    watch = ProgressWatcher(study, [p.id for p in points], len(slots), progress) if progress else nullcontext()
    with watch:
        reports = _train(spec, axis, store, storage, tracking_uri, extra_args, slots, log)
    return _check_and_fit(spec, axis, tracking_uri, reports, fit, log)


def _train(spec, axis, store, storage, tracking_uri, extra_args, slots, log) -> list:
    """The local workers: this process for one CPU slot, else one `--worker-only` process per slot."""
    if len(slots) == 1 and slots[0].device is None:
        reports = [run_worker(spec, axis, store, storage, tracking_uri, extra_args, log=log)]
    else:
        cmd = [sys.executable, "-m", "experiments.cli", "sweep", "--preset", spec.source, "--axis", axis]
        cmd += ["--worker-only", "--storage", storage, "--tracking-uri", tracking_uri]
        procs = []
        for slot in slots:
            env = dict(os.environ, OMP_NUM_THREADS=str(slot.threads))
            if slot.device is not None:
                env["CUDA_VISIBLE_DEVICES"] = slot.device
            procs.append(subprocess.Popen([*cmd, "--threads", str(slot.threads), *extra_args], env=env))
        codes = [p.wait() for p in procs]
        if any(codes):
            log(f"[sweep] worker exit codes: {codes}")
        reports = []
    return reports


def _run_on_slurm(spec, axis, store, storage, tracking_uri, extra_args, fit, log, options: dict) -> dict:
    from experiments.stores import tracking

    from . import slurm

    wait = options.pop("wait", False)
    points = spec.points(axis)
    open_study(storage, spec.study_name(axis, data_hash(store)), [p.id for p in points])  # before any task
    client = tracking.client_for(tracking_uri)
    tracking.experiment_id(client, spec.experiment(axis), tracking_uri)
    summary = check_runs(spec, axis, tracking_uri)
    if summary["missing"]:  # nothing to submit once every point has its run: check and fit
        options.setdefault("tasks", min(len(summary["missing"]), 4))
        log(f"[sweep] {spec.name} along {axis}: {len(summary['missing'])}/{len(points)} points left; Optuna {storage}")
        job = slurm.submit(spec, axis, storage, tracking_uri, extra_args, log=log, **options)
        if not wait:
            summary["job"] = job
            return summary
        slurm.wait(job, log=log)
    return _check_and_fit(spec, axis, tracking_uri, [], fit, log)


def _check_and_fit(spec, axis, tracking_uri, reports, fit, log) -> dict:
    summary = check_runs(spec, axis, tracking_uri)
    for r in reports:
        for pid, why in r.failed.items():
            summary["failed"].setdefault(pid, why)
    if fit and not summary["missing"] and axis != "P":
        from .report import fit_and_report

        summary["report"] = fit_and_report(spec, axis, tracking_uri, log=log)
    return summary


def check_runs(spec: SweepSpec, axis: str, tracking_uri: str) -> dict:
    """Finished MLflow runs per point: every point should have exactly one."""
    import mlflow
    from experiments.stores.tracking import RUN_KEY_TAG

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(spec.experiment(axis))
    runs: list = []
    if exp is not None:
        runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=50000)
    counts: dict[str, int] = {}
    for r in runs:
        if RUN_KEY_TAG not in r.data.tags:  # e.g. the report run
            continue
        p = r.data.params
        pid = f"{p.get('model')}|w{p.get('width')}|D{p.get('D')}|s{p.get('seed')}"
        if p.get("pretrain_D") not in (None, "", "None", "0"):
            pid += f"|F{p['pretrain_D']}"
        counts[pid] = counts.get(pid, 0) + 1
    ids = [p.id for p in spec.points(axis)]
    return {
        "experiment": spec.experiment(axis),
        "points": len(ids),
        "finished": sum(1 for i in ids if counts.get(i)),
        "missing": [i for i in ids if not counts.get(i)],
        "duplicated": {i: n for i, n in counts.items() if n > 1},
        "failed": {},
    }

"""Sweep workers: many processes, on one machine or many, work through one grid without duplicates.

The coordination is an Optuna study in shared RDB storage (SQLite on one machine, PostgreSQL
across machines) with a `GridSampler` over the point ids:
- trials 0 .. n-1 of the study get grid ids 0 .. n-1 (the sampler assigns them by trial number,
  and RDB storage numbers trials under a row lock), so a first pass never hands one point out twice;
- every trial sends heartbeats; a trial whose worker died goes stale, is failed by the next worker
  that looks, and `RetryHeartbeatStaleTrialCallback` queues it again, so its point is not lost;
- a point whose trial failed (an error in training, an interrupt) is queued again by the next
  worker, once per worker invocation;
- a worker that is handed a point another live trial started earlier yields it (the trial is
  pruned), so two workers never train one point at the same time.
Each point trains in a subprocess (`optiscale train`, which may itself run DDP); the training run
is idempotent by its run key in MLflow: a finished point is not trained again, an interrupted one
resumes from its last checkpoint into its MLflow run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from experiments.stores.optuna_storage import open_study as _open_study
from experiments.stores.optuna_storage import rdb_storage

from .spec import Point

HEARTBEAT_S = int(os.environ.get("OPTISCALE_SWEEP_HEARTBEAT_S", 10))  # a live trial beats this often
GRACE_S = int(os.environ.get("OPTISCALE_SWEEP_GRACE_S", 40))  # silent this long: its worker is dead
POLL_S = 5  # how often an idle worker looks for work left by dead workers


@dataclass
class WorkerReport:
    trained: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    yielded: list[str] = field(default_factory=list)


def open_study(storage_url: str, study_name: str, point_ids: list[str]) -> optuna.Study:
    """Create or load the coordination study (safe to call from many workers at once)."""
    storage = rdb_storage(storage_url, HEARTBEAT_S, GRACE_S, max_retry=3)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The same seed in every worker: the same grid order everywhere.
    sampler = optuna.samplers.GridSampler({"point": point_ids}, seed=0)
    return _open_study(storage, study_name, sampler)


def point_of(trial: optuna.trial.FrozenTrial) -> str | None:
    if "point" in trial.params:
        return trial.params["point"]
    fixed = trial.system_attrs.get("fixed_params")
    return fixed.get("point") if fixed else None


def _holder(study: optuna.Study, me: optuna.trial.Trial, pid: str) -> int | None:
    """Number of a live trial that started `pid` before `me`, if any."""
    mine = study._storage.get_trial(me._trial_id)
    deadline = time.monotonic() + 10
    while True:
        unknown = False
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number == me.number or (t.datetime_start, t.number) > (mine.datetime_start, mine.number):
                continue
            p = point_of(t)
            if p == pid:
                return t.number
            unknown |= p is None  # started earlier, has not said its point yet
        if not unknown or time.monotonic() > deadline:
            return None
        time.sleep(0.2)


class Worker:
    """One worker process: asks the study for points and trains them until none is left."""

    def __init__(self, study: optuna.Study, points: list[Point], train_cmd, log=print):
        self.study, self.points = study, {p.id: p for p in points}
        self.train_cmd, self.log = train_cmd, log
        self.report = WorkerReport()
        self._requeued: set[str] = set()

    def _states(self) -> dict[str, set[TrialState]]:
        states: dict[str, set[TrialState]] = {pid: set() for pid in self.points}
        for t in self.study.get_trials(deepcopy=False):
            p = point_of(t)
            if p in states:
                states[p].add(t.state)
        return states

    def objective(self, trial: optuna.trial.Trial) -> float:
        pid = trial.suggest_categorical("point", list(self.points))
        done = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if point_of(t) == pid]
        if done:  # finished by an earlier trial (e.g. a queued retry that raced with the first one)
            return float(done[0].value or 0.0)  # a COMPLETE trial has its value
        holder = _holder(self.study, trial, pid)
        if holder is not None:
            self.report.yielded.append(pid)
            raise optuna.TrialPruned(f"{pid} is being trained by trial {holder}")
        self.log(f"[sweep] trial {trial.number}: training {pid}")
        t0 = time.monotonic()
        result = self.train_cmd(self.points[pid])
        for key in ("run_id", "run_key"):
            if result.get(key):
                trial.set_user_attr(key, result[key])
        if result.get("best_val_loss") is None:
            error = str(result.get("error", "training gave no best_val_loss"))
            trial.set_user_attr("error", error)
            self.report.failed[pid] = error
            raise RuntimeError(f"{pid}: {error}")
        self.report.failed.pop(pid, None)
        self.report.trained.append(pid)
        took = time.monotonic() - t0
        status = result.get("status", "finished")
        self.log(f"[sweep] {pid} {status}: best val_loss {result['best_val_loss']:.5g} ({took:.0f} s)")
        return float(result["best_val_loss"])

    def run(self) -> WorkerReport:
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            states = self._states()
            done = {p for p, s in states.items() if TrialState.COMPLETE in s}
            busy = {p for p, s in states.items() if s & {TrialState.RUNNING, TrialState.WAITING}}
            todo = [p for p in self.points if p not in done and p not in busy]
            for p in done:
                self.report.failed.pop(p, None)  # failed here, then finished by a retry
            if len(done) == len(self.points):
                return self.report
            fresh = [p for p in todo if not states[p]]  # never handed out: the grid sampler's job
            retry = [p for p in todo if states[p] and p not in self._requeued]
            if not fresh and not any(TrialState.WAITING in states[p] for p in busy):
                if retry:
                    self._requeued.add(retry[0])
                    self.log(f"[sweep] queueing {retry[0]} again (its last trial failed)")
                    self.study.enqueue_trial({"point": retry[0]})
                elif busy:
                    time.sleep(POLL_S)  # others are training the rest; wait in case one dies
                    continue
                else:
                    return self.report  # only points that failed here again are left
            self.study.optimize(self.objective, n_trials=1, catch=(Exception,))


def subprocess_trainer(
    store: str,
    recipe: dict,
    tracking_uri: str,
    experiment: str,
    tags: dict,
    extra_args=(),
    threads: int | None = None,
    per_point=None,
):
    """A `train_cmd` that runs `optiscale train` for a point in a subprocess and reads its result.

    A subprocess per point: its memory is returned after every point, a crash stays with its point,
    and `--devices K --strategy ddp` works (Lightning relaunches the `optiscale train` command).
    `per_point(point)`: recipe keys of that point (e.g. `init_from` of a fine-tuned point), or None.
    """
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)

    def train(point: Point) -> dict:
        point_recipe = {**recipe, **(per_point(point) if per_point else {})}
        with tempfile.TemporaryDirectory(prefix="optiscale-point-") as tmp:
            out = os.path.join(tmp, "result.json")
            cmd = [
                sys.executable,
                "-m",
                "experiments.cli",
                "train",
                "--data",
                store,
                "--model",
                point.model,
                "--width",
                str(point.width),
                "--D",
                str(point.D),
                "--seed",
                str(point.seed),
                "--tracking-uri",
                tracking_uri,
                "--experiment",
                experiment,
                "--json",
                out,
                *[f"--set={k}={v}" for k, v in sorted(point_recipe.items())],
                *[f"--tag={k}={v}" for k, v in sorted(tags.items())],
                *extra_args,
            ]
            proc = subprocess.run(cmd, env=env)
            if os.path.exists(out):
                with open(out) as fh:
                    return json.load(fh)
            return {"error": f"`optiscale train` exited with code {proc.returncode} and wrote no result"}

    return train

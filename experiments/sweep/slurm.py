"""`optiscale sweep --launcher slurm`: the sweep's workers as one SLURM job array, through submitit.

Each array task is the worker `optiscale sweep --worker-only` runs locally: it coordinates with the
others through the Optuna RDB storage and the MLflow tracking store (both must be reachable from
the compute nodes: PostgreSQL and an `mlflow server`, or SQLite on a shared file system for small
sweeps), so the array needs no bookkeeping of its own, and any number of arrays (a resubmission
after a cancel, a second array for more throughput) can work on one sweep.

Requeue and resume (docs/cluster.md):
- timeout: submitit asks SLURM for a signal (`--signal=USR2@90`) before the time limit; the task
  is `Checkpointable`, so submitit requeues it (`scontrol requeue`, at most `max_requeues` times);
  the worker and its training ignore that signal and are stopped by the requeue itself;
- preemption (PreemptMode=REQUEUE) and node failures: SLURM requeues the task itself;
- cancelled (`scancel`): submit again (`optiscale sweep ... --launcher slurm`).
A requeued or resubmitted worker finds the interrupted point's trial stale in the study (no
heartbeat for OPTISCALE_SWEEP_GRACE_S), queues it again, and the training resumes from the point's
`last.ckpt` into its MLflow run (experiments/training/train.py); finished points are never trained again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import submitit

from .spec import SweepSpec


def _preempt_signal() -> signal.Signals:
    """The signal submitit asks SLURM for before the time limit (SUBMITIT_PREEMPT_SIGNAL, default USR2)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def _ignore_preempt_signal() -> None:  # in the worker, before exec: inherited by its trainings
    signal.signal(_preempt_signal(), signal.SIG_IGN)


class WorkerTask(submitit.helpers.Checkpointable):
    """One array task: runs `optiscale sweep --worker-only` and returns its exit code.

    `Checkpointable`: submitit requeues the task on the timeout signal. Its state is only the
    command: where the sweep stands lives in the shared Optuna study and MLflow store.
    """

    def __init__(self, cmd: list[str], cwd: str, threads: int | None):
        self.cmd, self.cwd, self.threads = cmd, cwd, threads

    def __call__(self, index: int) -> int:
        env = dict(os.environ)
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        print(f"[sweep] array task {index}: {' '.join(self.cmd)}", flush=True)
        # submitit's handler of the preemption signal (in this process) requeues the task; in the
        # worker and its trainings the signal's default action would kill them before that
        proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=env, preexec_fn=_ignore_preempt_signal)
        code = proc.wait()
        if code:
            raise RuntimeError(f"the sweep worker exited with code {code} (see the log above)")
        return code


def worker_command(spec: SweepSpec, axis: str, storage: str, tracking_uri: str, threads, extra_args) -> list[str]:
    source = spec.source
    if Path(source).is_file():  # a sweep file: by absolute path, the task may start elsewhere
        source = str(Path(source).resolve())
    cmd = [sys.executable, "-m", "experiments.cli", "sweep", "--preset", source, "--axis", axis, "--worker-only"]
    cmd += ["--storage", storage, "--tracking-uri", tracking_uri]
    if threads:
        cmd += ["--threads", str(threads)]
    return [*cmd, *extra_args]


def submit(
    spec: SweepSpec,
    axis: str,
    storage: str,
    tracking_uri: str,
    extra_args=(),
    *,
    tasks: int,
    partition: str | None = None,
    time_min: int | None = None,
    gpus_per_task: int | None = None,
    cpus_per_task: int | None = None,
    mem_gb: float | None = None,
    folder: str = "runs/slurm",
    max_requeues: int = 10,
    log=print,
) -> str:
    """Submit `tasks` workers as one job array (all running at once where the cluster allows; one
    task is a plain job); returns the array's job id. Only a task with `time_min` is requeued when
    it reaches its limit (submitit needs to know the limit)."""
    if shutil.which("sbatch") is None:
        raise RuntimeError("--launcher slurm: `sbatch` not found (is this a SLURM login node?)")
    if tasks < 1:
        raise ValueError(f"--array-parallelism: {tasks} is not a positive number of tasks")
    executor = submitit.SlurmExecutor(folder=str(Path(folder).resolve() / "%j"), max_num_timeout=max_requeues)
    params: dict = {"job_name": f"optiscale-{spec.name}-{axis}", "array_parallelism": tasks, "ntasks_per_node": 1}
    if partition:
        params["partition"] = partition
    if time_min:
        params["time"] = int(time_min)
        params["signal_delay_s"] = min(90, max(10, int(time_min) * 6))  # 10 % of a short limit
    else:  # the partition's default limit (submitit's own default is 5 minutes); no requeue at it
        params["time"] = None
    if gpus_per_task:
        params["gpus_per_node"] = int(gpus_per_task)
    if cpus_per_task:
        params["cpus_per_task"] = int(cpus_per_task)
    if mem_gb:
        params["mem"] = mem_gb
    executor.update_parameters(**params)
    task = WorkerTask(
        worker_command(spec, axis, storage, tracking_uri, cpus_per_task, extra_args), os.getcwd(), cpus_per_task
    )
    jobs = executor.map_array(task, range(tasks))
    job_id = jobs[0].job_id.split("_")[0]
    log(f"[sweep] submitted SLURM job array {job_id} ({tasks} worker task(s)); logs in {Path(folder) / job_id}_*")
    return job_id


def wait(job_id: str, poll_s: float = 5.0, log=print, max_errors: int = 60) -> None:
    """Until the array has left the queue (requeued tasks stay in it); `squeue`, so no accounting
    database is needed. A busy controller's errors are retried (`max_errors` in a row)."""
    last, errors = None, 0
    while True:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, check=False)
        if out.returncode and "Invalid job id" in out.stderr:  # left the queue and forgotten
            return
        if out.returncode:
            errors += 1
            if errors >= max_errors:
                raise RuntimeError(f"squeue failed {errors} times in a row: {out.stderr.strip()}")
            time.sleep(poll_s)
            continue
        errors = 0
        states = sorted(out.stdout.split())
        if not states:
            return
        summary = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
        if summary != last:
            log(f"[sweep] job {job_id}: {summary}")
            last = summary
        time.sleep(poll_s)

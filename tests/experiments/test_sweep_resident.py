"""The resident point process (experiments/sweep/resident.py): a sweep's points trained in turn by one
spawned process, with a crash or an error confined to its point. Real Lightning, MLflow and Optuna."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from experiments.sweep.resident import Resident

REPO = Path(__file__).resolve().parents[2]


def job(store: Path, tmp_path: Path, **over) -> tuple:
    config = {"data": str(store), "model": "2b-tc", "width": 8, "D": 16, "seed": 1, "epochs": 1, "batch_size": 8}
    config.update(warmup_epochs=0.5, workdir=str(tmp_path / "runs"), **over)
    return config, f"sqlite:///{tmp_path / 'mlflow.db'}", "resident", {}


def test_a_sweep_trains_its_points_in_one_resident_process(surrogate_store, tmp_path):
    doc = {
        "name": "r",
        "dataset": {"store": str(surrogate_store), "builtin": False},
        "recipe": {"epochs": 1, "batch_size": 8, "warmup_epochs": 0.5},
        "seeds": [1, 2],
        "axes": {"D": {"models": ["2b-tc"], "widths": [8], "D": [8, 16]}},
    }
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump(doc))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "experiments.cli", "sweep", "--preset", str(spec), "--axis", "D", "--no-fit"]
    cmd += ["--tracking-uri", uri, "--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "OPTISCALE_POINT_PROCESS": "resident"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "in a resident process" in proc.stdout and "4/4 points finished" in proc.stdout
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("r-D")
    runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")
    assert sorted((r.data.params["D"], r.data.params["seed"]) for r in runs) == [
        ("16", "1"),
        ("16", "2"),
        ("8", "1"),
        ("8", "2"),
    ]
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "4/4 points finished" in again.stdout
    assert len(client.search_runs([exp.experiment_id])) == 4  # the rerun trained nothing


def test_a_crash_and_an_error_stay_with_their_point(surrogate_store, tmp_path):
    resident = Resident(threads=1)
    try:
        first = {}
        t = threading.Thread(target=lambda: first.update(resident.run(job(surrogate_store, tmp_path), "p1")))
        t.start()
        deadline = time.time() + 60
        while (resident.proc is None or not resident.proc.is_alive()) and time.time() < deadline:
            time.sleep(0.05)
        pid = resident.proc.pid
        time.sleep(1.0)
        os.kill(pid, 9)  # the process dies under its point
        t.join(timeout=120)
        assert first == {"error": "the resident training process of p1 exited with code -9 and wrote no result"}

        bad = resident.run(job(surrogate_store, tmp_path, width=0), "p2")  # an error inside the point
        assert "error" in bad and "width" in bad["error"]
        assert resident.proc is None  # replaced: the next point does not inherit a failed process

        # DataLoader workers, as a GPU point has by default: a daemonic process could not start them
        good = resident.run(job(surrogate_store, tmp_path, seed=2, num_workers=2), "p3")
        assert good.get("status") == "finished", good
        pid = resident.proc.pid
        again = resident.run(job(surrogate_store, tmp_path, seed=2), "p3")  # skipped, by the same process
        assert again.get("status") == "skipped" and resident.proc.pid == pid, again
    finally:
        resident.stop()


HOLDER = """
import sys, threading, time
from experiments.sweep.resident import Resident

store, tmp = sys.argv[1:3]
config = {"data": store, "model": "2b-tc", "width": 8, "D": 16, "seed": 1, "epochs": 500, "batch_size": 8}
config.update(warmup_epochs=0.5, workdir=tmp + "/runs")
resident = Resident(threads=1)
threading.Thread(target=resident.run, args=((config, f"sqlite:///{tmp}/mlflow.db", "r", {}), "long")).start()
while resident.proc is None or not resident.proc.is_alive():
    time.sleep(0.05)
print(resident.proc.pid, flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_the_resident_process_ends_when_its_worker_is_killed(surrogate_store, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", HOLDER, str(surrogate_store), str(tmp_path)]
    holder = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(holder.stdout.readline())
        time.sleep(8.0)  # into its (500-epoch) point
        assert _running(pid)
        holder.kill()  # SIGKILL: the worker's own clean-up never runs
        holder.wait()
        deadline = time.time() + 30
        while _running(pid) and time.time() < deadline:
            time.sleep(0.2)
        assert not _running(pid), "the resident process outlived its worker"
    finally:
        holder.kill()

"""Fixtures of the experiments tests: tiny training runs, synthetic scaling-law runs, MLflow stores,
and real servers on loopback (PostgreSQL, `mlflow server`)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from experiments.fitting.forms import FORMS

SURROGATE_201 = {"n": 40, "seed": 0}  # store201 without the samples: 40 crystals, 32 in the train split


def tiny_config(store, workdir, **overrides) -> dict:
    """A grid point small enough for CPU tests: width 16, 2 epochs, batch 8."""
    return {
        "data": str(store),
        "model": "2b-tc",
        "width": 16,
        "seed": 1,
        "epochs": 2,
        "batch_size": 8,
        "warmup_epochs": 0.5,
        "workdir": str(workdir),
        **overrides,
    }


@pytest.fixture(scope="session", name="tiny_config")
def tiny_config_fixture():
    """The `tiny_config(store, workdir, **overrides)` function."""
    return tiny_config


@pytest.fixture(scope="session")
def store201(request, samples_present, tmp_path_factory):
    """40 materials on a 201-point grid with 32 in the train split: the records derived from the real
    samples where those are present, else 40 surrogate crystals, so that the training, sweep and
    study tests also run where the samples are absent (CI)."""
    out = tmp_path_factory.mktemp("train-stores") / "store201"
    if samples_present:
        from datamodules.importer import import_records

        derived_dir = request.getfixturevalue("derived_dir")
        import_records([str(derived_dir)], out, workers=1, chunk_size=16, progress=False, grid_points=201)
    else:
        from datamodules.surrogate.generate import generate

        generate(**SURROGATE_201, out=out, grid_points=201, chunk_size=16)  # 3 shards, as imported
    return out


@pytest.fixture(scope="session")
def store201_record(request, samples_present, store201):
    """One material of `store201`: its id and pymatgen structure (from its record, or rebuilt from the
    surrogate's draw exactly as the store was generated)."""
    import json

    from pymatgen.core import Structure

    if samples_present:
        derived_dir = request.getfixturevalue("derived_dir")
        doc = json.loads(sorted(Path(derived_dir).glob("*.json"))[0].read_text())
        return doc["data"]["mat_id"], Structure.from_dict(doc["structure"])
    from datamodules.surrogate.prototypes import PROTOTYPES, draw_specs, structure_arrays

    k, name, elements, strain, ca = draw_specs(SURROGATE_201["n"], SURROGATE_201["seed"])[0]
    lattice, numbers, cart = structure_arrays(PROTOTYPES[name], elements, strain, ca)
    return f"tb{SURROGATE_201['seed']}-{k:07d}", Structure(lattice, numbers, cart, coords_are_cartesian=True)


@pytest.fixture(scope="session")
def trained(store201, tmp_path_factory):
    """One finished 2-epoch run: (result of train, tracking URI, config)."""
    from experiments.training.train import train

    root = tmp_path_factory.mktemp("trained")
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    cfg = tiny_config(store201, root / "work")
    return train(cfg, tracking_uri=uri, experiment="tests", tags={"sweep": "unit-tests"}), uri, cfg


D_VALUES = [2500, 5000, 10000, 20000, 40000, 80000, 160000]  # the reference's data subsets
N_VALUES = [278275, 600000, 1288483, 3000000, 8140195, 20000000, 80521123]


def draw(form: str, params, xs=D_VALUES, seeds=(1, 42, 137), noise=0.02, rng_seed=0, model="m", fixed_N=1288483):
    """Runs with multiplicative log-normal noise; 1-D forms along D (N fixed), 2-D over the (N, D) grid."""
    rng = np.random.default_rng(rng_seed)
    f = FORMS[form]
    runs = []
    points = [(fixed_N, d) for d in xs] if f.ndim == 1 else [(n, d) for d in D_VALUES for n in N_VALUES]
    for n, d in points:
        x = np.array([float(d)]) if f.ndim == 1 else np.array([[float(n)], [float(d)]])
        mean = float(f.linear(x, *params)[0])
        for s in seeds:
            runs.append(
                {
                    "model": model,
                    "D": int(d),
                    "N": int(n),
                    "seed": s,
                    "val_loss": mean * np.exp(noise * rng.standard_normal()),
                }
            )
    return runs


@pytest.fixture
def draw_runs():
    return draw


def log_runs(tracking_uri, experiment, rows, tmp_path):
    """Real MLflow runs in a SQLite store: rows of (params, metrics, status) -> run ids."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp_id = client.create_experiment(experiment, artifact_location=(tmp_path / "artifacts").as_uri())
    ids = []
    for params, metrics, status in rows:
        run_id = client.create_run(exp_id).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
        )
        if status != "RUNNING":
            client.set_terminated(run_id, status)
        ids.append(run_id)
    return ids


@pytest.fixture
def mlflow_rows():
    """The `log_runs(tracking_uri, experiment, rows, tmp_path)` function: real runs in a store."""
    return log_runs


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """One real SQLite MLflow store (its creation dominates the cost) with two experiments:
    "sweep": 7 D x 3 seeds of a power law (alpha 0.3, 1 % seed scatter) then 5 runs to skip;
    "small": 4 D x 2 seeds, noiseless, then one KILLED run."""
    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    rows = []
    for d in D_VALUES:
        for s, noise in ((1, 1.0), (42, 1.01), (137, 0.99)):
            p = {"model": "2b-tc", "width": 64, "n_parameters": 1288483, "D": d, "seed": s, "lr": 6e-4}
            rows.append((p, {"best_val_loss": noise * (1e4 / d) ** 0.3, "val_loss": 1.0}, "FINISHED"))
    good = {"model": "2b-tc", "n_parameters": 1288483, "D": 2500, "seed": 7}
    rows += [
        (good, {"best_val_loss": 9.0}, "RUNNING"),
        (good, {"best_val_loss": 9.0}, "FAILED"),
        ({**good, "seed": 8}, {"val_loss": 1.0}, "FINISHED"),  # no best_val_loss
        ({"model": "2b-tc", "D": 2500, "seed": 9}, {"best_val_loss": 1.0}, "FINISHED"),  # no n_parameters
        ({**good, "seed": 10, "D": "abc"}, {"best_val_loss": 1.0}, "FINISHED"),
    ]
    small = [
        (
            {"model": "2b-cgc", "n_parameters": 1296035, "D": d, "seed": s},
            {"best_val_loss": (1e4 / d) ** 0.3},
            "FINISHED",
        )
        for d in (2500, 10000, 40000, 160000)
        for s in (1, 2)
    ]
    small.append(({"model": "2b-cgc"}, {}, "KILLED"))
    return {"uri": uri, "sweep": log_runs(uri, "sweep", rows, tmp), "small": log_runs(uri, "small", small, tmp)}


# --- real servers on loopback for the sweep tests ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture
def postgres():
    """A throw-away PostgreSQL cluster (Debian's package) on 127.0.0.1: `postgres(name)` creates a database
    and returns its SQLAlchemy URL (MLflow and Optuna each need their own: both keep an alembic_version table).

    `.ci/run` installs PostgreSQL where it is missing; the test skips with the reason where it cannot run.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries not found (Debian package `postgresql`; .ci/run installs it)")
    pytest.importorskip("psycopg2", reason="psycopg2 is needed to reach PostgreSQL (dev extra)")
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as an ordinary user")
        run_as = ["runuser", "-u", "postgres", "--"]
    # its own directory under /tmp: pytest's tmp_path is private to root, the server user could not enter it
    root = Path(tempfile.mkdtemp(prefix="optiscale-pg-"))
    root.chmod(0o755)
    if run_as:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    init = subprocess.run([*run_as, initdb, "-D", str(data), "-U", "optiscale", "--auth=trust"], capture_output=True)
    if init.returncode:
        raise RuntimeError(f"initdb failed: {init.stderr.decode()[-2000:]}")
    opts = f"-p {port} -h 127.0.0.1 -k {root}"
    log = root / "pg.log"
    subprocess.run([*run_as, pg_ctl, "-D", str(data), "-o", opts, "-l", str(log), "-w", "start"], check=True)
    try:
        _wait_port(port, 30, what="PostgreSQL")
        createdb = [*run_as, _pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "optiscale"]

        def database(name: str) -> str:
            subprocess.run([*createdb, name], check=True)
            return f"postgresql+psycopg2://optiscale@127.0.0.1:{port}/{name}"

        yield database
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _mlflow_server(backend_uri: str, artifacts: Path):
    """`mlflow server` on loopback; yields its http:// tracking URI."""
    port = free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts), "--workers", "1"]
    log = open(artifacts.parent / "mlflow-server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_port(port, 90, proc, "mlflow server")
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


@pytest.fixture
def mlflow_server():
    """`with mlflow_server(backend_uri, artifacts_dir) as tracking_uri:` a real `mlflow server` on loopback."""
    return _mlflow_server


# --- a real single-node SLURM cluster on loopback for the `--launcher slurm` tests ---

_SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "srun")


def _node_resources() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) of this machine, as `slurmd -C` reports them."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return int(fields["CPUs"]), int(fields["RealMemory"])


SLURM_CONF = """\
ClusterName=optiscale-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture
def slurm_cluster():
    """A throw-away SLURM cluster (Debian's `slurm-wlm` and `munge`) on loopback: its own munged,
    slurmctld and slurmd as root, state and logs in a temporary directory; yields the environment
    (SLURM_CONF) that the client commands need. `.ci/run` installs the packages where they are missing."""
    missing = [b for b in _SLURM_BINARIES if shutil.which(b) is None]
    if missing:
        pytest.skip(f"SLURM/munge binaries not found: {', '.join(missing)} (Debian packages slurm-wlm, munge)")
    if os.geteuid() != 0:
        pytest.skip("the test SLURM cluster runs its daemons as root (SlurmUser=root)")
    root = Path(tempfile.mkdtemp(prefix="optiscale-slurm-"))
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    cpus, mem = _node_resources()
    conf = root / "slurm.conf"
    conf.write_text(
        SLURM_CONF.format(root=root, ctld_port=free_port(), d_port=free_port(), cpus=cpus, mem=max(mem // 2, 1000))
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    m = root / "munge"
    munged = ["munged", "--force", f"--socket={m}/munge.socket", f"--key-file={key}", f"--log-file={m}/munged.log"]
    munged += [f"--pid-file={m}/munged.pid", f"--seed-file={m}/munged.seed"]
    started: list[tuple[str, Path]] = []  # (name, pid file) of what runs, stopped in reverse

    def log_tail() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted((root / "log").glob("*.log")))

    try:
        subprocess.run(munged, env=env, check=True, capture_output=True)
        started.append(("munged", m / "munged.pid"))
        subprocess.run(["slurmctld", "-i"], env=env, check=True, capture_output=True)
        started.append(("slurmctld", root / "slurmctld.pid"))
        subprocess.run(["slurmd", "-N", "localhost"], env=env, check=True, capture_output=True)
        started.append(("slurmd", root / "slurmd.pid"))
        deadline = time.monotonic() + 60
        while True:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True)
            if out.stdout.strip() == "idle":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the SLURM node did not become idle: {out.stdout}{out.stderr}\n{log_tail()}")
            time.sleep(0.5)
        yield {"env": env, "root": root, "cpus": cpus, "logs": log_tail}
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["scancel", "-u", "root"], env=env, capture_output=True, timeout=30)
            for _ in range(40):  # the jobs' processes end before the daemons that watch them
                out = subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True, timeout=30)
                if not out.stdout.strip():
                    break
                time.sleep(0.5)
        for _name, pidfile in reversed(started):
            with contextlib.suppress(Exception):
                pid = int(pidfile.read_text().split()[0])
                os.kill(pid, 15)
                for _ in range(100):  # up to 10 s
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, 9)
        shutil.rmtree(root, ignore_errors=True)


def _ddp_train(store, tmp_path, *extra: str) -> tuple[dict, str]:
    """`optiscale train` of a tiny 2b-tc point under 2-process CPU DDP; (its result, tracking URI)."""
    import json

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "result.json"
    args = ["--data", str(store), "--model", "2b-tc", "--width", "16", "--seed", "3", "--epochs", "2"]
    args += ["--batch-size", "8", "--set", "warmup_epochs=0.5", "--accelerator", "cpu", "--devices", "2"]
    args += ["--strategy", "ddp", "--tracking-uri", uri, "--workdir", str(tmp_path / "work"), "--json", str(out)]
    cmd = [sys.executable, "-m", "experiments.cli", "train", *args, *extra]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), uri


@pytest.fixture(scope="session")
def ddp_train():
    """The `_ddp_train(store, tmp_path, *extra_args)` function."""
    return _ddp_train

"""Real servers for tests, on loopback: a PostgreSQL cluster (Debian's package) and `mlflow server`.

`.ci/run` installs PostgreSQL where it is missing; tests skip with the reason where it cannot run.
"""

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

import pytest


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


@contextlib.contextmanager
def postgres_server():
    """A throw-away PostgreSQL cluster on 127.0.0.1; yields a SQLAlchemy URL of database `optiscale`."""
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
        createdb = _pg_bin("createdb")
        subprocess.run(
            [*run_as, createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "optiscale", "optiscale"], check=True
        )
        yield f"postgresql+psycopg2://optiscale@127.0.0.1:{port}/optiscale"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path):
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

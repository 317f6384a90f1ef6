"""A SQLite MLflow store is created once: serialised across processes, retried, and repaired if
an earlier creation was interrupted.

MLflow migrates a fresh SQLite database with alembic from whichever process opens it first; two
processes doing so at once both fail and leave `_alembic_tmp_*` tables behind. `ensure` takes an
exclusive `fcntl.flock` on `<db>.lock` (next to the database), repairs a half-migrated store,
opens the store once (MLflow creates and migrates it) and remembers it for this process.

A half-migrated store (`_alembic_tmp_*` tables) is
- recreated empty if it holds no runs (nothing is lost);
- kept, with the leftover tables dropped, if its schema is at MLflow's head revision (a
  concurrent creation failed after another one had finished);
- refused with the steps to take, otherwise.
"""

from __future__ import annotations

import fcntl
import sqlite3
import sys
import time
from pathlib import Path

ATTEMPTS = 4
_READY: set[str] = set()  # databases opened successfully by this process


class TrackingStoreError(RuntimeError):
    """A tracking store that cannot be created or used as it is."""


def db_path(tracking_uri: str) -> Path | None:
    return Path(tracking_uri[len("sqlite:///") :]) if tracking_uri.startswith("sqlite:///") else None


def ensure(tracking_uri: str, artifact_root: str | None) -> None:
    """Create (or check) the SQLite store of `tracking_uri` once per process, under a file lock."""
    db = db_path(tracking_uri)
    if db is None or str(db) in _READY:
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            for attempt in range(ATTEMPTS):
                try:
                    repair(db)
                    _open(tracking_uri, artifact_root)
                    break
                except TrackingStoreError:
                    raise
                except Exception as err:  # sqlite busy/locked, alembic errors: retry after a pause
                    if attempt == ATTEMPTS - 1:
                        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                        raise TrackingStoreError(
                            f"{db}: the MLflow store cannot be created or opened ({type(err).__name__}: {first})"
                        ) from err
                    time.sleep(0.5 * (attempt + 1))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    _READY.add(str(db))


def _open(tracking_uri: str, artifact_root: str | None) -> None:
    """Open the store as MLflow does (creating and migrating it if needed), then release it."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(tracking_uri, artifact_root or str(Path.cwd() / "mlruns"))
    store.engine.dispose()


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def repair(db: Path) -> None:
    """Recover a store left half-migrated (see the module docstring); nothing to do otherwise."""
    if not db.exists() or db.stat().st_size == 0:
        return
    con = sqlite3.connect(db, timeout=60)
    try:
        tables = _tables(con)
        leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
        if not leftovers:
            return
        n_runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] if "runs" in tables else 0
        version = (
            con.execute("SELECT version_num FROM alembic_version").fetchone() if "alembic_version" in tables else None
        )
        version = version[0] if version else None
        if n_runs == 0:
            con.close()
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(str(db) + suffix).unlink(missing_ok=True)
            _say(f"{db} was left half-migrated ({', '.join(leftovers)}) and holds no runs: recreated it empty")
            return
        from mlflow.store.db.utils import _get_latest_schema_revision

        head = _get_latest_schema_revision()
        if version != head:
            raise TrackingStoreError(
                f"{db}: MLflow store left half-migrated (tables {', '.join(leftovers)}; schema {version}, "
                f"head {head}) and it holds {n_runs} runs: back it up, drop those tables and run "
                f"`mlflow db upgrade sqlite:///{db}`"
            )
        for t in leftovers:
            con.execute(f'DROP TABLE "{t}"')
        con.commit()
        _say(f"{db}: dropped tables left by an interrupted migration ({', '.join(leftovers)}); schema at head")
    finally:
        con.close()


def _say(msg: str) -> None:
    print(f"optiscale: {msg}", file=sys.stderr)

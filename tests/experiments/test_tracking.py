"""The SQLite tracking store: created once under a file lock by concurrent processes; a store left
half-migrated is recovered or refused. Real MLflow stores, real processes."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest

from experiments.stores import sqlite_store, tracking

N_PROCESSES = 4


def _first_use(uri: str, barrier, results, i: int) -> None:
    try:
        barrier.wait(timeout=60)
        client = tracking.client_for(uri)
        exp_id = tracking.experiment_id(client, "race", uri)
        run_id = client.create_run(exp_id, tags={tracking.RUN_KEY_TAG: f"k{i}"}).info.run_id
        client.set_terminated(run_id, "FINISHED")
        results.put((i, "ok"))
    except BaseException as err:  # reported to the parent, which asserts
        results.put((i, f"{type(err).__name__}: {str(err)[:300]}"))


def _tables(db) -> set[str]:
    with sqlite3.connect(db) as con:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_concurrent_first_use_of_a_fresh_sqlite_store(tmp_path):
    db = tmp_path / "mlflow" / "mlflow.db"
    uri = f"sqlite:///{db}"
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(N_PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_first_use, args=(uri, barrier, results, i)) for i in range(N_PROCESSES)]
    for p in procs:
        p.start()
    outcome = dict(results.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(60)
    assert outcome == {i: "ok" for i in range(N_PROCESSES)}
    assert not {t for t in _tables(db) if t.startswith("_alembic_tmp_")}
    client = tracking.client_for(uri)
    exp_id = tracking.experiment_id(client, "race", uri)
    runs = client.search_runs([exp_id])
    assert sorted(r.data.tags[tracking.RUN_KEY_TAG] for r in runs) == [f"k{i}" for i in range(N_PROCESSES)]
    assert all(r.info.status == "FINISHED" for r in runs)


def _make_store(uri: str, results) -> None:
    client = tracking.client_for(uri)
    run_id = client.create_run(tracking.experiment_id(client, "used", uri)).info.run_id
    client.set_terminated(run_id, "FINISHED")
    results.put(run_id)


@pytest.fixture
def used_store(tmp_path):
    """A store at MLflow's head with one finished run, made by another process (this one has never
    opened it, as after a crash); returns (db, uri, run_id)."""
    db = tmp_path / "mlflow" / "mlflow.db"
    uri = f"sqlite:///{db}"
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    proc = ctx.Process(target=_make_store, args=(uri, results))
    proc.start()
    run_id = results.get(timeout=300)
    proc.join(60)
    return db, uri, run_id


def _damage(db, version: str | None = None, drop_runs: bool = False) -> None:
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE _alembic_tmp_x (id INTEGER)")
        if version:
            con.execute("UPDATE alembic_version SET version_num = ?", (version,))
        if drop_runs:
            for table in ("tags", "metrics", "latest_metrics", "params", "runs"):
                con.execute(f"DELETE FROM {table}")


def test_leftover_alembic_tables_of_a_store_at_head_are_dropped(used_store, capsys):
    db, uri, run_id = used_store
    _damage(db)
    client = tracking.client_for(uri)
    assert "_alembic_tmp_x" not in _tables(db)
    assert "dropped tables left by an interrupted migration (_alembic_tmp_x)" in capsys.readouterr().err
    assert client.get_run(run_id).info.status == "FINISHED"


def test_a_half_migrated_store_without_runs_is_recreated(used_store, capsys):
    db, uri, _ = used_store
    _damage(db, version="451aebb31d03", drop_runs=True)
    client = tracking.client_for(uri)
    assert "holds no runs: recreated it empty" in capsys.readouterr().err
    assert "_alembic_tmp_x" not in _tables(db)
    run = client.create_run(tracking.experiment_id(client, "again", uri))
    assert client.get_run(run.info.run_id).info.experiment_id == client.get_experiment_by_name("again").experiment_id


def test_a_half_migrated_store_with_runs_is_refused_with_the_steps(used_store):
    db, uri, _ = used_store
    _damage(db, version="451aebb31d03")
    with pytest.raises(sqlite_store.TrackingStoreError) as err:
        tracking.client_for(uri)
    msg = str(err.value)
    assert str(db) in msg and "_alembic_tmp_x" in msg and "holds 1 runs" in msg and "mlflow db upgrade" in msg
    assert "\n" not in msg
    assert "_alembic_tmp_x" in _tables(db)  # nothing was changed

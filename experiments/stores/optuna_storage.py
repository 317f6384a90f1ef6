"""Optuna RDB storage shared by the sweeps and the studies: heartbeats, retried stale trials,
safe concurrent creation.

Default: `$OPTISCALE_OPTUNA_STORAGE`, else `sqlite:///<cwd>/mlflow/optuna.db` (sweeps and studies
keep their studies in the same file under different names). Any SQLAlchemy URL works, e.g.
PostgreSQL for workers on several machines (not the database of an MLflow server: both keep an
alembic_version table).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path


def default_storage() -> str:
    env = os.environ.get("OPTISCALE_OPTUNA_STORAGE")
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / 'mlflow' / 'optuna.db').resolve()}"


def rdb_storage(url: str, heartbeat_s: int, grace_s: int, max_retry: int):
    """RDBStorage with heartbeats; a stale trial (its worker was killed) is failed and queued again
    with the same parameters by `RetryHeartbeatStaleTrialCallback`. The construction is retried:
    processes that create a fresh SQLite database at once can collide on its alembic_version row."""
    import optuna
    import sqlalchemy
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        engine: dict = {"connect_args": {"timeout": 60}}
    else:
        engine = {"pool_pre_ping": True}
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat_s,
                    grace_period=grace_s,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            if attempt == 5:
                raise
            time.sleep(0.3 * (attempt + 1))
    raise AssertionError("unreachable")


OBJECTIVE_NAME = "best_val_loss"


def open_study(storage, name: str, sampler, pruner=None):
    """Create the study or load it (`load_if_exists`): a rerun continues it, workers share it.
    Two workers creating it at once: one wins, the other retries and loads it."""
    import optuna

    for attempt in range(5):
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=name,
                sampler=sampler,
                pruner=pruner,
                direction="minimize",
                load_if_exists=True,
            )
            break
        except optuna.exceptions.DuplicatedStudyError:
            time.sleep(0.5 * (attempt + 1))
    else:
        study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    if study.metric_names != [OBJECTIVE_NAME]:  # optuna-dashboard shows "Objective 0" without a name
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([OBJECTIVE_NAME])
    return study

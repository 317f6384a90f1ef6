"""Optuna RDB storage of the studies: heartbeats, retried stale trials, safe concurrent creation.

Default: `$OPTISCALE_OPTUNA_STORAGE`, else `sqlite:///<cwd>/mlflow/optuna.db` (the sweeps keep
their coordination studies in the same file under other names). Any SQLAlchemy URL works, e.g.
PostgreSQL for workers on several machines.
"""

from __future__ import annotations

import os

from experiments.stores.optuna_storage import default_storage  # noqa: F401  (re-exported)
from experiments.stores.optuna_storage import open_study as _open_study
from experiments.stores.optuna_storage import rdb_storage as _rdb_storage

HEARTBEAT_S = int(os.environ.get("OPTISCALE_STUDY_HEARTBEAT_S", 10))  # a running trial beats this often
GRACE_S = int(os.environ.get("OPTISCALE_STUDY_GRACE_S", 60))  # silent this long: its worker is dead
MAX_RETRY = 2  # a trial of a dead worker is queued again at most this many times


def rdb_storage(url: str):
    """The studies' storage: `experiments.stores.optuna_storage.rdb_storage` with their heartbeat settings."""
    return _rdb_storage(url, HEARTBEAT_S, GRACE_S, MAX_RETRY)


def open_study(url: str, name: str, sampler, pruner):
    """The study `name` in the storage at `url` with the studies' heartbeat settings."""
    return _open_study(rdb_storage(url), name, sampler, pruner)

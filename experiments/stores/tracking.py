"""MLflow: the default store, experiments with an explicit artifact location, runs by run key.

Default tracking URI: `$OPTISCALE_TRACKING_URI`, else `sqlite:///<cwd>/mlflow/mlflow.db` (absolute),
whose artifacts live in `<cwd>/mlflow/artifacts/`. A SQLite store is created once, serialised
between processes (`sqlite_store`). Everything here runs on rank 0 only; `RunLogger` (Lightning)
lives in `run_logger` and is imported on first use.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import sqlite_store

RUN_KEY_TAG = "run_key"
STATUS_TAG = "optiscale.status"
KIND_TAG = "optiscale.kind"  # set on runs that are not grid points: "report", "study-report"


def __getattr__(name: str):
    if name == "RunLogger":  # needs Lightning (seconds to import): loaded on first use only
        from .run_logger import RunLogger

        return RunLogger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_tracking_uri() -> str:
    env = os.environ.get("OPTISCALE_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(Path.cwd() / 'mlflow' / 'mlflow.db').resolve()}"


def artifact_location(tracking_uri: str) -> str | None:
    """`<dir of the db>/artifacts` for a SQLite store; the server's/file store's default otherwise."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///") :])
    return (db.parent / "artifacts").resolve().as_uri()


def client_for(tracking_uri: str):
    """An MlflowClient; a SQLite store is created first, once, under a file lock (see `sqlite_store`)."""
    from mlflow.tracking import MlflowClient

    sqlite_store.ensure(tracking_uri, artifact_location(tracking_uri))
    return MlflowClient(tracking_uri)


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"


def experiment_id(client, name: str, tracking_uri: str) -> str:
    """Id of experiment `name`, created (with the explicit artifact location) if missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise ValueError(f"MLflow experiment {name!r} is deleted: restore it or choose another --experiment")
        if EXPERIMENT_KIND_TAG not in exp.tags:  # a store made before the tag was set
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, "custom_model_development")
        return exp.experiment_id
    try:
        return client.create_experiment(
            name,
            artifact_location=artifact_location(tracking_uri),
            # MLflow 3.x marks an experiment as model training (not GenAI) with this tag; which view
            # the UI opens in is still its browser-kept switch (docs/sweeps.md#what-the-dashboards-show).
            tags={EXPERIMENT_KIND_TAG: "custom_model_development"},
        )
    except Exception:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def runs_with_key(client, exp_id: str, key: str) -> list:
    """Active (not deleted) runs tagged with this run key, newest first."""
    return client.search_runs(
        [exp_id], filter_string=f"tags.{RUN_KEY_TAG} = '{key}'", order_by=["attributes.start_time DESC"]
    )


def seen_steps(client, run_id: str) -> set[tuple[str, int]]:
    """(metric, step) pairs already logged to a run."""
    run = client.get_run(run_id)
    return {(k, m.step) for k in run.data.metrics for m in client.get_metric_history(run_id, k)}


def note_environment_change(client, run_id: str, env: dict[str, str]) -> None:
    """A resume on another machine or software: the run keeps its first environment's tags and
    `env.changed_on_resume` lists what differed (its numbers are then not bit-reproducible)."""
    old = client.get_run(run_id).data.tags
    changed = [f"{k[4:]}: {old[k]} -> {v}" for k, v in env.items() if k in old and old[k] != v]
    if changed:
        previous = old.get("env.changed_on_resume")
        note = "; ".join(changed)
        client.set_tag(run_id, "env.changed_on_resume", f"{previous} | {note}" if previous else note)


DIGEST_LIMIT = 36  # the length of MLflow's dataset digest column


def training_dataset(resolved: dict):
    """The run's training subset as an MLflow dataset: named after the store and D, the digest is the
    store's content hash (shortened) plus D, so the UI's Dataset column says what was trained on."""
    import json

    from mlflow.entities import Dataset

    store, d = Path(resolved["data"]), int(resolved["D"])
    suffix = f"-D{d}"
    return Dataset(
        name=f"{store.name}{suffix}",
        digest=str(resolved["data_hash"])[: DIGEST_LIMIT - len(suffix)] + suffix,
        source_type="local",
        source=json.dumps({"uri": str(store)}),
        profile=json.dumps({"D": d, "data_hash": str(resolved["data_hash"])}),
    )


def log_training_input(client, run_id: str, resolved: dict) -> None:
    """Record the training subset as the run's input, once: a resumed run already holding it is left as is."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = training_dataset(resolved)
    held = client.get_run(run_id).inputs.dataset_inputs
    if any((i.dataset.name, i.dataset.digest) == (dataset.name, dataset.digest) for i in held):
        return
    inputs = [DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])]
    # Runs of the same D log the same dataset: two at once on a server (PostgreSQL) race to insert it
    # and one fails on the unique (experiment, name, digest) row; the next try finds it and links it.
    for attempt in range(4):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except Exception as err:  # noqa: BLE001  (MlflowException or the server's HTTP error)
            if attempt == 3:
                print(f"[train] the training subset was not recorded as the run's input: {err}", flush=True)
                return
            time.sleep(0.5 * (attempt + 1))

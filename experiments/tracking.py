"""MLflow: the default store, experiments with an explicit artifact location, runs by run key.

Default tracking URI: `$OPTISCALE_TRACKING_URI`, else `sqlite:///<cwd>/mlflow/mlflow.db` (absolute),
whose artifacts live in `<cwd>/mlflow/artifacts/`. Everything here runs on rank 0 only.
"""

from __future__ import annotations

import os
from pathlib import Path

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

RUN_KEY_TAG = "run_key"
STATUS_TAG = "optiscale.status"


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
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri)


def experiment_id(client, name: str, tracking_uri: str) -> str:
    """Id of experiment `name`, created (with the explicit artifact location) if missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise ValueError(f"MLflow experiment {name!r} is deleted: restore it or choose another --experiment")
        return exp.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location(tracking_uri))
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


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger, adapted to one run per grid point:

    - metrics are logged with step = epoch, and a (metric, step) pair already in the run is never
      logged again (a resumed run repeats no epoch);
    - hyperparameters are logged by `train` (the flat resolved config), not from the module;
    - the run is marked FINISHED by `train` after testing and artifacts, not at the end of `fit`;
      a failure marks it FAILED (and leaves it resumable).
    """

    def __init__(self, *args, seen: set[tuple[str, int]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self._seen = set(seen)

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        step = int(epoch) if epoch is not None else int(step or 0)
        fresh = {k: v for k, v in metrics.items() if (k, step) not in self._seen}
        self._seen.update((k, step) for k in fresh)
        if fresh:
            super().log_metrics(fresh, step)

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        pass

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        if status != "success" and self._initialized:
            self.experiment.set_terminated(self.run_id, "FAILED")

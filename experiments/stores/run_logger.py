"""The Lightning MLflow logger of one grid point's run (see `RunLogger`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger, adapted to one run per grid point:

    - metrics are logged with step = epoch, and a (metric, step) pair already in the run is never
      logged again (a resumed run repeats no epoch);
    - hyperparameters are logged by `train` (the flat resolved config), not from the module;
    - the run is marked FINISHED by `train` after testing and artifacts, not at the end of `fit`;
      a failure marks it FAILED (and leaves it resumable).
    """

    def __init__(self, *args, seen: Iterable[tuple[str, int]] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self._seen = set(seen)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
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

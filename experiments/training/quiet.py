"""Known third-party messages that say nothing to an optiscale user, filtered in one place.

Each filter names one message precisely (a prefix of the record or warning text), so new or
unexpected warnings are still shown. Set OPTISCALE_VERBOSE=1 to see everything.
"""

from __future__ import annotations

import logging
import os
import warnings

# Lightning's rank-zero INFO lines (logger lightning.pytorch.utilities.rank_zero).
LIGHTNING_INFO = (
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "💡 Tip: For seamless cloud logging",  # an advertisement for LitLogger / lightning.ai
    "Loading `train_dataloader` to estimate number of stepping batches.",
    "`Trainer.fit` stopped: `max_epochs=",  # the epoch lines already count to max_epochs
    "`Trainer.fit` stopped: `max_steps=",  # a fixed-steps recipe: its epochs are those that hold the steps
    "Restoring states from the checkpoint path at ",
    "Loaded model weights from the checkpoint at ",
    "Restored all states from the checkpoint at ",
)
# MLflow's INFO lines when it creates a SQLite store.
MLFLOW_INFO = ("Creating initial MLflow database tables", "Updating database tables")
# Warnings (regexes matched at the start of the message).
WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning 2.6 calling torch's pytree
    r"The `srun` command is available on your system but is not used",  # we launch SLURM via submitit
)


class DropPrefixes(logging.Filter):
    """Drops the records whose message starts with one of `prefixes`."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def quiet() -> None:
    """Installs the filters (before Lightning or MLflow is imported: the loggers are shared objects)."""
    if os.environ.get("OPTISCALE_VERBOSE"):
        return
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(DropPrefixes(LIGHTNING_INFO))
    logging.getLogger("mlflow.store.db.utils").addFilter(DropPrefixes(MLFLOW_INFO))
    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=message)

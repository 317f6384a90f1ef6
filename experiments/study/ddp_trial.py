"""Train one trial of a study under DDP: `python -m experiments.study.ddp_trial PAYLOAD_JSON OUT`.

Started by the study process for a trial with devices > 1; Lightning relaunches this same command
for ranks 1..K-1. Every rank loads the RUNNING trial from the RDB storage; the pruning callback
decides on rank 0, broadcasts the stop, and `check_pruned()` (called by train after fit) raises
TrialPruned on every rank. Exit code 0: finished (rank 0 writes the result JSON); 3: pruned.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    import optuna
    from lightning.pytorch.utilities import rank_zero_only

    from datamodules.atomic import atomic_write_json
    from experiments.training.allocator import tune_malloc

    from .objective import PRUNED_EXIT, run_trial
    from .spec import StudySpec, make_pruner, make_sampler
    from .storage import rdb_storage

    tune_malloc()
    payload, out = json.loads(argv[0]), argv[1]
    spec = StudySpec(**payload["spec"])
    study = optuna.load_study(
        study_name=payload["study"],
        storage=rdb_storage(payload["storage"]),
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
    )
    trial = optuna.Trial(study, int(payload["trial_id"]))
    try:
        result = run_trial(trial, payload["overrides"], payload["tracking_uri"], spec.experiment)
    except optuna.TrialPruned:
        return PRUNED_EXIT
    if getattr(rank_zero_only, "rank", 0) == 0:
        atomic_write_json(out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

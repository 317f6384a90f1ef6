"""One Optuna trial: suggest, count parameters, reject over budget, train with pruning, return best_val_loss.

A trial is rejected before training (no MLflow run, no work dir, milliseconds) when its model has
more parameters than the budget, or its width is not divisible by its heads: it is marked PRUNED
with the user attribute `rejected` ("over_budget" or "invalid"). PRUNED rather than FAIL: the TPE
sampler ranks pruned trials below every completed one, so it learns to avoid the rejected region
(FAIL trials are invisible to it and it would keep proposing them).

Every trained trial is one run of `experiments.training.train.train` (the schema of the training issue),
tagged `optuna.study` and `optuna.trial`. A pruned trial's run ends KILLED with
`optiscale.status = pruned`. A trial with the parameters of an earlier complete or pruned trial of
the study reuses its outcome instead of training again (deterministic seeds: the same curve).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .spec import StudySpec, suggest

STUDY_TAG, TRIAL_TAG = "optuna.study", "optuna.trial"
PRUNED_EXIT = 3  # exit code of a DDP trial subprocess whose trial was pruned


def overrides_for(spec: StudySpec, knobs: dict) -> dict:
    """The training overrides of a trial: the study's fixed recipe and the trial's knobs.
    The suggested lr is the effective one (no width rule on top of it)."""
    out = {**spec.recipe, "data": spec.data, "model": spec.model, "D": spec.D, "seed": spec.seed}
    out.update(epochs=spec.epochs, **knobs)
    if "lr" in knobs:
        out["scale_lr_with_width"] = False
    return out


class Objective:
    """Callable for `study.optimize`; the tracking store and experiment come from the spec."""

    def __init__(self, spec: StudySpec, tracking_uri: str, storage_url: str, log=print):
        self.spec, self.tracking_uri, self.storage_url, self.log = spec, tracking_uri, storage_url, log

    def __call__(self, trial: optuna.Trial) -> float:
        from experiments.training.config import load_config, resolve

        spec = self.spec
        knobs = suggest(trial, spec.space)
        heads = knobs.get("heads")
        if heads is not None and int(knobs["width"]) % int(heads):
            trial.set_user_attr("rejected", "invalid")
            raise optuna.TrialPruned(f"width {knobs['width']} is not divisible by {heads} heads")
        overrides = overrides_for(spec, knobs)
        cfg = load_config(overrides)
        resolved = resolve(cfg)  # parameters counted on the meta device: no training; resolved once per trial
        n = int(resolved["n_parameters"])
        trial.set_user_attr("n_parameters", n)
        trial.set_user_attr("run_key", resolved["run_key"])
        if spec.budget is not None and n > int(spec.budget):
            trial.set_user_attr("rejected", "over_budget")
            self.log(f"[study {trial.study.study_name}] trial {trial.number}: {knobs} over budget ({n:,}): rejected")
            raise optuna.TrialPruned(f"{n:,} parameters exceed the budget of {int(spec.budget):,}")
        earlier = _same_params(trial)
        if earlier is not None:
            trial.set_user_attr("reused_trial", earlier.number)
            if earlier.state == TrialState.PRUNED:
                raise optuna.TrialPruned(f"the parameters of trial {earlier.number}, which was pruned")
            return float(earlier.value)
        if spec.runs:
            overrides["workdir"] = str(Path(spec.runs) / resolved["run_key"])
        self.log(f"[study {trial.study.study_name}] trial {trial.number}: {knobs} ({n:,} parameters)")
        if int(cfg.devices) > 1:
            result = self._train_subprocess(trial, overrides)
        else:
            result = run_trial(trial, overrides, self.tracking_uri, spec.experiment, resolved=resolved)
        trial.set_user_attr("mlflow_run_id", result["run_id"])
        return float(result["best_val_loss"])

    def _train_subprocess(self, trial: optuna.Trial, overrides: dict) -> dict:
        """DDP: the trial trains in `python -m experiments.study.ddp_trial`, which Lightning relaunches
        for ranks 1..K-1; every rank joins the same trial through the storage (check_pruned after fit)."""
        payload = {
            "storage": self.storage_url,
            "study": trial.study.study_name,
            "trial_id": trial._trial_id,
            "spec": _spec_dict(self.spec),
            "overrides": overrides,
            "tracking_uri": self.tracking_uri,
        }
        with tempfile.TemporaryDirectory(prefix="optiscale-trial-") as tmp:
            out = os.path.join(tmp, "result.json")
            cmd = [sys.executable, "-m", "experiments.study.ddp_trial", json.dumps(payload), out]
            code = subprocess.run(cmd).returncode
            if code == PRUNED_EXIT:
                raise optuna.TrialPruned("pruned in its DDP run")
            if code or not os.path.exists(out):
                raise RuntimeError(f"trial {trial.number}: the DDP training exited with code {code}")
            return json.loads(Path(out).read_text())


def run_trial(trial, overrides: dict, tracking_uri: str, experiment: str, resolved: dict | None = None) -> dict:
    """Train the trial's configuration with the pruning callback; the run carries the trial's tags."""
    from optuna_integration import PyTorchLightningPruningCallback

    from experiments.stores import tracking
    from experiments.training.train import train

    tags = {STUDY_TAG: trial.study.study_name, TRIAL_TAG: trial.number}
    callback = PyTorchLightningPruningCallback(trial, monitor="val_loss")
    result = train(
        overrides,
        extra_callbacks=[callback],
        tracking_uri=tracking_uri,
        experiment=experiment,
        tags=tags,
        resolved=resolved,
    )
    if result.get("status") == "resumed":  # a retry of a trial whose worker died: the run is now this trial's
        client = tracking.client_for(tracking_uri)
        for key, value in tags.items():
            client.set_tag(result["run_id"], key, str(value))
    return result


def _same_params(trial: optuna.Trial):
    """An earlier complete or pruned (not rejected) trial with the same parameters, if any."""
    params = trial.params
    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.number != trial.number and t.params == params and "rejected" not in t.user_attrs:
            return t
    return None


def _spec_dict(spec: StudySpec) -> dict:
    import dataclasses

    return dataclasses.asdict(spec)

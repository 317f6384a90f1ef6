"""What the dashboards show: the MLflow experiment is tagged as model training (not GenAI), the
Optuna objective is named, and the fit report's table cells hold no HTML. Real MLflow and Optuna stores."""

from __future__ import annotations

import optuna

from experiments.fitting.report import _params_cell
from experiments.stores import tracking
from experiments.stores.optuna_storage import open_study


def test_new_and_old_experiments_are_tagged_as_model_training(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    client = tracking.client_for(uri)
    exp_id = tracking.experiment_id(client, "fresh", uri)
    assert client.get_experiment(exp_id).tags["mlflow.experimentKind"] == "custom_model_development"
    old = client.create_experiment("made-before-the-tag")  # as an older optiscale left it
    assert "mlflow.experimentKind" not in client.get_experiment(old).tags
    assert tracking.experiment_id(client, "made-before-the-tag", uri) == old
    assert client.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"


def test_study_objective_is_named_best_val_loss(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    open_study(storage, "s", optuna.samplers.RandomSampler(seed=0))
    again = open_study(storage, "s", optuna.samplers.RandomSampler(seed=0))  # loaded, not recreated
    assert again.metric_names == ["best_val_loss"]
    assert optuna.load_study(study_name="s", storage=storage).metric_names == ["best_val_loss"]


def test_fit_parameter_cells_hold_no_html():
    fit = {"params": {"a": 1.5, "alpha": 0.3}, "method": "lsq", "stderr": {"a": 0.1, "alpha": 0.01}}
    cell = _params_cell(fit)
    assert "<" not in cell and "|" not in cell
    assert "a=1.5 ± 0.1" in cell and "alpha=0.3 ± 0.01" in cell

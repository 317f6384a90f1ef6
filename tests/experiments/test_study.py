"""Optuna capacity studies: real studies (SQLite), real 2-epoch trainings, real MLflow runs."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from experiments.cli import main
from experiments.study.spec import load_spec

TRIAL_KEYS = {"number", "state", "params", "value", "n_parameters"}


def write_study(tmp_path: Path, store, **changes) -> Path:
    doc = {
        "name": "tiny",
        "data": str(store),
        "D": 24,
        "model": "2b-tc",
        "seed": 1,
        "n_trials": 3,
        "epochs": 2,
        "space": {"width": [8, 16], "blocks": [1, 2], "lr": {"low": 1e-4, "high": 3e-3}},
        "sampler": {"seed": 0, "n_startup_trials": 10},
        "pruner": {"kind": "none"},
        "recipe": {"batch_size": 8, "warmup_epochs": 0.5},
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
        "experiment": "studies",
        "runs": str(tmp_path / "runs"),
        **changes,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def trial_runs(uri: str, experiment: str = "studies") -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string="tags.`optuna.trial` != ''")


@pytest.mark.slow
def test_three_trials_then_a_rerun_continues_the_study(store201, tmp_path):
    cfg = write_study(tmp_path, store201)
    out = tmp_path / "study.json"
    assert main(["study", "--config", str(cfg), "--json", str(out), "--report-dir", str(tmp_path / "rep")]) == 0
    report = json.loads(out.read_text())
    assert {"study", "best", "trials"} <= set(report) and report["study"] == "tiny"
    assert len(report["trials"]) == 3
    for t in report["trials"]:
        assert TRIAL_KEYS <= set(t) and t["state"] == "COMPLETE"
        assert set(t["params"]) == {"width", "blocks", "lr"} and t["value"] > 0 and t["n_parameters"] > 0
    runs = trial_runs(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    assert {r.data.tags["optuna.study"] for r in runs} == {"tiny"}
    assert sorted(int(r.data.tags["optuna.trial"]) for r in runs) == [0, 1, 2]
    by_trial = {int(r.data.tags["optuna.trial"]): r for r in runs}
    for t in report["trials"]:  # each trial's value is its run's best_val_loss; width/blocks reached the model
        run = by_trial[t["number"]]
        assert run.data.metrics["best_val_loss"] == pytest.approx(t["value"])
        assert int(run.data.params["n_parameters"]) == t["n_parameters"]
        assert (run.data.params["width"], run.data.params["blocks"]) == (
            str(t["params"]["width"]),
            str(t["params"]["blocks"]),
        )
        assert float(run.data.params["lr"]) == pytest.approx(t["params"]["lr"])  # the effective lr, no width rule
    best = min(report["trials"], key=lambda t: t["value"])
    assert report["best"]["number"] == best["number"] and report["best"]["value"] == best["value"]
    assert (tmp_path / "rep" / "tiny.md").read_text().startswith("# Study `tiny`")

    # a rerun adds trials to the same study in the same storage
    assert (
        main(
            [
                "study",
                "--config",
                str(cfg),
                "--n-trials",
                "2",
                "--json",
                str(out),
                "--report-dir",
                str(tmp_path / "rep"),
            ]
        )
        == 0
    )
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len(study.trials) == 5 and len(json.loads(out.read_text())["trials"]) == 5
    assert len(trial_runs(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")) == 5
    # the report run holds the study's report as artifacts
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("studies")
    reports = client.search_runs([exp.experiment_id], filter_string="tags.`optiscale.kind` = 'study-report'")
    assert len(reports) == 1
    assert {a.path for a in client.list_artifacts(reports[0].info.run_id, "study")} == {
        "study/tiny.json",
        "study/tiny.md",
    }
    # the same name with another D is refused, not mixed into the study
    assert main(["study", "--config", str(cfg), "--D", "16", "--n-trials", "1"]) == 1


def test_an_over_budget_trial_never_trains(store201, tmp_path):
    cfg = write_study(tmp_path, store201, name="tight", budget=5000, n_trials=2)
    out = tmp_path / "study.json"
    assert main(["study", "--config", str(cfg), "--json", str(out), "--report-dir", str(tmp_path / "rep")]) == 0
    trials = json.loads(out.read_text())["trials"]
    assert [t["state"] for t in trials] == ["PRUNED", "PRUNED"]
    assert all(t["n_parameters"] > 5000 and t["rejected"] == "over_budget" for t in trials)
    assert json.loads(out.read_text())["best"] is None
    assert trial_runs(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}") == []  # no MLflow run
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ckpt"))  # no checkpoint


def test_a_diverging_trial_is_pruned(store201, tmp_path):
    # lr = 10 blows the weights up in the first epoch; the threshold pruner stops it after epoch 1 of 3
    cfg = write_study(
        tmp_path,
        store201,
        name="diverge",
        n_trials=1,
        epochs=3,
        space={"width": [8], "blocks": [1], "lr": 10.0},
        pruner={"kind": "threshold", "upper": 1000.0},
    )
    out = tmp_path / "study.json"
    assert main(["study", "--config", str(cfg), "--json", str(out), "--report-dir", str(tmp_path / "rep")]) == 0
    (trial,) = json.loads(out.read_text())["trials"]
    # Optuna gives a pruned trial its last reported value: the diverged val_loss of epoch 1
    assert trial["state"] == "PRUNED" and trial["value"] > 1000.0 and not trial.get("rejected")
    study = optuna.load_study(study_name="diverge", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    (frozen,) = study.trials
    assert list(frozen.intermediate_values) == [0]  # reported once, then pruned
    (run,) = trial_runs(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    assert run.info.status == "KILLED" and run.data.tags["optiscale.status"] == "pruned"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0]
    assert "best_val_loss" not in run.data.metrics


def test_the_spec_refuses_bad_keys_and_expands_the_capacity_preset(tmp_path):
    spec = load_spec(Path("experiments/configs/studies/capacity.yaml"))
    cells = spec.cells()
    assert len(cells) == 9 and {c.budget for c in cells} == {10**5, 10**6, 10**7}
    assert cells[0].name == "capacity-D500-N1e05" and len({c.name for c in cells}) == 9
    assert load_spec(None).name == "default"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "data": "d", "widht": [8]}))
    with pytest.raises(ValueError, match="unknown study keys"):
        load_spec(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "data": "d", "space": {"width": [8], "depth": [1]}}))
    with pytest.raises(ValueError, match="unknown search-space knobs"):
        load_spec(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "data": "d", "space": {"width": [8]}, "recipe": {"lr": 1}}))
    with pytest.raises(ValueError, match="set by the study"):
        load_spec(bad)

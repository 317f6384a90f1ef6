"""Optuna capacity studies: real studies (SQLite), real 2-epoch trainings, real MLflow runs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from experiments.cli import main
from experiments.study.spec import load_spec

TRIAL_KEYS = {"number", "state", "params", "value", "n_parameters"}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One MLflow store and one Optuna storage for the module (creating a store costs seconds);
    every test has its own study and MLflow experiment in them."""
    root = tmp_path_factory.mktemp("study-stores")
    return {"mlflow": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", "optuna": f"sqlite:///{root / 'optuna.db'}"}


def write_study(tmp_path: Path, store, shared: dict, **changes) -> Path:
    name = changes.get("name", "tiny")
    doc = {
        "name": "tiny",
        "data": str(store),
        "D": 8,
        "model": "2b-tc",
        "seed": 1,
        "n_trials": 3,
        "epochs": 2,
        "space": {"width": [8, 16], "blocks": [1, 2], "lr": {"low": 1e-4, "high": 3e-3}},
        "sampler": {"seed": 0, "n_startup_trials": 10},
        "pruner": {"kind": "none"},
        "recipe": {"batch_size": 8, "warmup_epochs": 0.5},
        "storage": shared["optuna"],
        "tracking_uri": shared["mlflow"],
        "experiment": f"studies-{name}",
        "runs": str(tmp_path / "runs"),
        **changes,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def trial_runs(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], filter_string="tags.`optuna.trial` != ''")


@pytest.mark.slow
def test_three_trials_then_a_rerun_continues_the_study(store201, tmp_path, shared):
    cfg = write_study(tmp_path, store201, shared)
    out = tmp_path / "study.json"
    assert main(["study", "--config", str(cfg), "--json", str(out), "--report-dir", str(tmp_path / "rep")]) == 0
    report = json.loads(out.read_text())
    assert {"study", "best", "trials"} <= set(report) and report["study"] == "tiny"
    assert len(report["trials"]) == 3
    for t in report["trials"]:
        assert TRIAL_KEYS <= set(t) and t["state"] == "COMPLETE"
        assert set(t["params"]) == {"width", "blocks", "lr"} and t["value"] > 0 and t["n_parameters"] > 0
    runs = trial_runs(shared["mlflow"], "studies-tiny")
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
    study = optuna.load_study(study_name="tiny", storage=shared["optuna"])
    assert len(study.trials) == 5 and len(json.loads(out.read_text())["trials"]) == 5
    assert len(trial_runs(shared["mlflow"], "studies-tiny")) == 5
    # the report run holds the study's report as artifacts
    client = MlflowClient(shared["mlflow"])
    exp = client.get_experiment_by_name("studies-tiny")
    reports = client.search_runs([exp.experiment_id], filter_string="tags.`optiscale.kind` = 'study-report'")
    assert len(reports) == 1
    assert {a.path for a in client.list_artifacts(reports[0].info.run_id, "study")} == {
        "study/tiny.json",
        "study/tiny.md",
    }
    # the same name with another D is refused, not mixed into the study
    assert main(["study", "--config", str(cfg), "--D", "16", "--n-trials", "1"]) == 1


def test_an_over_budget_trial_never_trains(store201, tmp_path, shared):
    # 201-point grid: width 16 has 39,475 parameters with 1 block and 44,275 with 2. With a budget of
    # 40,000 every width and block count fits in some combination, so the space stays whole, but
    # (16, 2) is over: queued first, that trial is rejected before training
    cfg = write_study(tmp_path, store201, shared, name="tight", budget=40000, n_trials=1)
    optuna.create_study(study_name="tight", storage=shared["optuna"]).enqueue_trial({"width": 16, "blocks": 2})
    out = tmp_path / "study.json"
    assert main(["study", "--config", str(cfg), "--json", str(out), "--report-dir", str(tmp_path / "rep")]) == 0
    (trial,) = json.loads(out.read_text())["trials"]
    assert trial["state"] == "PRUNED" and trial["rejected"] == "over_budget" and trial["n_parameters"] == 44275
    assert json.loads(out.read_text())["best"] is None
    assert trial_runs(shared["mlflow"], "studies-tight") == []  # no MLflow run
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.ckpt"))  # no checkpoint


def test_a_budget_restricts_the_searched_space_to_what_fits(store201, tmp_path, shared, capsys):
    # 201-point grid, 2B-TC: width 8 has 17,123 / 18,435 / 19,747 parameters with 1 / 2 / 3 blocks,
    # width 16 has 39,475 with 1 block. Within 18,000 only width 8 with 1 block fits: every trial is
    # that model (the first trains, the others reuse it) instead of most being rejected
    space = {"width": [8, 16, 32, 64], "blocks": [1, 2, 3], "lr": 1e-3}
    cfg = write_study(tmp_path, store201, shared, name="fits", budget=18000, n_trials=3, epochs=1, space=space)
    out = tmp_path / "study.json"
    assert main(["study", "--config", str(cfg), "--json", str(out), "--report-dir", str(tmp_path / "rep")]) == 0
    report = json.loads(out.read_text())
    assert [(t["state"], t["params"]) for t in report["trials"]] == [("COMPLETE", {"width": 8, "blocks": 1})] * 3
    assert report["best"]["n_parameters"] == 17123
    assert "width 16, width 32, width 64, blocks 2, blocks 3: over the budget of 18,000" in capsys.readouterr().out
    # nothing fits: one line, before any trial is recorded
    assert main(["study", "--config", str(cfg), "--budget", "5000", "--study-name", "none-fits"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "optiscale: error: study none-fits: no model of the search space fits the budget of 5,000 parameters; "
        "the smallest, width 8 with blocks 1, has 17,123"
    )
    assert "none-fits" not in optuna.get_all_study_names(shared["optuna"])


def test_a_diverging_trial_is_pruned(store201, tmp_path, shared):
    # lr = 10 blows the weights up in the first epoch; the threshold pruner stops it after epoch 1 of 3
    cfg = write_study(
        tmp_path,
        store201,
        shared,
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
    study = optuna.load_study(study_name="diverge", storage=shared["optuna"])
    (frozen,) = study.trials
    assert list(frozen.intermediate_values) == [0]  # reported once, then pruned
    (run,) = trial_runs(shared["mlflow"], "studies-diverge")
    assert run.info.status == "KILLED" and run.data.tags["optiscale.status"] == "pruned"
    client = MlflowClient(shared["mlflow"])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0]
    assert "best_val_loss" not in run.data.metrics


def test_the_spec_refuses_bad_keys_and_expands_the_capacity_preset(tmp_path):
    spec = load_spec(Path("experiments/configs/studies/capacity.yaml"))
    cells = spec.cells()
    assert len(cells) == 9 and {c.budget for c in cells} == {10**5, 10**6, 10**7}
    assert cells[0].name == "capacity-D250-N1e05" and len({c.name for c in cells}) == 9
    assert load_spec(None).name == "default"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "data": "d", "widht": [8]}))
    with pytest.raises(ValueError, match="bad.yaml: unknown key 'widht'"):
        load_spec(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "data": "d", "space": {"width": [8], "depth": [1]}}))
    with pytest.raises(ValueError, match="bad.yaml: space: unknown knob 'depth'"):
        load_spec(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "data": "d", "space": {"width": [8]}, "recipe": {"lr": 1}}))
    with pytest.raises(ValueError, match="set by the study"):
        load_spec(bad)


def test_depth_and_heads_knobs_leave_the_reference_untouched(tiny_config, store201, tmp_path):
    from experiments.training.config import load_config, n_parameters, resolve
    from lightning_modules.optimetal import build_model

    assert n_parameters("2b-tc", 16, 2001) == 278_275  # the reference table, unchanged by the optional knobs
    assert n_parameters("3b-tc", 16, 2001, blocks=2, heads=8) == n_parameters("3b-tc", 16, 2001)
    # concatenated heads keep the width: the head count moves no parameter, each block adds the same amount
    assert len({n_parameters("2b-tc", 16, 201, heads=h) for h in (1, 2, 4, 8)}) == 1
    n1, n2, n3 = (n_parameters("2b-tc", 16, 201, blocks=b) for b in (1, 2, 3))
    assert n3 - n2 == n2 - n1 > 0
    assert len(build_model("3b-tc", 16, 201, blocks=3).layers) == 3
    with pytest.raises(ValueError, match="not divisible"):
        build_model("2b-tc", 12, 201, heads=8)
    with pytest.raises(ValueError, match="no attention heads"):
        build_model("2b-cgc", 16, 201, heads=2)
    # the run key of the reference architecture is the one it always had; a set knob changes it
    base = resolve(load_config(tiny_config(store201, tmp_path)))
    same = resolve(load_config(tiny_config(store201, tmp_path, blocks="null")))
    deeper = resolve(load_config(tiny_config(store201, tmp_path, blocks=3)))
    assert base["run_key"] == same["run_key"] != deeper["run_key"]
    assert deeper["n_parameters"] == n3


def test_a_trial_left_running_by_a_dead_worker_is_failed_and_retried(store201, tmp_path, shared, monkeypatch):
    from experiments.study import storage as study_storage

    monkeypatch.setattr(study_storage, "HEARTBEAT_S", 1)
    monkeypatch.setattr(study_storage, "GRACE_S", 2)
    cfg = write_study(tmp_path, store201, shared, name="stale", n_trials=1)
    url = shared["optuna"]
    # a worker asked for a trial, beat once, then died (what kill -9 leaves: a RUNNING trial, no more beats)
    study = optuna.create_study(study_name="stale", storage=study_storage.rdb_storage(url))
    dead = study.ask({"width": optuna.distributions.CategoricalDistribution([8, 16])})
    study._storage.record_heartbeat(dead._trial_id)
    time.sleep(3)
    out = tmp_path / "study.json"
    assert main(["study", "--config", str(cfg), "--json", str(out), "--report-dir", str(tmp_path / "rep")]) == 0
    trials = optuna.load_study(study_name="stale", storage=url).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]  # failed, then its retry trained
    assert trials[1].system_attrs["failed_trial"] == 0 and trials[1].params["width"] == dead.params["width"]


@pytest.mark.slow
def test_the_capacity_preset_runs_one_study_per_cell_and_writes_the_table(store201, tmp_path, shared):
    # 201-point grid, 1 block: width 8 has 17,123 parameters, width 16 39,475
    space = {"width": [8, 16], "blocks": [1], "lr": 1e-3}
    caps = {"D": [8, 16], "budgets": [18000, 10**6]}
    cfg = write_study(tmp_path, store201, shared, name="cap", n_trials=1, epochs=1, space=space, capacity=caps)
    out = tmp_path / "cap.json"
    assert main(["study", "--config", str(cfg), "--json", str(out), "--report-dir", str(tmp_path / "rep")]) == 0
    cells = json.loads(out.read_text())["capacity"]["cells"]
    assert [(c["D"], c["budget"]) for c in cells] == [(8, 18000), (8, 10**6), (16, 18000), (16, 10**6)]
    assert [c["study"] for c in cells] == ["cap-D8-N2e04", "cap-D8-N1e06", "cap-D16-N2e04", "cap-D16-N1e06"]
    for c in cells:
        assert c["complete"] >= 1 and c["n_parameters"] <= c["budget"] and c["best_val_loss"] > 0
    tight = optuna.load_study(study_name="cap-D8-N2e04", storage=shared["optuna"])
    # width 16 cannot fit 18,000 parameters: the cell never proposes it
    assert [t.params["width"] for t in tight.trials] == [8] and tight.trials[0].state.name == "COMPLETE"
    table = (tmp_path / "rep" / "cap-capacity.md").read_text()
    assert table.count("\n| 8 |") == 2 and table.count("\n| 16 |") == 2
    impossible = write_study(tmp_path, store201, shared, name="cap0", capacity={"D": [8], "budgets": [1000]})
    assert main(["study", "--config", str(impossible)]) == 1  # no width fits: refused before any trial

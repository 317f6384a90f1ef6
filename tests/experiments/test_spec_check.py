"""Sweep and study YAML checked whole when loaded: one line naming the file, the key and the problem."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from experiments.cli import main
from experiments.study.spec import load_spec as load_study
from experiments.sweep.spec import load_spec as load_sweep

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
QUICK = yaml.safe_load((CONFIGS / "sweeps" / "quick.yaml").read_text())
STUDY = yaml.safe_load((CONFIGS / "studies" / "default.yaml").read_text())


def rename(section: str, old: str, new: str):
    def change(doc):
        part = doc[section] if section else doc
        part[new] = part.pop(old)

    return change


def setter(path: str, value):
    def change(doc):
        *parents, last = path.split(".")
        for key in parents:
            doc = doc[key]
        doc[last] = value

    return change


SWEEP_CASES = [
    (rename("", "seeds", "seed"), "unknown key 'seed' (did you mean 'seeds'?)"),
    (rename("", "recipe", "recipie"), "unknown key 'recipie' (did you mean 'recipe'?)"),
    (rename("dataset", "store", "sotre"), "dataset: unknown key 'sotre' (did you mean 'store'?)"),
    (setter("dataset.n", "many"), "dataset.n: must be an integer >= 0, got 'many'"),
    (setter("dataset.builtin", "yes"), "dataset.builtin: must be true or false, got 'yes'"),
    (setter("axes.N.models", ["2b-tcc"]), "axes.N.models: unknown model '2b-tcc' (did you mean '2b-tc'?)"),
    (setter("axes.N.depth", [2]), "axes.N: unknown key 'depth'"),
    (setter("axes.N.widths", [4, "x"]), "axes.N.widths: must be a non-empty list of integers >= 1, got [4, 'x']"),
    (setter("seeds", 3), "seeds: must be a non-empty list of integers >= 0, got 3"),
    (setter("recipe.epoch", 3), "recipe: unknown key 'epoch' (did you mean 'epochs'?)"),
    (setter("recipe.lr", "fast"), "recipe.lr: 'fast' is not a valid float"),
    (setter("recipe.epochs", [1]), "recipe.epochs: [1] is not a valid int"),
    (setter("recipe.width", 8), "recipe: keys ['width'] are set by the sweep itself"),
]

STUDY_CASES = [
    (rename("", "budget", "budgte"), "unknown key 'budgte' (did you mean 'budget'?)"),
    (setter("model", "3b-cg"), "model: unknown model '3b-cg' (did you mean '3b-tc'?)"),
    (setter("budget", "1e6"), "budget: must be an integer >= 1, got '1e6'"),
    (setter("n_trials", 0), "n_trials: must be an integer >= 1, got 0"),
    (setter("space.width", [16, "x"]), "space.width: 'x' is not a valid int"),
    (setter("space.depth", [1]), "space: unknown knob 'depth'"),
    (setter("space.lr", {"low": 1e-2, "hi": 1}), "space.lr: a range is {low, high}"),
    (setter("sampler.n_startup", 3), "sampler: unknown key 'n_startup' (did you mean 'n_startup_trials'?)"),
    (setter("pruner.n_warmup", 3), "pruner (median): unknown key 'n_warmup' (did you mean 'n_warmup_steps'?)"),
    (setter("recipe.batch_size", "big"), "recipe.batch_size: 'big' is not a valid int"),
    (setter("recipe.warmup", 1), "recipe: unknown key 'warmup' (did you mean 'warmup_epochs'?)"),
    (setter("capacity", {"D": [1], "budget": [3]}), "capacity: unknown key 'budget' (did you mean 'budgets'?)"),
]


def broken(tmp_path: Path, base: dict, change, name: str) -> Path:
    doc = copy.deepcopy(base)
    change(doc)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(("change", "message"), SWEEP_CASES, ids=[m for _, m in SWEEP_CASES])
def test_a_bad_sweep_file_is_refused_in_one_line(tmp_path, change, message):
    path = broken(tmp_path, QUICK, change, "quick.yaml")
    with pytest.raises(ValueError) as err:
        load_sweep(str(path))
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("change", "message"), STUDY_CASES, ids=[m for _, m in STUDY_CASES])
def test_a_bad_study_file_is_refused_in_one_line(tmp_path, change, message):
    path = broken(tmp_path, STUDY, change, "study.yaml")
    with pytest.raises(ValueError) as err:
        load_study(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_presets_pass_and_a_recipe_takes_what_train_takes(tmp_path):
    for name in ("quick", "paper"):
        load_sweep(name)
    for path in (CONFIGS / "studies").glob("*.yaml"):
        load_study(path)
    # YAML reads 1e-3 as a string: training casts it, so the spec accepts it
    load_sweep(str(broken(tmp_path, QUICK, setter("recipe.lr", "1e-3"), "ok.yaml")))
    # --set recipe keys of `optiscale study` are checked with the file's
    with pytest.raises(ValueError, match=r"study.yaml: recipe: unknown key 'epoch_s'"):
        load_study(broken(tmp_path, STUDY, lambda d: None, "study.yaml"), recipe={"epoch_s": "3"})


def test_the_cli_reports_a_bad_spec_in_one_line_before_any_trial(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a command would write stays in the test's directory

    def no_data(doc):
        doc["dataset"] = {"store": str(tmp_path / "no-store"), "builtin": False}
        doc["seed"] = doc.pop("seeds")

    sweep = broken(tmp_path, QUICK, no_data, "quick.yaml")
    assert main(["sweep", "--preset", str(sweep), "--axis", "D"]) == 1
    err = capsys.readouterr().err
    assert err == f"optiscale: error: {sweep}: unknown key 'seed' (did you mean 'seeds'?)\n"
    study = broken(tmp_path, STUDY, setter("storage", f"sqlite:///{tmp_path / 'optuna.db'}"), "study.yaml")
    assert main(["study", "--config", str(study), "--model", "2b-tcc"]) == 1
    assert "study.yaml: model: unknown model '2b-tcc' (did you mean '2b-tc'?)" in capsys.readouterr().err
    assert not (tmp_path / "optuna.db").exists()  # refused before the study was opened

"""The study YAML: data, D, search space, budget, trials, sampler, pruner, storage, names.

name: default                  # Optuna study name (D and budget cells append -D<D>-N<budget>)
data: stores/tb20k
D: 2000                        # training materials (null: the whole train split)
model: 2b-tc
seed: 1                        # training seed of every trial
n_trials: 20                   # trials added by one run (rejected ones included)
epochs: 30
budget: 1000000                # max parameters (null: none); an over-budget trial never trains
space:                         # lists: categorical choices; {low, high}: log-uniform range; scalar: fixed
  width: [16, 32, 64, 128]
  blocks: [1, 2, 3]
  heads: [1, 2, 4]
  lr: {low: 1.0e-4, high: 1.0e-2}
  weight_decay: {low: 1.0e-8, high: 1.0e-3}
sampler: {seed: 0, n_startup_trials: 5}          # TPE
pruner: {kind: median, n_startup_trials: 3, n_warmup_steps: 2}   # or threshold {upper: 10} or none
recipe: {batch_size: 64}       # other train.yaml keys, fixed for every trial
storage: null                  # SQLAlchemy URL (default sqlite:///<cwd>/mlflow/optuna.db)
tracking_uri: null             # MLflow (default that of optiscale train)
experiment: optiscale-studies  # MLflow experiment of the trials and reports
runs: null                     # root of the trials' work dirs (default runs/<experiment>/)
capacity: null                 # {D: [...], budgets: [...]}: one study per (D, budget) cell
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from experiments.sweep import spec_check as sc
from lightning_modules.registry import KNOB_WORDS, get_model

SPACE_KNOBS = ("width", "blocks", "heads", "lr", "weight_decay")
LOG_KNOBS = ("lr", "weight_decay")
DEFAULT_CONFIG = Path(__file__).parents[1] / "configs" / "studies" / "default.yaml"


@dataclass
class StudySpec:
    name: str
    data: str
    D: int | None = None
    model: str = "2b-tc"
    seed: int = 1
    n_trials: int = 20
    epochs: int = 30
    budget: int | None = None
    space: dict = field(default_factory=lambda: {"width": [16, 32, 64], "lr": {"low": 1e-4, "high": 1e-2}})
    sampler: dict = field(default_factory=lambda: {"seed": 0, "n_startup_trials": 5})
    pruner: dict = field(default_factory=lambda: {"kind": "median", "n_startup_trials": 3, "n_warmup_steps": 2})
    recipe: dict = field(default_factory=dict)
    storage: str | None = None
    tracking_uri: str | None = None
    experiment: str = "optiscale-studies"
    runs: str | None = None
    capacity: dict | None = None

    def cells(self) -> list[StudySpec]:
        """One spec per study to run: itself, or one per (D, budget) cell of a capacity preset."""
        if not self.capacity:
            return [self]
        out = []
        for d in self.capacity["D"]:
            for b in self.capacity["budgets"]:
                name = f"{self.name}-D{d}-N{int(b):.0e}".replace("+", "")
                out.append(dataclasses.replace(self, name=name, D=int(d), budget=int(b), capacity=None))
        return out


FIELDS = [f.name for f in dataclasses.fields(StudySpec)]
RESERVED = ("data", "model", "D", "seed", "epochs", "workdir", *SPACE_KNOBS)  # set by the study, not the recipe
SAMPLER_INTS = ("seed", "n_startup_trials", "n_ei_candidates")
PRUNER_KEYS = {
    "median": ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials"),
    "threshold": ("lower", "upper", "n_warmup_steps", "interval_steps"),
    "none": (),
}


def load_spec(path: str | Path | None = None, overrides: dict | None = None, recipe: dict | None = None) -> StudySpec:
    """The YAML at `path` (default configs/studies/default.yaml) with `overrides` (None ignored) and
    extra `recipe` keys (`--set`), checked whole before any trial: see `check`."""
    path = Path(path or DEFAULT_CONFIG)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"study config {path} not found") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a study config is a mapping of keys, got {type(doc).__name__}")
    doc.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if recipe:
        doc["recipe"] = {**sc.mapping(doc.get("recipe"), str(path), "recipe", optional=True), **recipe}
    check(doc, str(path))
    return StudySpec(**doc)


def check(doc: dict, where: str) -> None:
    """ValueError with one line naming `where`, the key and the problem for an unknown key at any
    level, a wrong type, an unknown model, a bad search space or a recipe training would refuse."""
    sc.check_keys(doc, FIELDS, where)
    for key in ("name", "data"):
        if not doc.get(key):
            raise ValueError(f"{where}: the study needs `{key}`")
        sc.text(doc[key], where, key)
    sc.model_name(doc.get("model", "2b-tc"), where, "model")
    for key, minimum, optional in (("D", 1, True), ("seed", 0, False), ("budget", 1, True), ("n_trials", 1, False)):
        if key in doc:
            sc.integer(doc[key], where, key, minimum, optional)
    if "epochs" in doc:
        sc.integer(doc["epochs"], where, "epochs", 1)
    for key in set(doc) & {"storage", "tracking_uri", "runs", "experiment"}:
        sc.text(doc[key], where, key, optional=key != "experiment")
    _check_space(doc, where)
    sampler = sc.mapping(doc.get("sampler"), where, "sampler", optional=True)
    sc.check_keys(sampler, _tpe_keys(), where, "sampler")
    for key in set(SAMPLER_INTS) & set(sampler):
        sc.integer(sampler[key], where, f"sampler.{key}")
    pruner = sc.mapping(doc.get("pruner"), where, "pruner", optional=True)
    kind = pruner.get("kind", "median")
    if kind not in PRUNER_KEYS:
        sc.fail(where, "pruner.kind", f"{kind!r} is not one of {', '.join(PRUNER_KEYS)}")
    sc.check_keys(pruner, ("kind", *PRUNER_KEYS[kind]), where, f"pruner ({kind})")
    for key in set(pruner) - {"kind"}:
        if isinstance(pruner[key], bool) or not isinstance(pruner[key], int | float):
            sc.fail(where, f"pruner.{key}", f"must be a number, got {pruner[key]!r}")
    sc.check_recipe(doc.get("recipe"), where, RESERVED, "study")
    capacity = doc.get("capacity")
    if capacity is not None:
        sc.check_keys(sc.mapping(capacity, where, "capacity"), ("D", "budgets"), where, "capacity")
        sc.require(capacity, ("D", "budgets"), where, "capacity")
        sc.int_list(capacity["D"], where, "capacity.D")
        sc.int_list(capacity["budgets"], where, "capacity.budgets")


def _check_space(doc: dict, where: str) -> None:
    """Knobs: a list of choices, a {low, high} log-uniform range (lr, weight_decay) or a fixed value;
    each value cast as `optiscale train` casts the knob."""
    space = sc.mapping(doc.get("space", {"width": [16]}), where, "space")
    sc.check_keys(space, SPACE_KNOBS, where, "space", what="knob")
    if "width" not in space:
        raise ValueError(f"{where}: space.width is needed")
    for knob, dom in space.items():
        key = f"space.{knob}"
        if isinstance(dom, dict):
            if knob not in LOG_KNOBS or set(dom) != {"low", "high"}:
                sc.fail(where, key, "a range is {low, high}, and only lr and weight_decay take one")
            low, high = (sc.train_value(knob, dom[k], where, f"{key}.{k}") for k in ("low", "high"))
            if not 0 < low < high:
                sc.fail(where, key, f"a range needs 0 < low < high, got {low} and {high}")
            continue
        if isinstance(dom, list) and not dom:
            sc.fail(where, key, "an empty list of choices")
        for value in dom if isinstance(dom, list) else [dom]:
            value = sc.train_value(knob, value, where, key)
            if knob not in LOG_KNOBS and value is not None and value < 1:
                sc.fail(where, key, f"must be integers >= 1, got {dom!r}")
    spec = get_model(doc.get("model", "2b-tc"))
    for knob in ("blocks", "heads"):
        if knob in space and knob not in spec.knobs:
            raise ValueError(f"{where}: space.{knob}: {spec.name} has no {KNOB_WORDS[knob]}: drop space.{knob}")


def _tpe_keys() -> list[str]:
    import inspect

    import optuna

    return list(inspect.signature(optuna.samplers.TPESampler).parameters)


def make_sampler(spec: StudySpec, offset: int = 0):
    """TPE seeded with seed + offset: a rerun passes the number of trials so far, so it does not
    replay the draws of the first run (a restarted sampler with the same seed would)."""
    import optuna

    s = dict(spec.sampler)
    return optuna.samplers.TPESampler(seed=int(s.pop("seed", 0)) + offset, **s)


def make_pruner(spec: StudySpec):
    import optuna

    p = dict(spec.pruner)
    kind = p.pop("kind", "median")
    if kind == "median":
        return optuna.pruners.MedianPruner(**p)
    if kind == "threshold":
        return optuna.pruners.ThresholdPruner(**p)
    return optuna.pruners.NopPruner()


def suggest(trial, space: dict) -> dict:
    """The trial's knobs: categorical choices, log-uniform ranges, fixed scalars."""
    out = {}
    for knob in SPACE_KNOBS:
        if knob not in space:
            continue
        dom = space[knob]
        if isinstance(dom, dict):
            out[knob] = trial.suggest_float(knob, float(dom["low"]), float(dom["high"]), log=True)
        elif isinstance(dom, list):
            out[knob] = trial.suggest_categorical(knob, list(dom))
        else:
            out[knob] = dom
    return out

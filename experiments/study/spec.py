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


FIELDS = {f.name for f in dataclasses.fields(StudySpec)}


def load_spec(path: str | Path | None = None, overrides: dict | None = None) -> StudySpec:
    """The YAML at `path` (default configs/studies/default.yaml) with `overrides` (None ignored)."""
    path = Path(path or DEFAULT_CONFIG)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"study config {path} not found") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a study config is a mapping of keys, got {type(doc).__name__}")
    doc.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(doc) - FIELDS)
    if unknown:
        raise ValueError(f"{path}: unknown study keys {unknown}; known: {sorted(FIELDS)}")
    for key in ("name", "data"):
        if not doc.get(key):
            raise ValueError(f"{path}: the study needs `{key}`")
    spec = StudySpec(**doc)
    _check(spec, path)
    return spec


def _check(spec: StudySpec, path: Path) -> None:
    bad = sorted(set(spec.space) - set(SPACE_KNOBS))
    if bad:
        raise ValueError(f"{path}: unknown search-space knobs {bad}; known: {list(SPACE_KNOBS)}")
    for knob, dom in spec.space.items():
        if isinstance(dom, dict):
            if knob not in LOG_KNOBS or set(dom) != {"low", "high"} or not 0 < float(dom["low"]) < float(dom["high"]):
                raise ValueError(
                    f"{path}: space.{knob}: a range is {{low, high}} with 0 < low < high (lr, weight_decay)"
                )
        elif isinstance(dom, list) and not dom:
            raise ValueError(f"{path}: space.{knob}: an empty list of choices")
    if "width" not in spec.space:
        raise ValueError(f"{path}: space.width is needed")
    if spec.model == "2b-cgc" and "heads" in spec.space:
        raise ValueError(f"{path}: 2b-cgc has no attention heads: drop space.heads")
    clash = sorted(set(spec.recipe) & {"data", "model", "D", "seed", "epochs", "workdir", *SPACE_KNOBS})
    if clash:
        raise ValueError(f"{path}: recipe keys {clash} are set by the study itself")
    for key in ("n_trials", "epochs"):
        if int(getattr(spec, key)) < 1:
            raise ValueError(f"{path}: {key} must be positive")
    kind = spec.pruner.get("kind", "median")
    if kind not in ("median", "threshold", "none"):
        raise ValueError(f"{path}: pruner.kind {kind!r}: median, threshold or none")
    if spec.capacity and (set(spec.capacity) != {"D", "budgets"} or not spec.capacity["D"]):
        raise ValueError(f"{path}: capacity is {{D: [...], budgets: [...]}}")


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

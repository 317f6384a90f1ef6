"""Sweep specifications: a YAML file names the dataset, the recipe and the grid of each axis.

A grid point is (model, width, D, seed); each is one training run. Presets live in
`experiments/configs/sweeps/<name>.yaml`; any other YAML file of the same shape works too.

Transfer sweeps (experiments/sweep/transfer.py) add a `pretrain` dataset (cheap labels of the same
structures, or the surrogate's labels of published structures), an axis `P` trained on it (its `D`
are the pretraining sizes D_F) and an axis `T` on the target dataset: every (model, width, D, seed)
from scratch and fine-tuned from each `P` run of the same model, width and seed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from experiments.sweep import spec_check as sc

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "sweeps"
AXES = ("D", "N", "ND", "P", "T")
TOP_KEYS = ("name", "dataset", "pretrain", "recipe", "seeds", "axes")
DATASET_KEYS = ("store", "builtin", "n", "seed", "grid_points", "fidelity")
FIDELITIES = ("full", "cheap")
GRID_KEYS = ("models", "widths", "D")
RESERVED = ("data", "model", "width", "D", "seed", "workdir", "init_from")  # set per grid point, not by the recipe


@dataclass(frozen=True)
class Point:
    model: str
    width: int
    D: int
    seed: int
    pretrain_D: int = 0  # fine-tuned from the `P` run of D_F = pretrain_D materials; 0: from scratch

    @property
    def id(self) -> str:
        """Stable, human-readable name of the point (the Optuna grid value)."""
        base = f"{self.model}|w{self.width}|D{self.D}|s{self.seed}"
        return f"{base}|F{self.pretrain_D}" if self.pretrain_D else base

    def overrides(self) -> dict:
        return {"model": self.model, "width": self.width, "D": self.D, "seed": self.seed}


@dataclass
class DatasetSpec:
    store: str
    builtin: bool = False  # generate the tight-binding surrogate if the store is missing
    n: int = 0
    seed: int = 0
    grid_points: int = 2001
    fidelity: str = "full"  # of the built-in surrogate's labels


@dataclass
class SweepSpec:
    name: str
    dataset: DatasetSpec
    recipe: dict = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [1])
    axes: dict[str, dict] = field(default_factory=dict)
    source: str = ""
    pretrain: DatasetSpec | None = None

    def dataset_for(self, axis: str) -> DatasetSpec:
        """The pretraining dataset for axis `P`, the sweep's dataset for every other."""
        if axis == "P":
            assert self.pretrain is not None  # check() refuses a `P` axis without it
            return self.pretrain
        return self.dataset

    def points(self, axis: str) -> list[Point]:
        """All grid points of one axis, in a fixed order (model, width, D, seed)."""
        if axis not in self.axes:
            raise ValueError(f"sweep {self.name!r} ({self.source}) has no axis {axis!r}; it has {sorted(self.axes)}")
        grid = self.axes[axis]
        sources = [0] + [int(f) for f in self.axes["P"]["D"]] if axis == "T" else [0]
        return [
            Point(str(m), int(w), int(d), int(s), f)
            for m in grid["models"]
            for w in grid["widths"]
            for d in grid["D"]
            for s in self.seeds
            for f in sources
        ]

    def study_name(self, axis: str, data_hash: str) -> str:
        """Name of the Optuna study that coordinates the workers of one axis.

        It changes whenever the grid, the recipe or the data change, so a changed sweep never
        reuses the bookkeeping of another.
        """
        content = {"points": [p.id for p in self.points(axis)], "recipe": self.recipe, "data": data_hash}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:10]
        return f"sweep-{self.name}-{axis}-{digest}"

    def experiment(self, axis: str) -> str:
        """The MLflow experiment that holds the runs of one axis."""
        return f"{self.name}-{axis}"


def load_spec(name_or_path: str) -> SweepSpec:
    """A preset name (`quick`, `paper`) or the path of a sweep YAML file, checked whole (see `check`)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
            raise ValueError(f"no sweep preset {name_or_path!r}; presets: {', '.join(known)}")
    if not path.exists():
        raise FileNotFoundError(f"no such sweep file: {path}")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a sweep file is a mapping")
    return check(doc, str(path), path.stem)


def check(doc: dict, where: str, default_name: str) -> SweepSpec:
    """The spec of a parsed sweep file; ValueError with one line naming `where`, the key and the problem
    for an unknown key at any level, a wrong type, an unknown model or a recipe training would refuse."""
    sc.check_keys(doc, TOP_KEYS, where)
    sc.require(doc, ("dataset", "axes"), where)
    dataset = _dataset(doc["dataset"], where, "dataset")
    pretrain = _dataset(doc["pretrain"], where, "pretrain") if "pretrain" in doc else None
    axes = sc.mapping(doc["axes"], where, "axes")
    sc.check_keys(axes, AXES, where, "axes", what="axis")
    if not axes:
        sc.fail(where, "axes", f"must name at least one of {', '.join(AXES)}")
    for axis, grid in axes.items():
        grid = sc.mapping(grid, where, f"axes.{axis}")
        sc.check_keys(grid, GRID_KEYS, where, f"axes.{axis}")
        sc.require(grid, GRID_KEYS, where, f"axes.{axis}")
        if not isinstance(grid["models"], list) or not grid["models"]:
            sc.fail(where, f"axes.{axis}.models", f"must be a non-empty list of models, got {grid['models']!r}")
        for model in grid["models"]:
            sc.model_name(model, where, f"axes.{axis}.models")
        sc.int_list(grid["widths"], where, f"axes.{axis}.widths")
        sc.int_list(grid["D"], where, f"axes.{axis}.D")
    if ("P" in axes or "T" in axes) and pretrain is None:
        sc.fail(where, "pretrain", "axes P and T need a `pretrain` dataset (the source of the fine-tuned runs)")
    if "T" in axes:
        if "P" not in axes:
            sc.fail(where, "axes.T", "needs an axis P: the pretraining runs it fine-tunes from")
        for key in ("models", "widths"):
            extra = [v for v in axes["T"][key] if v not in axes["P"][key]]
            if extra:
                sc.fail(where, f"axes.T.{key}", f"{extra} have no pretraining run: add them to axes.P.{key}")
    sc.check_recipe(doc.get("recipe"), where, RESERVED, "sweep")
    seeds = sc.int_list(doc["seeds"], where, "seeds", minimum=0) if "seeds" in doc else [1]
    return SweepSpec(
        name=str(sc.text(doc.get("name", default_name), where, "name")),
        dataset=dataset,
        recipe=dict(doc.get("recipe") or {}),
        seeds=seeds,
        axes=axes,
        source=where,
        pretrain=pretrain,
    )


def _dataset(value, where: str, key: str) -> DatasetSpec:
    ds = sc.mapping(value, where, key)
    sc.check_keys(ds, DATASET_KEYS, where, key)
    sc.require(ds, ("store",), where, key)
    dataset = DatasetSpec(store=str(sc.text(ds["store"], where, f"{key}.store")))
    if "builtin" in ds:
        dataset.builtin = sc.flag(ds["builtin"], where, f"{key}.builtin")
    for name, minimum in (("n", 0), ("seed", None), ("grid_points", 2)):
        if name in ds:
            setattr(dataset, name, sc.integer(ds[name], where, f"{key}.{name}", minimum))
    if "fidelity" in ds:
        if ds["fidelity"] not in FIDELITIES:
            sc.fail(where, f"{key}.fidelity", f"must be one of {', '.join(FIDELITIES)}, got {ds['fidelity']!r}")
        dataset.fidelity = ds["fidelity"]
    return dataset

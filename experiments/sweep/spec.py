"""Sweep specifications: a YAML file names the dataset, the recipe and the grid of each axis.

A grid point is (model, width, D, seed); each is one training run. Presets live in
`experiments/configs/sweeps/<name>.yaml`; any other YAML file of the same shape works too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "sweeps"
AXES = ("D", "N", "ND")


@dataclass(frozen=True)
class Point:
    model: str
    width: int
    D: int
    seed: int

    @property
    def id(self) -> str:
        """Stable, human-readable name of the point (the Optuna grid value)."""
        return f"{self.model}|w{self.width}|D{self.D}|s{self.seed}"

    def overrides(self) -> dict:
        return {"model": self.model, "width": self.width, "D": self.D, "seed": self.seed}


@dataclass
class DatasetSpec:
    store: str
    builtin: bool = False  # generate the tight-binding surrogate if the store is missing
    n: int = 0
    seed: int = 0
    grid_points: int = 2001


@dataclass
class SweepSpec:
    name: str
    dataset: DatasetSpec
    recipe: dict = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [1])
    axes: dict[str, dict] = field(default_factory=dict)
    source: str = ""

    def points(self, axis: str) -> list[Point]:
        """All grid points of one axis, in a fixed order (model, width, D, seed)."""
        if axis not in self.axes:
            raise ValueError(f"sweep {self.name!r} ({self.source}) has no axis {axis!r}; it has {sorted(self.axes)}")
        grid = self.axes[axis]
        return [
            Point(str(m), int(w), int(d), int(s))
            for m in grid["models"]
            for w in grid["widths"]
            for d in grid["D"]
            for s in self.seeds
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


def _require(doc: dict, key: str, where: str):
    if key not in doc:
        raise ValueError(f"{where}: missing key {key!r}")
    return doc[key]


def load_spec(name_or_path: str) -> SweepSpec:
    """A preset name (`quick`, `paper`) or the path of a sweep YAML file."""
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
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a sweep file is a mapping")
    where = str(path)
    ds = _require(doc, "dataset", where)
    dataset = DatasetSpec(**{k: ds[k] for k in ("store", "builtin", "n", "seed", "grid_points") if k in ds})
    axes = _require(doc, "axes", where)
    for axis, grid in axes.items():
        if axis not in AXES:
            raise ValueError(f"{where}: unknown axis {axis!r} (axes are {', '.join(AXES)})")
        for key in ("models", "widths", "D"):
            values = _require(grid, key, f"{where}: axes.{axis}")
            if not isinstance(values, list) or not values:
                raise ValueError(f"{where}: axes.{axis}.{key} must be a non-empty list")
    seeds = [int(s) for s in doc.get("seeds", [1])]
    return SweepSpec(
        name=str(doc.get("name", path.stem)),
        dataset=dataset,
        recipe=dict(doc.get("recipe") or {}),
        seeds=seeds,
        axes=axes,
        source=where,
    )

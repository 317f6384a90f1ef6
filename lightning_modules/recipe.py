"""The part of the training recipe the LightningModule reads, as typed fields.

`experiments.training.config.resolve` gives a flat dict of the whole resolved configuration; the
module keeps that dict as its hyperparameters (so checkpoints stay plain and loadable) and reads
this typed view of it. Defined here, below `experiments`, since imports point downward.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class ModuleRecipe:
    """Model, grid, loss weights and optimiser of one run (lr: the effective lr of this width)."""

    model: str
    width: int
    grid_points: int
    grid_start: float
    grid_stop: float
    blocks: int | None = None
    heads: int | None = None
    lr: float
    weight_decay: float
    warmup_epochs: float
    warmup_start_factor: float
    gradient_clip: float = 0.0
    w_spectral: float = 1.0
    w_drude: float = 1.0
    compile: bool = False

    @classmethod
    def from_config(cls, config: dict) -> ModuleRecipe:
        """The typed fields of a resolved configuration (other keys are ignored; None = the default)."""
        casts = {"int": int, "float": float, "str": str, "bool": bool}
        values: dict = {}
        for f in dataclasses.fields(cls):
            value = config.get(f.name)
            if value is None:
                if f.default is dataclasses.MISSING:
                    raise ValueError(f"the configuration lacks {f.name!r}")
                value = f.default
            values[f.name] = None if value is None else casts[f.type.split(" |")[0]](value)
        return cls(**values)

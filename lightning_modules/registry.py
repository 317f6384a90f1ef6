"""The one list of models: each is registered once here, and everything else reads this table.

CLI choices and help, the recipe's per-model lr and weight decay, the study's knob checks, the
benchmarks' default lists, the datamodule's triplet need and `compile: auto` all come from
`MODELS`. Adding a model is one new module (the model) plus one `ModelSpec` entry below
(docs/contributing.md). This module imports no torch, so `--help` stays fast; the builder is
named as "module:function" and imported only when a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

KNOB_WORDS = {"heads": "attention heads", "blocks": "blocks"}


@dataclass(frozen=True)
class ModelSpec:
    """One model. `lr` and `weight_decay` hold at the reference width (`lr_reference_width`)."""

    name: str
    builder: str  # "module:function", called as function(width, points, **knobs)
    lr: float
    weight_decay: float
    scale_lr_with_width: bool  # lr(h) = lr(ref) * (N(h) / N(ref))^-1 (docs/reference.md)
    needs_triplets: bool  # the batches carry bond-angle triplets (3-body models)
    knobs: tuple[str, ...] = ()  # optional capacity knobs the builder takes (blocks, heads)
    compile_on_gpu: bool = False  # `compile: auto` compiles it on a GPU (measured to pay)
    summary: str = ""  # one line for help texts and docs

    def build(self, width: int, points: int = 2001, **knobs):
        for k, v in knobs.items():
            if v is not None and k not in self.knobs:
                raise ValueError(f"{self.name} has no {KNOB_WORDS.get(k, k)}: leave {k} unset")
        module, function = self.builder.split(":")
        given = {k: v for k, v in knobs.items() if v is not None}
        return getattr(import_module(module), function)(width, points, **given)


# `compile_on_gpu`: 2B-TC at width 256 ran 2.0x faster compiled on an H200 (docs/gpu.md); 2B-CGC
# and 3B-TC compile correctly (tests) but their GPU speed-up is unmeasured, so they stay eager.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "2b-cgc", "lightning_modules.optimetal:build_2b_cgc", 1.0e-3, 8.0e-6, False, False,
            knobs=("blocks",), summary="OptiMetal2B with CGConv message passing",
        ),
        ModelSpec(
            "2b-tc", "lightning_modules.optimetal:build_2b_tc", 6.0e-4, 1.0e-6, True, False,
            knobs=("blocks", "heads"), compile_on_gpu=True, summary="OptiMetal2B with TransformerConv",
        ),
        ModelSpec(
            "3b-tc", "lightning_modules.optimetal:build_3b_tc", 4.0e-4, 6.0e-4, True, True,
            knobs=("blocks", "heads"), summary="OptiMetal3B: TransformerConv plus triplet layers",
        ),
    )
}  # fmt: skip


def model_names() -> tuple[str, ...]:
    return tuple(MODELS)


def model_help() -> str:
    """'2b-cgc, 2b-tc or 3b-tc' for help strings."""
    names = model_names()
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


def get_model(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def recipe_defaults(name: str) -> dict:
    """The recipe keys a model supplies (lr, weight decay, lr scaling with width)."""
    s = get_model(name)
    return {"lr": s.lr, "weight_decay": s.weight_decay, "scale_lr_with_width": s.scale_lr_with_width}

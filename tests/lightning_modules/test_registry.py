"""The model registry is the one list of models: every entry builds and trains a step, and no
other list of model names (CLI choices, study spec, benchmarks, recipe) can drift from it."""

from __future__ import annotations

import argparse

import lightning as L
import pytest
import torch

from lightning_modules.registry import MODELS, model_help, model_names


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_builds_and_trains_a_step(name, surrogate_store, tmp_path):
    from datamodules.datamodule import GraphDataModule
    from experiments.training.config import load_config, resolve
    from lightning_modules.module import SpectraModule

    spec = MODELS[name]
    cfg = load_config({"data": str(surrogate_store), "model": name, "width": 16, "seed": 0, "workdir": str(tmp_path)})
    assert (cfg.lr, cfg.weight_decay) == (spec.lr, spec.weight_decay)  # the recipe reads the registry
    L.seed_everything(0, verbose=False)
    module = SpectraModule(resolve(cfg))
    assert module.needs_triplets == spec.needs_triplets == module.model.needs_triplets
    before = [p.detach().clone() for p in module.parameters()]
    dm = GraphDataModule(surrogate_store, batch_size=4, triplets=module.needs_triplets)
    trainer = L.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 1
    changed = [not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True)]
    assert any(changed), "one optimiser step left every parameter unchanged"


def test_knobs_a_model_does_not_take_are_refused():
    from lightning_modules.optimetal import build_model

    for spec in MODELS.values():
        for knob in {"blocks", "heads"} - set(spec.knobs):
            with pytest.raises(ValueError, match=f"{spec.name} has no"):
                build_model(spec.name, 16, 11, **{knob: 2})


def _choices(parser: argparse.ArgumentParser, path: list[str], dest: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and path:
            return _choices(action.choices[path[0]], path[1:], dest)
        if not path and action.dest == dest:
            return action
    raise AssertionError(f"no option {dest} under {path}")


def test_no_copy_of_the_model_list_exists():
    from experiments.bench import gpu
    from experiments.cli import build_parser
    from experiments.study.spec import StudySpec
    from experiments.sweep import spec_check
    from experiments.training.config import COMPILE_BY_DEFAULT, read_defaults
    from lightning_modules.optimetal import MODEL_NAMES

    names = model_names()
    parser = build_parser()
    # train and study check the name themselves (one line, with a suggestion): their help names the registry
    assert _choices(parser, ["train"], "model").help == _choices(parser, ["study"], "model").help == model_help()
    assert tuple(_choices(parser, ["model", "summary"], "model").choices) == names
    assert _choices(parser, ["bench", "train"], "models").default == ",".join(names)
    assert MODEL_NAMES == names and gpu.MODELS == names and tuple(spec_check.models()) == names
    assert StudySpec.model in names
    assert "models" not in read_defaults()  # lr and weight decay live in the registry, not the recipe
    assert COMPILE_BY_DEFAULT == tuple(n for n in names if MODELS[n].compile_on_gpu)

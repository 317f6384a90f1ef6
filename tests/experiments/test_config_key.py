"""The run key is derived from the TrainConfig dataclass: every field enters it unless it is marked
execution-only, and a field marked `via` enters through the resolved value it determines."""

from __future__ import annotations

import dataclasses

from experiments.training.config import (
    EXECUTION_FIELDS,
    KEY_FIELDS,
    OPTIONAL_KEY_FIELDS,
    TrainConfig,
    load_config,
    resolve,
    run_key,
)

FIELDS = dataclasses.fields(TrainConfig)


def _resolved() -> dict:
    out = {f.name: f"value-{f.name}" for f in FIELDS} | {"blocks": None, "heads": None}
    return out | {k: f"value-{k}" for k in KEY_FIELDS if k not in out}


def test_every_field_changes_the_key_unless_marked_execution_only():
    base = _resolved()
    for f in FIELDS:
        role = f.metadata.get("key", "key")
        target = f.metadata.get("resolved", f.name)  # a `via` field acts through its resolved value
        changed = run_key(base | {target: "another"}) != run_key(base)
        if role == "execution":
            assert not changed, f"execution-only field {f.name} changed the run key"
        else:
            assert changed, f"{f.name} changes the result but not the run key: add it to the key or mark it execution()"


def test_the_reference_recipe_keeps_its_key_fields():
    # the set of the hand-written list before the key was derived: run keys of existing recipes stay the same
    before = {"model", "width", "D", "seed", "data_hash", "grid_points", "grid_start", "grid_stop", "epochs"}
    before |= {"batch_size", "warmup_epochs", "warmup_start_factor", "gradient_clip", "precision", "w_spectral"}
    before |= {"w_drude", "lr", "weight_decay"}
    assert set(KEY_FIELDS) == before
    assert set(OPTIONAL_KEY_FIELDS) == {"blocks", "heads", "max_steps", "early_stop_patience"}
    assert set(EXECUTION_FIELDS) == {
        "accelerator",
        "devices",
        "strategy",
        "num_workers",
        "compile",
        "threads",
        "workdir",
    }


def test_fields_entering_through_a_resolved_value_change_it(surrogate_store, tmp_path):
    def resolved(**kw):
        given = {"data": str(surrogate_store), "model": "2b-tc", "width": 16, "seed": 0, "workdir": str(tmp_path)}
        return resolve(load_config(given | kw))

    ref = resolved()
    assert resolved(lr_reference_width=64)["lr"] != ref["lr"]
    assert resolved(scale_lr_with_width=False)["lr"] != ref["lr"]
    assert resolved(lr_reference_width=64)["run_key"] != ref["run_key"]


def test_the_module_reads_every_typed_field_from_the_resolved_configuration(surrogate_store, tmp_path):
    import pytest

    from lightning_modules.recipe import ModuleRecipe

    given = {"data": str(surrogate_store), "model": "3b-tc", "width": 16, "seed": 0, "workdir": str(tmp_path)}
    resolved = resolve(load_config(given))
    missing = [f.name for f in dataclasses.fields(ModuleRecipe) if f.name not in resolved]
    assert not missing, f"ModuleRecipe fields the resolved configuration lacks: {missing}"
    r = ModuleRecipe.from_config(resolved)
    assert (r.model, r.width, r.lr, r.grid_points) == ("3b-tc", 16, resolved["lr"], resolved["grid_points"])
    with pytest.raises(ValueError, match="lacks 'weight_decay'"):
        ModuleRecipe.from_config({k: v for k, v in resolved.items() if k != "weight_decay"})

"""Training configuration: defaults from `configs/train.yaml`, overrides, resolution and the run key.

`load_config(overrides)` gives a `TrainConfig` (the YAML is the one source of defaults; the model
registry supplies lr and weight decay). `resolve(cfg)` adds what follows from the data and the
model — effective learning rate, parameter counts, data hash, grid, precision — and the `run_key`:
the first 16 hex digits of the sha256 of the canonical JSON of `KEY_FIELDS`, derived from the
dataclass: every field that determines the result (grid point, data, recipe), none marked
`execution()` (devices, strategy, threads, paths).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from datamodules.grid import REF_POINTS
from lightning_modules.registry import MODELS, recipe_defaults

from .config_checks import PRECISIONS, check_config, check_store

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train.yaml"
KEY_VERSION = 1


def execution(default=dataclasses.MISSING):
    """A field that changes how a run executes, not its result: outside the run key."""
    return dataclasses.field(default=default, metadata={"key": "execution"})


def via(resolved_key: str, default=dataclasses.MISSING):
    """A field that enters the run key through a resolved value (the data through its content hash,
    the lr rule through the effective lr), not as itself."""
    return dataclasses.field(default=default, metadata={"key": "via", "resolved": resolved_key})


def finetune_key(default=None):
    """Enters the run key only for a fine-tune (`init_from` set): scratch keys stay as they were."""
    return dataclasses.field(default=default, metadata={"key": "finetune"})


def optional_key(default=None):
    """Enters the run key only when set: the reference architecture keeps the keys it always had."""
    return dataclasses.field(default=default, metadata={"key": "optional"})


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One grid point and its recipe. `lr` is the learning rate at `lr_reference_width`.

    Every field enters the run key unless marked `execution()`, `via(...)` or `optional_key()`;
    a new field is one line here (and its default in train.yaml), and the key follows
    (tests/experiments/test_config_key.py fails for a field that changes nothing in the key)."""

    data: str = via("data_hash")
    model: str
    width: int
    seed: int
    D: int | None
    epochs: int
    max_steps: int | None = optional_key()  # fixed-steps recipe: this many optimiser steps at every D (epochs follow)
    early_stop_patience: int | None = (
        optional_key()
    )  # train to convergence: stop after this many epochs without a new best
    batch_size: int
    warmup_epochs: float
    warmup_start_factor: float
    gradient_clip: float
    precision: str
    w_spectral: float
    w_drude: float
    lr_reference_width: int = via("lr")
    blocks: int | None = optional_key()  # architecture knobs of build_model; None = the reference
    heads: int | None = optional_key()
    init_from: str | None = finetune_key()  # fine-tune from a finished run's key or a checkpoint (finetune.py)
    freeze: str = finetune_key("none")  # none | encoder | all_but_heads
    finetune_lr: float | None = via("lr")  # the lr of a fine-tune, as given (no width rule)
    lr: float
    weight_decay: float
    scale_lr_with_width: bool = via("lr")
    accelerator: str = execution()
    devices: int = execution()  # the global batch is split over the devices: same result
    strategy: str = execution()
    num_workers: str = execution()  # "auto" (0 on CPU, up to 4 on a GPU) or a count of DataLoader workers
    compile: str = execution()  # "auto" (on CUDA), "true" or "false": torch.compile(dynamic=True) of the model
    threads: str = execution()  # "auto" (torch's current count) or the torch CPU threads of the run
    workdir: str | None = execution()


def _role(f: dataclasses.Field) -> str:
    return f.metadata.get("key", "key")


# what `resolve` adds from the store and enters the key (the data, through its content and grid)
RESOLVED_KEY_FIELDS = ("data_hash", "grid_points", "grid_start", "grid_stop")
KEY_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if _role(f) == "key") + RESOLVED_KEY_FIELDS
OPTIONAL_KEY_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if _role(f) == "optional")
FINETUNE_KEY_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if _role(f) == "finetune")
EXECUTION_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if _role(f) == "execution")


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
REQUIRED = ("data", "model", "width", "seed")


def read_defaults(path: str | Path | None = None) -> dict:
    return yaml.safe_load(Path(path or DEFAULT_CONFIG).read_text())


def load_config(overrides: dict, path: str | Path | None = None) -> TrainConfig:
    """Defaults of `path` (the packaged train.yaml) with `overrides` (None values are ignored);
    ValueError naming the key for a value out of range (`config_checks`)."""
    doc = read_defaults(path)
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown configuration keys {unknown}; known: {sorted(FIELDS)}")
    missing = [k for k in REQUIRED if k not in given]
    if missing:
        raise ValueError(f"the configuration needs {missing}")
    if given["model"] not in MODELS:
        raise ValueError(f"unknown model {given['model']!r}; known: {sorted(MODELS)}")
    values = {
        "D": None,
        "max_steps": None,
        "early_stop_patience": None,
        "blocks": None,
        "heads": None,
        "init_from": None,
        "freeze": "none",
        "finetune_lr": None,
        **doc["recipe"],
        **recipe_defaults(given["model"]),
        **doc.get("models", {}).get(given["model"], {}),  # optional per-recipe override
        **doc["execution"],
        **given,
    }
    extra = sorted(set(values) - set(FIELDS))
    if extra:
        raise ValueError(f"{path or DEFAULT_CONFIG}: unknown keys {extra}")
    cfg = TrainConfig(**{k: _coerce(k, v) for k, v in values.items()})
    check_config(cfg)
    return cfg


def _coerce(name: str, value):
    """Cast CLI strings and YAML numbers to the field's type."""
    if value is None or (FIELDS[name].type.endswith("| None") and str(value).lower() in ("none", "null")):
        return None
    kind = FIELDS[name].type.split(" |")[0]
    if kind == "bool":
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{name}: {value!r} is not a boolean")
            return value.lower() in ("true", "1")
        return bool(value)
    try:
        return {"int": int, "float": float, "str": str}[kind](value)
    except (ValueError, TypeError):  # TypeError: a list or mapping where a number belongs
        raise ValueError(f"{name}: {value!r} is not a valid {kind}") from None


def parse_assignments(items: list[str]) -> dict:
    """`KEY=VALUE` strings (CLI --set) to a dict of raw strings."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def on_gpu(accelerator: str) -> bool:
    """Whether a run with this accelerator setting trains on a CUDA device."""
    if accelerator in ("gpu", "cuda"):
        return True
    if accelerator != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def resolve_precision(precision: str, accelerator: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r} is not one of {list(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16-mixed" if on_gpu(accelerator) else "32-true"


def resolve_num_workers(value: str, accelerator: str) -> int:
    """DataLoader workers: on a GPU, collate (triplets included) runs beside the step, not before it;
    on CPU the step's threads would compete with the workers (0 was faster on 2 cores)."""
    if str(value) != "auto":
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"num_workers: {value!r} is not 'auto' or a count") from None
        if n < 0:
            raise ValueError(f"num_workers: {n} is negative")
        return n
    if not on_gpu(accelerator):
        return 0
    import torch

    return max(1, min(4, torch.get_num_threads()))  # the sweep gives each packed point its share of threads


def resolve_threads(value: str) -> int:
    """torch CPU threads of a run: 'auto' keeps the process's current count (a sweep sets each
    packed point's share before training), recorded as the number it is."""
    if str(value) != "auto":
        return int(value)
    import torch

    return int(torch.get_num_threads())


# `compile: auto` compiles only where it was measured to pay: the registry's `compile_on_gpu`.
COMPILE_BY_DEFAULT = tuple(s.name for s in MODELS.values() if s.compile_on_gpu)


def resolve_compile(value: str, accelerator: str, model: str) -> bool:
    v = str(value).lower()
    if v not in ("auto", "true", "false"):
        raise ValueError(f"compile: {value!r} is not auto, true or false")
    if v == "auto":
        return model in COMPILE_BY_DEFAULT and on_gpu(accelerator)
    return v == "true"


_N_CACHE: dict[tuple, int] = {}


def n_parameters(model: str, width: int, points: int, blocks: int | None = None, heads: int | None = None) -> int:
    """Trainable parameters of `build_model(model, width, points, blocks, heads)` (built once per process)."""
    key = (model, width, points, blocks, heads)
    if key not in _N_CACHE:
        import torch

        from lightning_modules.optimetal import build_model, count_parameters

        with torch.device("meta"):  # shapes only: no memory, no initialisation
            _N_CACHE[key] = int(count_parameters(build_model(model, width, points, blocks, heads)))
    return _N_CACHE[key]


def resolve(cfg: TrainConfig) -> dict:
    """The full resolved configuration (a flat dict of plain values) including `run_key`; ValueError
    (naming the key) for a configuration the store cannot train. Creates nothing."""
    from datamodules.store import GraphStore

    check_config(cfg)  # a TrainConfig built by hand has not been through load_config
    store = GraphStore(cfg.data)
    grid = store.manifest["grid"]
    d = check_store(store, cfg.D)
    arch = (cfg.blocks, cfg.heads)
    n = n_parameters(cfg.model, cfg.width, store.points, *arch)
    # The width rule of the reference counts parameters on its own 2001-point grid: the lr of a
    # width does not depend on the grid a store was resampled to.
    n_lr = n_parameters(cfg.model, cfg.width, REF_POINTS, *arch)
    n_ref = n_parameters(cfg.model, cfg.lr_reference_width, REF_POINTS, *arch) if cfg.scale_lr_with_width else n_lr
    out = dataclasses.asdict(cfg)
    out.update(
        data=str(Path(cfg.data).resolve()),
        D=d,
        lr_base=cfg.lr,
        lr=cfg.lr * n_ref / n_lr if cfg.scale_lr_with_width else cfg.lr,
        n_parameters=n,
        n_parameters_reference=n_ref,
        data_hash=store.manifest["content_hash"],
        data_hash_version=int(store.manifest.get("content_hash_version", 1)),  # 1: hash of the shards' bytes
        grid_points=int(grid["points"]),
        grid_start=float(grid["start"]),
        grid_stop=float(grid["stop"]),
        cutoff=float(store.manifest["cutoff"]),
        threebody_cutoff=float(store.manifest["threebody_cutoff"]),
        precision=resolve_precision(cfg.precision, cfg.accelerator),
        num_workers=resolve_num_workers(cfg.num_workers, cfg.accelerator),
        compile=resolve_compile(cfg.compile, cfg.accelerator, cfg.model),
        threads=resolve_threads(cfg.threads),
    )
    if cfg.init_from is not None:
        from .finetune import source_identity

        # the identity, not the path, is recorded and keyed: a pretrained point never collides with
        # a scratch point, and the same checkpoint copied elsewhere is the same point
        out["init_from"] = source_identity(cfg.init_from)
        out["init_from_path"] = cfg.init_from
        if cfg.finetune_lr is not None:
            out["lr"] = cfg.finetune_lr
    if cfg.max_steps is not None:
        out["epochs"] = epochs_for_steps(cfg.max_steps, d, cfg.batch_size, cfg.devices)
    out["run_key"] = run_key(out)
    return out


def epochs_for_steps(max_steps: int, d: int, batch_size: int, devices: int) -> int:
    """Epochs that hold `max_steps` optimiser steps at D = d (the last one may be cut short): the
    steps per epoch are those of the training sampler (datamodules.datamodule.ShardSampler)."""
    import math

    from datamodules.datamodule import ShardSampler

    per_device = batch_size // devices
    steps = math.ceil(len(ShardSampler(d, 0, devices, train=True, batch_size=per_device)) / per_device)
    return math.ceil(max_steps / steps)


def run_key(resolved: dict) -> str:
    """Deterministic id of a grid point + data + recipe (see the module docstring)."""
    payload = {"version": KEY_VERSION, **{k: resolved[k] for k in KEY_FIELDS}}
    payload.update({k: resolved[k] for k in OPTIONAL_KEY_FIELDS if resolved.get(k) is not None})
    if resolved.get("init_from") is not None:  # only fine-tunes add to the key: scratch keys are unchanged
        payload.update({k: resolved[k] for k in FINETUNE_KEY_FIELDS})
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def dump(resolved: dict) -> str:
    """The resolved configuration as YAML (the `config.yaml` artifact)."""
    return yaml.safe_dump(resolved, sort_keys=True)

"""Training configuration: defaults from `configs/train.yaml`, overrides, resolution and the run key.

`load_config(overrides)` gives a `TrainConfig` (the YAML is the one source of defaults; the
model's row of `models:` supplies lr and weight decay). `resolve(cfg)` adds what follows from the
data and the model — effective learning rate, parameter counts, data hash, grid, precision — and
the `run_key`: the first 16 hex digits of the sha256 of the canonical JSON of `KEY_FIELDS`, i.e.
everything that determines the result (grid point, data, recipe), nothing about how it executes
(devices, strategy, threads, paths, tracking store).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from datamodules.grid import REF_POINTS

from .config_checks import PRECISIONS, check_config, check_store

DEFAULT_CONFIG = Path(__file__).with_name("configs") / "train.yaml"
KEY_VERSION = 1
KEY_FIELDS = (
    "model",
    "width",
    "D",
    "seed",
    "data_hash",
    "grid_points",
    "grid_start",
    "grid_stop",
    "epochs",
    "batch_size",
    "warmup_epochs",
    "warmup_start_factor",
    "gradient_clip",
    "precision",
    "w_spectral",
    "w_drude",
    "lr",
    "weight_decay",
)
# enter the key only when set: the reference architecture and recipe keep the keys they always had
OPTIONAL_KEY_FIELDS = ("blocks", "heads", "max_steps")


@dataclass(frozen=True)
class TrainConfig:
    """One grid point and its recipe. `lr` is the learning rate at `lr_reference_width`."""

    data: str
    model: str
    width: int
    seed: int
    D: int | None
    epochs: int
    max_steps: int | None  # fixed-steps recipe: this many optimiser steps at every D (epochs follow)
    batch_size: int
    warmup_epochs: float
    warmup_start_factor: float
    gradient_clip: float
    precision: str
    w_spectral: float
    w_drude: float
    lr_reference_width: int
    blocks: int | None  # architecture knobs of build_model; None = the reference architecture
    heads: int | None
    lr: float
    weight_decay: float
    scale_lr_with_width: bool
    accelerator: str
    devices: int
    strategy: str
    num_workers: str  # "auto" (0 on CPU, up to 4 on a GPU) or a count of DataLoader workers
    compile: str  # "auto" (on CUDA), "true" or "false": torch.compile(dynamic=True) of the model
    threads: str  # "auto" (torch's current count) or the torch CPU threads of the run
    workdir: str | None


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
    models = doc["models"]
    if given["model"] not in models:
        raise ValueError(f"unknown model {given['model']!r}; known: {sorted(models)}")
    values = {
        "D": None,
        "max_steps": None,
        "blocks": None,
        "heads": None,
        **doc["recipe"],
        **models[given["model"]],
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


# `compile: auto` compiles only where it was measured to pay: 2B-TC at width 256 ran 2.0x faster
# compiled on an H200 (docs/gpu.md); 2B-CGC and 3B-TC compile correctly (tests) but their GPU
# speed-up is unmeasured, so they stay eager unless asked.
COMPILE_BY_DEFAULT = ("2b-tc",)


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
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def dump(resolved: dict) -> str:
    """The resolved configuration as YAML (the `config.yaml` artifact)."""
    return yaml.safe_dump(resolved, sort_keys=True)

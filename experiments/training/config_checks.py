"""Range checks of a training configuration, run before anything is created (work dir, MLflow run).

Every problem is a ValueError of one line that names the key: `key: value problem`. Type errors are
caught earlier, by `config._coerce`; checks that need the store (D against the train split, the
sizes of the splits) are in `check_store`.
"""

from __future__ import annotations

import math

PRECISIONS = ("auto", "32-true", "bf16-mixed")  # no loss scaler: see SpectraModule.configure_gradient_clipping
SEED_MAX = 2**32 - 1  # Lightning's seed_everything and numpy's generators take 0 .. 2**32 - 1
FREEZE = ("none", "encoder", "all_but_heads")  # see experiments/training/finetune.py
MIN_BATCH = 2  # graphs per rank and step: the spectral head's BatchNorm cannot train on one graph


def _fail(key: str, value, problem: str) -> None:
    raise ValueError(f"{key}: {value!r} {problem}")


def _at_least(cfg, key: str, low: int) -> None:
    value = getattr(cfg, key)
    if value is not None and value < low:
        _fail(key, value, f"is below {low}")


def _real(cfg, key: str, positive: bool = False) -> None:
    value = getattr(cfg, key)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        _fail(key, value, "is not a positive number" if positive else "is not a finite number >= 0")


def check_config(cfg) -> None:
    """Ranges of the keys of a TrainConfig that the store does not decide."""
    for key in ("width", "epochs", "devices", "lr_reference_width", "blocks", "heads"):
        _at_least(cfg, key, 1)
    _at_least(cfg, "D", 2)
    _at_least(cfg, "max_steps", 1)
    _at_least(cfg, "early_stop_patience", 1)
    if not 0 <= cfg.seed <= SEED_MAX:
        _fail("seed", cfg.seed, f"is outside 0..{SEED_MAX}")
    for key in ("warmup_epochs", "gradient_clip", "w_spectral", "w_drude", "weight_decay"):
        _real(cfg, key)
    _real(cfg, "lr", positive=True)
    if cfg.w_spectral == 0 and cfg.w_drude == 0:
        _fail("w_drude", cfg.w_drude, "and w_spectral are both 0: the loss would be 0")
    if not (math.isfinite(cfg.warmup_start_factor) and 0 < cfg.warmup_start_factor <= 1):
        _fail("warmup_start_factor", cfg.warmup_start_factor, "is outside (0, 1]")
    if cfg.precision not in PRECISIONS:
        _fail("precision", cfg.precision, f"is not one of {list(PRECISIONS)}")
    if cfg.batch_size % cfg.devices:
        _fail("batch_size", cfg.batch_size, f"is not divisible by devices={cfg.devices}")
    if cfg.batch_size // cfg.devices < MIN_BATCH:
        _fail("batch_size", cfg.batch_size, f"gives fewer than {MIN_BATCH} graphs per device and step (BatchNorm)")
    if cfg.freeze not in FREEZE:
        _fail("freeze", cfg.freeze, f"is not one of {list(FREEZE)}")
    if cfg.finetune_lr is not None and not (math.isfinite(cfg.finetune_lr) and cfg.finetune_lr > 0):
        _fail("finetune_lr", cfg.finetune_lr, "is not a positive number")
    if cfg.init_from is None and (cfg.freeze != "none" or cfg.finetune_lr is not None):
        _fail(
            "freeze" if cfg.freeze != "none" else "finetune_lr",
            cfg.freeze if cfg.freeze != "none" else cfg.finetune_lr,
            "needs init_from (a fine-tune)",
        )
    if str(cfg.threads) != "auto" and not (str(cfg.threads).isdigit() and int(cfg.threads) >= 1):
        _fail("threads", cfg.threads, "is not 'auto' or a count >= 1")


def check_store(store, d: int | None) -> int:
    """The number of training materials of subset `d` of `store`; ValueError if a split cannot train."""
    train = int(store.subset(None).size)
    if d is not None and d > train:
        _fail("D", d, f"exceeds the {train} materials of the train split of {store.path}")
    n = train if d is None else d
    if n < 2:
        _fail("data", str(store.path), f"has {n} training material(s); training needs at least 2 (BatchNorm)")
    for split in ("val", "test"):
        if store.indices(split).size == 0:
            _fail("data", str(store.path), f"has no {split} materials")
    return n

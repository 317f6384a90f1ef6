"""Checks shared by the sweep and study YAML specs, run when a spec is loaded, before any trial.

Every check raises ValueError with one line naming the file, the key and the problem:
`quick.yaml: unknown key 'seed' (did you mean 'seeds'?)`, `paper.yaml: axes.N.widths: must be a
non-empty list of integers >= 1, got [16, 'x']`. Recipe values go through the casting rules of
`optiscale train` (`experiments.training.config._coerce`), so a value the spec accepts is one training takes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import NoReturn

from experiments.training.config import FIELDS, _coerce
from lightning_modules.registry import model_names


def fail(where: str, key: str, problem: str) -> NoReturn:
    raise ValueError(f"{where}: {key}: {problem}")


def suggestion(name, known: Iterable) -> str:
    """` (did you mean 'x'?)` for the closest known name, else ` (known: a, b, c)`."""
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(name), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"


def check_keys(doc: dict, known: Iterable, where: str, section: str = "", what: str = "key") -> None:
    """Refuse any key of `doc` that is not in `known` (`section` is the dotted path of `doc`)."""
    known = list(known)
    for key in doc:
        if key not in known:
            at = f"{section}: " if section else ""
            raise ValueError(f"{where}: {at}unknown {what} {key!r}{suggestion(key, known)}")


def require(doc: dict, keys: Iterable, where: str, section: str = "") -> None:
    for key in keys:
        if key not in doc:
            at = f"{section}: " if section else ""
            raise ValueError(f"{where}: {at}missing key {key!r}")


def mapping(value, where: str, key: str, optional: bool = False) -> dict:
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        fail(where, key, f"must be a mapping of keys, got {value!r}")
    return value


def integer(value, where: str, key: str, minimum: int | None = None, optional: bool = False) -> int | None:
    """An int (a float with no fraction, e.g. 1.0e6, too), at least `minimum`; None if `optional`."""
    if value is None and optional:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    if not ok or (minimum is not None and value < minimum):
        at_least = f" >= {minimum}" if minimum is not None else ""
        fail(where, key, f"must be an integer{at_least}, got {value!r}")
    return int(value)


def int_list(value, where: str, key: str, minimum: int | None = 1) -> list[int]:
    at_least = f" >= {minimum}" if minimum is not None else ""
    if not isinstance(value, list) or not value:
        fail(where, key, f"must be a non-empty list of integers{at_least}, got {value!r}")
    try:
        return [int(integer(v, where, key, minimum) or 0) for v in value]  # never None: not optional
    except ValueError:
        fail(where, key, f"must be a non-empty list of integers{at_least}, got {value!r}")


def text(value, where: str, key: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        fail(where, key, f"must be a non-empty string, got {value!r}")
    return value


def flag(value, where: str, key: str) -> bool:
    if not isinstance(value, bool):
        fail(where, key, f"must be true or false, got {value!r}")
    return value


def models() -> list[str]:
    """The known model names: the `models:` keys of experiments/configs/train.yaml."""
    return list(model_names())


def model_name(value, where: str, key: str) -> str:
    known = models()
    if value not in known:
        fail(where, key, f"unknown model {value!r}{suggestion(value, known)}")
    return value


def train_value(name: str, value, where: str, key: str):
    """`value` cast as `optiscale train` casts the TrainConfig field `name` (null only where allowed)."""
    try:
        out = _coerce(name, value)
    except ValueError as err:
        fail(where, key, str(err).split(": ", 1)[1])
    if out is None and not FIELDS[name].type.endswith("| None"):
        fail(where, key, f"must be a {FIELDS[name].type}, got null")
    return out


def check_recipe(recipe, where: str, reserved: Iterable, owner: str) -> dict:
    """A recipe: TrainConfig fields other than `reserved` (those the sweep or study sets itself)."""
    recipe = mapping(recipe, where, "recipe", optional=True)
    check_keys(recipe, FIELDS, where, "recipe")
    clash = sorted(set(recipe) & set(reserved))
    if clash:
        fail(where, "recipe", f"keys {clash} are set by the {owner} itself")
    for name, value in recipe.items():
        train_value(name, value, where, f"recipe.{name}")
    return recipe

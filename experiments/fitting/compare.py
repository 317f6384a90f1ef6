"""Fits of several experiments side by side (`optiscale fit --experiment A --experiment B`).

The runs of each experiment keep their own series: their model is labelled `model@experiment`
everywhere (tables, figures; fits.json also carries `experiment`), so e.g. the quick D axis
trained for a fixed number of epochs (`quick-D`) and for a fixed number of optimiser steps
(`quick-steps-D`) are fitted apart.
The side-by-side table gives, per series and experiment, the robust selection (the law, or the
forms the data cannot tell apart) and the exponent of `power` and of `power_floor` with their 95 %
intervals: the slopes to compare.
"""

from __future__ import annotations

SEP = "@"
COMPARED = ("power", "power_floor")


def label_runs(runs: list[dict], experiment: str) -> list[dict]:
    return [{**r, "model": f"{r['model']}{SEP}{experiment}"} for r in runs]


def tag_experiments(fits: list[dict]) -> list[dict]:
    """Add `experiment` (from `model@experiment`) to every fit (in place); returns fits."""
    for f in fits:
        if SEP in f["model"]:
            f["experiment"] = f["model"].split(SEP, 1)[1]
    return fits


def _alpha(fit: dict | None) -> str:
    if not fit or not fit["params"] or fit["params"].get("alpha") is None:
        return "–"
    lo, hi = (fit.get("ci95") or {}).get("alpha") or (None, None)
    ci = f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else ""
    return f"{fit['params']['alpha']:.3g}{ci}"


def compare_markdown(fits: list[dict]) -> str:
    """The side-by-side section (empty when the fits come from one experiment)."""
    robust = [f for f in fits if f.get("experiment") and f["method"] == "robust"]
    if len({f["experiment"] for f in robust}) < 2:
        return ""
    groups: dict[tuple, dict[str, dict]] = {}
    for f in robust:
        key = (f["model"].split(SEP, 1)[0], f["axis"], tuple(sorted(f["fixed"].items())), f["experiment"])
        groups.setdefault(key, {})[f["form"]] = f
    lines = [
        "## Side by side (robust)",
        "",
        "| model | axis | fixed | experiment | selection | alpha of power [95 %] | alpha of power_floor [95 %] |",
        "|---|---|---|---|---|---|---|",
    ]
    for (model, axis, fixed, exp), forms in sorted(groups.items()):
        sel = next(iter(forms.values())).get("selection", "–")
        fx = ", ".join(f"{k}={v}" for k, v in fixed) or "–"
        lines.append(
            f"| {model} | {axis} | {fx} | {exp} | {sel} | {_alpha(forms.get('power'))} |"
            f" {_alpha(forms.get('power_floor'))} |"
        )
    return "\n".join(lines) + "\n\n"

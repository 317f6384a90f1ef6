"""Outputs of `optiscale plan`: Markdown and a figure (law with its band, target, points, x needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.atomic import atomic_write_text

from .forms import FORMS
from .plan import replicate_params
from .plan_transfer import markdown_lines as pretraining_lines


def _g(v) -> str:
    return "–" if v is None else f"{v:.4g}"


def _ci(ci) -> str:
    return "–" if not ci else f"[{_g(ci[0])}, {'∞' if ci[1] is None else _g(ci[1])}]"


def summary_line(e: dict) -> str:
    """One line per entry for the terminal."""
    head = f"{e['model']} {e['axis']}: {e['law']}{'' if e['law_decided'] else ' (undecided)'}: "
    if not e["reachable"]:
        return head + f"not reachable (floor {_g(e['floor'])} {_ci(e['floor_ci95'])})"
    if e["axis"] == "ND":
        return head + (
            f"cheapest N {_g(e['N_needed'])} {_ci(e['N_needed_ci95'])}, D {_g(e['D_needed'])} {_ci(e['D_needed_ci95'])}"
            f" (by {e['objective']})"
        )
    line = head + f"{e['axis']} needed {_g(e['x_needed'])} {_ci(e['x_needed_ci95'])}"
    for r in e.get("with_pretraining") or []:
        bound = "≤ " if r["bound"] == "at most" else ""
        extra = " (extrapolated)" if r["extrapolated"] else ""
        line += (
            f"; after {r['D_F']:.4g} cheap: {bound}{_g(r['expensive_needed'])} {_ci(r['expensive_needed_ci95'])}{extra}"
        )
    return line


def _nd_lines(e: dict) -> list[str]:
    if not e["reachable"]:
        return [f"- not reachable: target below the 2-D floor {_g(e['floor'])} {_ci(e['floor_ci95'])}"]
    edge = " (at the edge of the search: at least this far)" if e["at_search_edge"] else ""
    by = "training hours from the logged throughput" if e["objective"] == "train_hours" else "6 N D epochs"
    return [
        f"- cheapest (N, D) by {by} (cost ~ D N^{e['cost_exponent_N']:.3g}){edge}:",
        f"  N {_g(e['N_needed'])} {_ci(e['N_needed_ci95'])}, D {_g(e['D_needed'])} {_ci(e['D_needed_ci95'])}",
    ]


def plan_markdown(entries: list[dict]) -> str:
    lines = ["# Plan", ""]
    if entries:
        e = entries[0]
        lines += [
            f"Cost per material: {_g(e.get('cost_per_material_core_hours'))} DFT core-hours"
            f" (source: {e.get('cost_source') or 'none'}{'; ' + e['cost_note'] if e.get('cost_note') else ''}).",
            "",
        ]
    for e in entries:
        fixed = ", ".join(f"{k}={v}" for k, v in e["fixed"].items()) or "the (N, D) grid"
        lines.append(f"## {e['model']} along {e['axis']} ({fixed}), target loss {e['target_loss']:.4g}")
        lines.append("")
        lines.append(f"- law: {e['law']}" + ("" if e["law_decided"] else " (not decided by the data)"))
        lines.append(f"- selection: {e['selection']}")
        if e["axis"] == "ND":
            lines += _nd_lines(e)
        elif e["reachable"]:
            lines.append(f"- {e['axis']} needed: {_g(e['x_needed'])}, 95 % interval {_ci(e['x_needed_ci95'])}")
        else:
            lines.append(f"- not reachable: target below the fitted floor {_g(e['floor'])} {_ci(e['floor_ci95'])}")
        for c in e["candidates"]:
            lines.append(
                f"  - if {c['form']} (share {c['selection_share']:.0%}): {e['axis']} needed {_g(c['x_needed'])}"
                f" {_ci(c['x_needed_ci95'])}"
            )
        if e.get("x_needed_ci95_across_forms"):
            lines.append(f"- 95 % interval across the candidate forms: {_ci(e['x_needed_ci95_across_forms'])}")
        if e["materials_to_compute"] is not None:
            lines.append(
                f"- materials to compute: {_g(e['materials_to_compute'])} {_ci(e['materials_to_compute_ci95'])}"
                f"; DFT core-hours: {_g(e['dft_core_hours'])} {_ci(e['dft_core_hours_ci95'])}"
            )
        lines.append(f"- training hours per run: {_g(e['train_hours'])} {_ci(e['train_hours_ci95'])}")
        lines += pretraining_lines(e.get("with_pretraining") or [])
        if e["diagnosis"]:
            lines += [
                "",
                "| N | D | log gain 2×D | log gain 2×N | P(data-limited) | limited |",
                "|---|---|---|---|---|---|",
            ]
            for d in e["diagnosis"]:
                lines.append(
                    f"| {d['N']:.4g} | {d['D']:.4g} | {_g(d['gain_D_log'])} {_ci(d['gain_D_ci95'])}"
                    f" | {_g(d['gain_N_log'])} {_ci(d['gain_N_ci95'])} | {_g(d['p_data_limited'])} | {d['limited']} |"
                )
            lines.append(f"\nfrom the {e['diagnosis'][0]['from']}")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_plan_markdown(entries, path) -> Path:
    atomic_write_text(path, plan_markdown(entries))
    return Path(path)


def plot_plan(entries: list[dict], laws: dict, runs: list[dict], path) -> Path:
    """One panel per entry: observed means, the law and its 95 % band, the target, the x needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(entries), 1)
    fig, axs = plt.subplots(1, n, figsize=(5.5 * n, 4.2), squeeze=False)
    for ax, e in zip(axs[0], entries, strict=False):
        fit = laws[(e["model"], e["axis"])]
        form, (fk, fv) = FORMS[fit["form"]], next(iter(e["fixed"].items()))
        pts = [r for r in runs if r["model"] == e["model"] and r[fk] == fv]
        xs = sorted({r[e["axis"]] for r in pts})
        mean = [np.mean([r["val_loss"] for r in pts if r[e["axis"]] == x]) for x in xs]
        hi = max(xs[-1], e["x_needed"] or 0, (e["x_needed_ci95"] or [0, 0])[1] or 0) * 1.5
        grid = np.geomspace(xs[0] / 1.5, hi, 200)
        reps = np.array([form.predict(grid, p) for p in replicate_params(fit)])
        if len(reps) >= 2:
            lo_b, hi_b = np.percentile(reps, [2.5, 97.5], axis=0)
            ax.fill_between(grid, lo_b, hi_b, color="C0", alpha=0.2, label="95 % band")
        ax.plot(grid, form.predict(grid, fit["params"]), "C0-", lw=2, label=fit["form"])
        ax.plot(xs, mean, "ko", ms=4, label="observed mean")
        ax.axhline(e["target_loss"], color="C3", ls="--", label="target")
        if e["x_needed"] is not None:
            ax.axvline(e["x_needed"], color="C2", ls=":", label=f"{e['axis']} needed")
            ci = e["x_needed_ci95"] or [None, None]
            ax.axvspan(ci[0] or e["x_needed"], ci[1] or hi, color="C2", alpha=0.1)
        ax.set(xscale="log", yscale="log", xlabel=e["axis"], ylabel="validation loss")
        ax.set_title(f"{e['model']} along {e['axis']}", fontsize=9)
        ax.legend(fontsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path

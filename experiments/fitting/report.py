"""Outputs of the fits: JSON (atomic), a Markdown AICc table, matplotlib figures."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from datamodules.atomic import atomic_write_json, atomic_write_text

from .forms import FORMS
from .select import aicc_table
from .series import build_series
from .sources import from_records, is_fine_tuned

STYLE = {"paper": "-", "robust": "--"}


def public(fit: dict) -> dict:
    """The fit without its private per-replicate fields (keys starting with '_')."""
    return {k: v for k, v in fit.items() if not k.startswith("_")}


def write_json(fits: list[dict], path, transfer: list[dict] | None = None) -> Path:
    """fits.json: the list of fits; with transfer records, {"fits": [...], "transfer": [...]}."""
    body = [public(f) for f in fits]
    atomic_write_json(path, {"fits": body, "transfer": [public(t) for t in transfer]} if transfer else body)
    return Path(path)


def _g(v) -> str:
    return "–" if v is None else f"{v:.4g}"


def _params_cell(fit: dict) -> str:
    if fit["params"] is None:
        return "–"
    parts = []
    for k, v in fit["params"].items():
        if fit["method"] == "robust" and fit.get("ci95"):
            lo, hi = fit["ci95"][k]
            parts.append(f"{k}={_g(v)} [{_g(lo)}, {_g(hi)}]")
        else:
            err = (fit.get("stderr") or {}).get(k)
            parts.append(f"{k}={_g(v)} ± {_g(err)}")
    return "; ".join(parts)  # no <br>: MLflow's artifact viewer shows it literally


def markdown_table(fits: list[dict]) -> str:
    cols = (
        "model axis fixed method form n parameters AICc ΔAICc best share law break at_bound"
        " oos_rmse_log extrap_rmse_log_1/2 status"
    ).split()
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for f in aicc_table(fits):
        fixed = ", ".join(f"{k}={v}" for k, v in f["fixed"].items()) or "–"
        brk = {None: "–", True: "yes", False: "no"}[f.get("break_in_range")]
        oos = (f.get("oos") or {}).get("rmse_log")
        ext = f.get("extrapolation") or {}
        share = f.get("selection_share")
        cells = [
            f["model"],
            f["axis"],
            fixed,
            f["method"],
            f["form"],
            str(f["n_points"]),
            _params_cell(f),
            _g(f["aicc"]),
            _g(f.get("delta_aicc")),
            "**yes**" if f.get("best") else "",
            "–" if share is None else f"{share:.0%}",
            "**law**" if f.get("law") else "",
            brk,
            ", ".join(f["at_bound"]) or "",
            _g(oos),
            f"{_g(ext.get('drop_1'))} / {_g(ext.get('drop_2'))}" if ext else "–",
            f["status"].replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def selection_lines(fits: list[dict]) -> str:
    """One line per robust series: its law, or the forms the data cannot tell apart."""
    seen, lines = set(), []
    for f in fits:
        if f["method"] != "robust" or "selection" not in f:
            continue
        key = (f["model"], f["axis"], tuple(sorted(f["fixed"].items())))
        if key not in seen:
            seen.add(key)
            fixed = ", ".join(f"{k}={v}" for k, v in f["fixed"].items())
            lines.append(f"- {f['model']} along {f['axis']}" + (f" ({fixed})" if fixed else "") + f": {f['selection']}")
    return "\n".join(lines) + "\n" if lines else ""


def write_markdown(fits: list[dict], path, transfer: list[dict] | None = None) -> Path:
    from .compare import compare_markdown
    from .transfer import transfer_markdown

    sel = selection_lines(fits)
    head = f"## Selection (robust, over bootstrap replicates)\n\n{sel}\n## AICc table\n\n" if sel else ""
    tail = "\n" + transfer_markdown(transfer) if transfer else ""
    body = compare_markdown(fits) + head + markdown_table(fits) + tail
    atomic_write_text(path, "# Scaling-law fits\n\n" + body)
    return Path(path)


def _name(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(str(p) for p in parts if p != ""))


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_fits(fits: list[dict], points, out_dir) -> list[Path]:
    """Loss against D and N (log-log, mean ± std over seeds, the fitted laws: the law bold, the
    others faint; breaks marked; residuals of the bold laws below) per series, and the 2-D map of
    the best 2-D law per model and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    axes = tuple(dict.fromkeys(f["axis"] for f in fits))
    records = points.to_dict("records") if hasattr(points, "to_dict") else list(points)
    series, _ = build_series(from_records([r for r in records if not is_fine_tuned(r)]), axes)
    colours = {name: f"C{i}" for i, name in enumerate(FORMS)}
    paths = []
    for s in series:
        mine = [f for f in fits if (f["model"], f["axis"], f["fixed"]) == (s.model, s.axis, s.fixed) and f["params"]]
        if s.axis == "ND":
            for method in dict.fromkeys(f["method"] for f in mine):
                scored = [f for f in mine if f["method"] == method and f["aicc"] is not None] or [
                    f for f in mine if f["method"] == method
                ]
                best = min(scored, key=lambda f: f["aicc"] if f["aicc"] is not None else np.inf)
                paths.append(_plot_map(plt, s, best, out_dir / f"{_name(s.model, 'ND', method)}.png"))
            continue
        mean, std, _ = s.stats()
        fig, (ax, res) = plt.subplots(2, 1, figsize=(6, 5.4), sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        ax.errorbar(s.cell_x, mean, yerr=std, fmt="ko", ms=4, capsize=3, label="mean ± std over seeds", zorder=5)
        grid = np.geomspace(s.cell_x.min() / 1.5, s.cell_x.max() * 1.5, 200)
        for f in mine:  # the law (robust) or the AICc-best form (paper) bold, the others faint
            law = FORMS[f["form"]].predict(grid, f["params"])
            main = f.get("law") if f["method"] == "robust" else f.get("best")
            share = f.get("selection_share")
            label = f"{f['form']} ({f['method']}" + (f", {share:.0%})" if share is not None else ")")
            label += " LAW" if f.get("law") else " best" if f.get("best") else ""
            ax.plot(
                grid,
                law,
                STYLE[f["method"]],
                color=colours[f["form"]],
                lw=2.6 if main else 1.0,
                alpha=1.0 if main else 0.35,
                label=label,
            )
            if main:
                r = np.log(mean / FORMS[f["form"]].predict(s.cell_x, f["params"]))
                res.plot(s.cell_x, r, "o" + STYLE[f["method"]], color=colours[f["form"]], ms=4)
            if f.get("break_in_range"):
                ax.axvline(f["params"]["xc"], color=colours[f["form"]], ls=":", lw=1.2)
                ax.annotate("xc", (f["params"]["xc"], ax.get_ylim()[0]), color=colours[f["form"]], fontsize=8)
        res.axhline(0.0, color="k", lw=0.8)
        res.set(xscale="log", xlabel=s.axis, ylabel="log(obs / law)")
        ax.set(xscale="log", yscale="log", ylabel="best validation loss", title=s.label)
        plain = plt.matplotlib.ticker.FormatStrFormatter("%.3g")  # losses span less than a decade
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(plain)
        ax.legend(fontsize=6, ncol=2, loc="lower left")
        fixed = "_".join(f"{k}{v}" for k, v in s.fixed.items())
        paths.append(_save(fig, out_dir / f"{_name(s.model, s.axis, fixed)}.png"))
    return paths


def _plot_map(plt, s, fit: dict, path: Path) -> Path:
    N, D = s.cell_x
    mean, _, _ = s.stats()
    gN = np.geomspace(N.min() / 1.25, N.max() * 1.25, 60)  # a margin: the observed cells stay inside
    gD = np.geomspace(D.min() / 1.25, D.max() * 1.25, 60)
    mN, mD = np.meshgrid(gN, gD)
    law = FORMS[fit["form"]].predict(np.stack([mN.ravel(), mD.ravel()]), fit["params"]).reshape(mN.shape)
    fig, ax = plt.subplots(
        figsize=(6, 4.6),
    )
    vmin, vmax = min(law.min(), mean.min()), max(law.max(), mean.max())
    norm = plt.matplotlib.colors.LogNorm(vmin=vmin, vmax=vmax)
    im = ax.pcolormesh(mN, mD, law, norm=norm, shading="auto", cmap="viridis", rasterized=True)
    ax.contour(mN, mD, law, levels=8, colors="w", linewidths=0.6, alpha=0.7)
    ax.scatter(N, D, c=mean, norm=norm, cmap="viridis", edgecolors="k", s=40, zorder=5)
    if fit.get("break_in_range"):
        ax.axhline(fit["params"]["D_c"], color="r", ls=":", label="D_c")
        ax.legend(fontsize=7)
    ax.set(xscale="log", yscale="log", xlabel="N (parameters)", ylabel="D (training materials)")
    ax.set_title(f"{s.model}: {fit['form']} ({fit['method']}), points = observed means", fontsize=9)
    fig.colorbar(im, ax=ax, label="validation loss")
    return _save(fig, path)


def write_report(fits: list[dict], points, out_dir) -> dict[str, object]:
    """fits.json, fits.md and figures/ under out_dir -> {"json": path, "markdown": path, "figures": [paths]}."""
    out_dir = Path(out_dir)
    return {
        "json": write_json(fits, out_dir / "fits.json"),
        "markdown": write_markdown(fits, out_dir / "fits.md"),
        "figures": plot_fits(fits, points, out_dir / "figures"),
    }

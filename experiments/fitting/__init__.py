"""Scaling-law fits of validation losses: forms, the published and a robust method, AICc.

    from experiments.fitting import fit_runs, write_report
    fits = fit_runs(runs, axes=("D", "N", "ND"), method="paper")   # or "robust", "both"
    paths = write_report(fits, runs, "reports/fit")

`runs`: a pandas DataFrame or an iterable of mappings with model, D, N, seed, val_loss
(extra keys ignored), e.g. from read_csv / read_mlflow. See docs/fitting.md.
"""

from __future__ import annotations

import importlib
import zlib

# The API is loaded on first use (PEP 562), so that `optiscale --help`, which imports
# experiments.fitting.commands, does not pay for scipy.
_LAZY = {
    "FORMS": "forms",
    "FORMS_1D": "forms",
    "FORMS_2D": "forms",
    "fit_paper": "paper",
    "fit_robust": "robust",
    "plot_fits": "report",
    "write_json": "report",
    "write_markdown": "report",
    "write_report": "report",
    "aicc_table": "select",
    "annotate": "select",
    "best_fits": "select",
    "AXES": "series",
    "Series": "series",
    "build_series": "series",
    "from_records": "sources",
    "read_csv": "sources",
    "read_mlflow": "sources",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


METHODS = ("paper", "robust")

__all__ = [
    "AXES",
    "FORMS",
    "METHODS",
    "Series",
    "aicc_table",
    "best_fits",
    "build_series",
    "fit_runs",
    "fit_series",
    "from_records",
    "plot_fits",
    "read_csv",
    "read_mlflow",
    "write_json",
    "write_markdown",
    "write_report",
]


def fit_series(series, form: str, method: str = "paper", starts: int = 32, bootstrap: int = 200, seed: int = 0) -> dict:
    """One form fitted to one Series by one method -> a fit record (not yet annotated)."""
    from .forms import FORMS
    from .paper import fit_paper
    from .robust import fit_robust

    if method == "paper":
        return fit_paper(series, FORMS[form])
    if method == "robust":
        sub_seed = zlib.crc32(f"{seed}|{series.label}|{form}".encode())  # per-fit, reproducible
        return fit_robust(series, FORMS[form], starts=starts, bootstrap=bootstrap, seed=sub_seed)
    raise ValueError(f"unknown method {method!r}: choose paper, robust or both")


def fit_runs(
    runs,
    axes=("D", "N", "ND"),
    method: str = "paper",
    forms=None,
    starts: int = 32,
    bootstrap: int = 200,
    seed: int = 0,
    skipped: list | None = None,
    transfer: list | None = None,
) -> list[dict]:
    """Every form fitted to every series of `runs` along `axes` by `method` ("paper", "robust", "both").

    `runs`: a pandas DataFrame or an iterable of mappings with model, D, N, seed, val_loss; `axes`:
    a subset of ("D", "N", "ND"), one of them, or "all"; `forms`: a subset of FORMS (default all).

    Returns the fit records with AICc selection, the break rule and, for the robust method, the
    selection shares over shared bootstrap replicates and the headline law (select.annotate).
    Groups that are no series (a single x) are appended to `skipped` when a list is given.
    Fine-tuned runs (D_F > 0) are no part of any series: when `transfer` is a list, the transfer
    fit (fitting.transfer) of the scratch and fine-tuned runs is appended to it; else they are
    reported in `skipped`.
    """
    from .forms import FORMS, FORMS_1D, FORMS_2D
    from .select import annotate
    from .series import build_series
    from .sources import from_records, is_fine_tuned
    from .stability import fit_robust_group

    methods = METHODS if method == "both" else (method,)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}: choose paper, robust or both")
    if isinstance(axes, str):
        axes = ("D", "N", "ND") if axes == "all" else (axes,)
    names = tuple(forms) if forms else tuple(FORMS)
    unknown = [n for n in names if n not in FORMS]
    if unknown:
        raise ValueError(f"unknown form {unknown[0]!r}: choose from {', '.join(FORMS)}")
    from .transfer import fit_transfer, rows_from_records

    records = runs.to_dict("records") if hasattr(runs, "to_dict") else list(runs)
    tuned = [r for r in records if is_fine_tuned(r)]
    if tuned:
        if transfer is not None:
            transfer.extend(fit_transfer(rows_from_records(records), bootstrap=bootstrap, starts=starts, seed=seed))
        elif skipped is not None:
            for model, d_f in sorted({(str(r.get("model")), str(r["D_F"])) for r in tuned}):
                why = "fine-tuned runs: no scaling series (pass transfer=[] for the transfer fit)"
                skipped.append({"model": model, "axis": "D", "fixed": {"D_F": d_f}, "reason": why})
        records = [r for r in records if r not in tuned]
    series, skip = build_series(from_records(records), tuple(axes))
    if skipped is not None:
        skipped.extend(skip)
    fits = []
    for s in series:
        mine = [n for n in names if n in (FORMS_2D if s.axis == "ND" else FORMS_1D)]
        for m in methods:
            if m == "robust":  # all forms on shared bootstrap replicates: selection shares
                fits.extend(fit_robust_group(s, mine, starts=starts, bootstrap=bootstrap, seed=seed))
            else:
                fits.extend(fit_series(s, name, m, starts=starts, bootstrap=bootstrap, seed=seed) for name in mine)
    return annotate(fits)

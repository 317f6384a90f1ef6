"""The robust method on one series, all forms together: shared bootstrap replicates for selection.

Every form is refitted on the same K replicates of the series (seeds drawn with replacement within
each x; with one run per x, the log residuals of the AICc-best form resampled around it), so that
select.annotate can count, per replicate, which form has the lowest AICc (`selection_share`).
"""

from __future__ import annotations

import zlib

import numpy as np

from .forms import FORMS
from .robust import F_SCALE, add_bootstrap, add_out_of_sample, draw_replicates, point_fit
from .series import Series


def _sub_seed(seed: int, series: Series, what: str) -> int:
    return zlib.crc32(f"{seed}|{series.label}|{what}".encode())


def fit_robust_group(series: Series, names, starts=32, bootstrap=200, seed=0, f_scale=F_SCALE) -> list[dict]:
    """The forms `names` fitted to `series` by the robust method, bootstrapped on shared replicates."""
    done = []
    for name in names:
        fit, q, rng = point_fit(series, FORMS[name], starts, _sub_seed(seed, series, name), f_scale)
        fit["bootstrap"]["replicates"] = int(bootstrap)
        cells = series.cell_x.T if series.axis == "ND" else series.cell_x
        fit["_cells"] = sorted({tuple(map(float, c)) if series.axis == "ND" else float(c) for c in cells})
        done.append((fit, q, rng))
    ok = [(f, q) for f, q, _ in done if q is not None and f["aicc"] is not None and "degenerate" not in f["status"]]
    if not ok:
        ok = [(f, q) for f, q, _ in done if q is not None]
    replicates = []
    if ok and bootstrap:
        best, q_best = min(ok, key=lambda t: t[0]["aicc"] if t[0]["aicc"] is not None else np.inf)
        rng = np.random.default_rng(_sub_seed(seed, series, "replicates"))
        replicates = draw_replicates(series, FORMS[best["form"]], q_best, bootstrap, rng, f_scale)
    for fit, q, rng in done:
        if q is None:
            continue
        form = FORMS[fit["form"]]
        add_bootstrap(fit, series, form, q, replicates, f_scale)
        add_out_of_sample(fit, series, form, q, starts, rng, f_scale)
    return [f for f, _, _ in done]

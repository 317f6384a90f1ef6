"""The published fitting procedure (docs/reference.md, section Scaling-law fitting), reproduced as it is.

- Data: at each x (or (N, D) point) the mean of val_loss over seeds; sigma = their standard
  deviation with ddof 0. Where sigma is 0 at some points (identical seeds, or one seed) it is
  replaced by the smallest positive sigma of the series; where it is 0 everywhere the fit is
  unweighted (sigma=None).
- scipy.optimize.curve_fit in linear space, one starting point: the form's deterministic guess
  (forms.py: log-log regressions of the means), moved inside the bounds; bounds as in forms.py
  (so the 'trf' solver), at most MAX_NFEV evaluations.
- absolute_sigma=False (scipy's default): the covariance is scaled by the reduced chi-square, so
  the errors do not depend on whether sigma is the scatter of single runs or of their mean.
- stderr = sqrt(diag(cov)); a covariance that is not finite, or parameters the data do not
  determine (result.undetermined), give status "degenerate: ...".
- AICc from the unweighted residuals of the means (result.aicc), n = number of points.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from .forms import Form
from .result import add_status, aicc, at_bound, new_fit, num, too_few, undetermined
from .series import Series

MAX_NFEV = 20000


def seed_sigma(std: np.ndarray) -> np.ndarray | None:
    """sigma for curve_fit from the per-point std (ddof 0), zeros handled as documented above."""
    positive = std[std > 0]
    if positive.size == 0:
        return None
    return np.where(std > 0, std, positive.min())


def inside(p0, lo, hi) -> np.ndarray:
    """The guess moved strictly inside the bounds."""
    p0 = np.asarray(p0, float)
    span = np.where(np.isfinite(hi - lo), hi - lo, np.maximum(np.abs(p0), 1.0))
    return np.clip(p0, lo + 1e-6 * span, hi - 1e-6 * span)


def fit_paper(series: Series, form: Form) -> dict:
    """One form fitted to one series by the published procedure -> a fit record."""
    mean, std, _ = series.stats()
    fit = new_fit(series, form, "paper", n_points=series.n_cells)
    why = too_few(series, form)
    if why:
        fit["status"] = why
        return fit
    x = series.cell_x
    lo, hi = form.bounds()
    p0 = inside(form.guess(x, mean), lo, hi)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            popt, pcov = curve_fit(
                form.linear,
                x,
                mean,
                p0=p0,
                sigma=seed_sigma(std),
                absolute_sigma=False,
                bounds=(lo, hi),
                max_nfev=MAX_NFEV,
            )
    except (RuntimeError, ValueError, FloatingPointError) as err:
        fit["status"] = f"fit failed: {str(err).splitlines()[0]}"
        return fit
    with np.errstate(invalid="ignore"):
        stderr = np.sqrt(np.diag(pcov))
    fit["params"] = {k: num(v) for k, v in zip(form.params, popt, strict=True)}
    fit["stderr"] = {k: num(v) for k, v in zip(form.params, stderr, strict=True)}
    fit["at_bound"] = at_bound(form, popt, mean)
    if not np.all(np.isfinite(stderr)):
        add_status(fit, "degenerate: covariance not finite (parameters not determined by the data)")
    else:
        add_status(fit, undetermined(form, x, popt))
    with np.errstate(all="ignore"):
        resid = mean - form.linear(x, *popt)
    rss = float(np.sum(resid**2))
    if not np.isfinite(rss):
        add_status(fit, "fit failed: prediction not finite at the solution")
        return fit
    fit["aicc"], why = aicc(rss, series.n_cells, form.k)
    add_status(fit, why)
    return fit

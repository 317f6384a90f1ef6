"""The robust fit: log-space residuals of every run, Huber loss, many starts, bootstrap over runs.

- Residuals r = log(val_loss) - log L(x) over all runs (seeds are points, n = number of runs),
  scipy.optimize.least_squares(loss="huber", f_scale=F_SCALE): quadratic for |r| < 10 %, linear
  beyond (a diverged seed does not drag the law).
- Scales (x0, xc, A, N_c, D_c) and the sharpness move in log space, exponents and levels linearly.
- Starts: the paper's deterministic guess plus a seeded Latin hypercube in a box around it
  (exponents +-1, log-scales +-3, break locations over [log min x - 1, log max x + 1], levels over
  [0, min loss], log-sharpness +-ln 10); the start with the lowest Huber cost wins.
- Bootstrap: K replicates, each drawing the runs of every x with replacement (an x with one run
  keeps it; where every x has one run, the log residuals are resampled instead), refitted from the
  best solution. With 3 seeds the plug-in bootstrap is too narrow by sqrt(2/3), so the replicate
  deviations from the best fit are inflated by sqrt(m/(m-1)) (m runs per x; sqrt(n/(n-k)) for
  residuals), in the parameters' fitting space. ci95 = 2.5-97.5 percentile interval of the
  (inflated) replicates, stderr = their standard deviation.
- Out of sample: the fit repeated without the largest x (ND: without the largest D), its prediction
  there against the observed mean: rmse_log (RMS of log(pred/obs)) and max_rel_error; and
  `extrapolation`: that rmse_log without the largest 1 (drop_1) and the largest 2 (drop_2) x.
- AICc from the log residuals of all runs (RSS = sum r^2, n = number of runs).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import qmc

from .forms import BREAKS, Form
from .paper import inside
from .result import add_status, aicc, at_bound, new_fit, num, too_few, undetermined
from .series import Series

F_SCALE = 0.1
MAX_NFEV = 400


def _start_box(form: Form, series: Series, g: np.ndarray, lo, hi):
    xs = series.cell_x[1] if series.axis == "ND" else series.cell_x
    lx = np.log(xs)
    a, b = [], []
    for name, kind, v in zip(form.params, form.kinds, g, strict=True):
        if name in BREAKS:
            box = (lx.min() - 1, lx.max() + 1)
        elif kind == "level":
            box = (0.0, float(np.min(series.y)))
        else:
            w = {"exponent": 1.0, "scale": 3.0, "shape": np.log(10.0)}[kind]
            box = (v - w, v + w)
        a.append(box[0])
        b.append(box[1])
    return np.maximum(a, lo), np.minimum(b, hi)


class _Problem:
    def __init__(self, form: Form, series: Series, f_scale: float):
        self.form, self.series, self.f_scale = form, series, f_scale
        lo, hi = form.bounds()
        self.lo, self.hi = form.to_internal(lo), form.to_internal(hi)
        self.logy = np.log(series.y)

    def residuals(self, q):
        with np.errstate(all="ignore"):
            r = self.form.log(self.series.x, *self.form.to_natural(q)) - self.logy
        return np.where(np.isfinite(r), r, 1e3)

    def solve(self, q0) -> tuple[np.ndarray, float] | None:
        q0 = inside(q0, self.lo, self.hi)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = least_squares(
                    self.residuals,
                    q0,
                    bounds=(self.lo, self.hi),
                    loss="huber",
                    f_scale=self.f_scale,
                    x_scale="jac",
                    max_nfev=MAX_NFEV,
                )
        except (ValueError, np.linalg.LinAlgError):
            return None
        return (res.x, float(res.cost)) if np.all(np.isfinite(res.x)) else None

    def best(self, starts: list[np.ndarray]) -> np.ndarray | None:
        found = [s for s in (self.solve(q0) for q0 in starts) if s is not None]
        return min(found, key=lambda s: s[1])[0] if found else None


def _starts(form, series, n_starts, rng, extra=()) -> list[np.ndarray]:
    mean, _, _ = series.stats()
    prob_lo, prob_hi = (form.to_internal(b) for b in form.bounds())
    g = inside(form.to_internal(form.guess(series.cell_x, mean)), prob_lo, prob_hi)
    starts = [*extra, g]
    if n_starts > 1:
        a, b = _start_box(form, series, g, prob_lo, prob_hi)
        u = qmc.LatinHypercube(d=form.k, seed=rng).random(n_starts - 1)
        starts += list(a + u * (b - a))
    return starts


def out_of_sample(form, series, q_best, n_starts, rng, f_scale, n_held: int = 1) -> dict:
    """Refit without the `n_held` largest x (ND: largest D values); error of its prediction there:
    rmse_log = RMS over the held cells of log(pred / observed mean), max_rel_error = max |pred/obs - 1|."""
    xs = series.cell_x[1] if series.axis == "ND" else series.cell_x
    distinct = np.unique(xs)
    if len(distinct) <= n_held:
        return {"status": f"too few points left without the largest {n_held} {series.axis[-1]}"}
    held = xs >= distinct[-n_held]
    train = series.subset(~held)
    if train.n_cells < form.k or (series.axis == "ND" and len(np.unique(train.cell_x[1])) < 2):
        return {"status": f"too few points left without the largest {n_held} {series.axis[-1]}"}
    q = _Problem(form, train, f_scale).best(_starts(form, train, max(n_starts // 2, 1), rng, extra=[q_best]))
    if q is None:
        return {"status": "refit failed"}
    mean, _, _ = series.stats()
    pred = form.predict(series.cell_x[..., held], dict(zip(form.params, form.to_natural(q), strict=True)))
    obs = mean[held]
    return {
        "status": "ok",
        "held_out": {series.axis[-1]: [float(v) for v in distinct[-n_held:]]}
        if n_held > 1
        else {series.axis[-1]: float(xs.max())},
        "rmse_log": num(np.sqrt(np.mean(np.log(pred / obs) ** 2))),
        "max_rel_error": num(np.max(np.abs(pred / obs - 1))),
    }


def _bootstrap_kind(series: Series, form: Form) -> tuple[str, float]:
    """'runs' (seeds resampled within each x) where some x has >= 2 runs, else 'residuals'; and the
    small-sample inflation of the replicate deviations: sqrt(m/(m-1)) for m runs per x (the plug-in
    variance of a mean of m draws is (m-1)/m of the true one), sqrt(n/(n-k)) for residuals."""
    counts = np.bincount(series.cells)
    multi = counts[counts >= 2]
    if multi.size:
        m = float(multi.mean())
        return "runs", float(np.sqrt(m / (m - 1)))
    n = series.n_runs
    return "residuals", float(np.sqrt(n / max(n - form.k, 1)))


def _replicate(series: Series, kind: str, prob: _Problem, q, rng) -> Series:
    if kind == "runs":
        return series.resample(rng)
    r = prob.residuals(q)  # log model - log y
    logy = (np.log(series.y) + r) - r[rng.integers(0, len(r), size=len(r))]
    return replace(series, y=np.exp(logy))


def point_fit(series: Series, form: Form, starts=32, seed=0, f_scale=F_SCALE):
    """The best fit on all runs -> (fit record without bootstrap, q in fitting space or None, rng)."""
    fit = new_fit(series, form, "robust", n_points=series.n_runs)
    fit.update(oos=None, bootstrap={"replicates": 0, "converged": 0})
    rng = np.random.default_rng(seed)
    why = too_few(series, form)
    if why:
        fit["status"] = why
        return fit, None, rng
    prob = _Problem(form, series, f_scale)
    q = prob.best(_starts(form, series, starts, rng))
    if q is None:
        fit["status"] = "fit failed: no start converged"
        return fit, None, rng
    p = form.to_natural(q)
    fit["params"] = {k: num(v) for k, v in zip(form.params, p, strict=True)}
    fit["at_bound"] = at_bound(form, p, series.y)
    add_status(fit, undetermined(form, series.cell_x, p))
    fit["aicc"], why = aicc(float(np.sum(prob.residuals(q) ** 2)), series.n_runs, form.k)
    add_status(fit, why)
    return fit, q, rng


def draw_replicates(series: Series, form: Form, q, k: int, rng, f_scale=F_SCALE) -> list[Series]:
    """k bootstrap replicates of `series` (runs within each x, else the residuals of `form` at q)."""
    kind, _ = _bootstrap_kind(series, form)
    prob = _Problem(form, series, f_scale)
    return [_replicate(series, kind, prob, q, rng) for _ in range(k)]


def add_bootstrap(fit: dict, series: Series, form: Form, q, replicates: list[Series], f_scale=F_SCALE) -> None:
    """Refits on each replicate from q: ci95, stderr; keeps, per replicate, the inflated natural
    parameters (`_reps`, None where the refit failed) and its AICc (`_rep_aicc`) for selection."""
    kind, inflate = _bootstrap_kind(series, form)
    fit["bootstrap"] = {"replicates": len(replicates), "converged": 0, "kind": kind, "inflation": inflate}
    reps: list[np.ndarray | None] = []
    rep_aicc: list[float | None] = []
    for rep in replicates:
        prob = _Problem(form, rep, f_scale)
        s = prob.solve(q)
        if s is None:
            reps.append(None)
            rep_aicc.append(None)
            continue
        reps.append(form.to_natural(q + inflate * (s[0] - q)))
        rep_aicc.append(aicc(float(np.sum(prob.residuals(s[0]) ** 2)), rep.n_runs, form.k)[0])
    fit["_reps"], fit["_rep_aicc"] = reps, rep_aicc
    ok = np.array([r for r in reps if r is not None])
    fit["bootstrap"]["converged"] = len(ok)
    if len(ok) >= 2:
        lo, hi = np.percentile(ok, [2.5, 97.5], axis=0)
        fit["stderr"] = {k: num(v) for k, v in zip(form.params, ok.std(axis=0, ddof=1), strict=True)}
        fit["ci95"] = {k: [num(a), num(b)] for k, a, b in zip(form.params, lo, hi, strict=True)}
    elif replicates:
        add_status(fit, "no bootstrap interval: fewer than 2 replicates converged")


def add_out_of_sample(fit, series, form, q, starts, rng, f_scale=F_SCALE) -> None:
    """oos (without the largest x) and extrapolation: log-space errors without the largest 1 and 2 x."""
    fit["oos"] = out_of_sample(form, series, q, starts, rng, f_scale)
    two = out_of_sample(form, series, q, starts, rng, f_scale, n_held=2)
    fit["extrapolation"] = {"drop_1": fit["oos"].get("rmse_log"), "drop_2": two.get("rmse_log")}


def fit_robust(series: Series, form: Form, starts=32, bootstrap=200, seed=0, f_scale=F_SCALE) -> dict:
    """One form fitted to one series by the robust method -> a fit record (with ci95 and oos)."""
    fit, q, rng = point_fit(series, form, starts, seed, f_scale)
    fit["bootstrap"]["replicates"] = int(bootstrap)
    if q is None:
        return fit
    add_bootstrap(fit, series, form, q, draw_replicates(series, form, q, bootstrap, rng, f_scale), f_scale)
    add_out_of_sample(fit, series, form, q, starts, rng, f_scale)
    return fit

"""Known parameters recovered from synthetic losses by both methods, within their stated uncertainty.

Every form: 3 seeds, 2 % multiplicative log-normal noise, fixed numpy seeds; 1-D forms on the
reference's 7 D values (BNSL, with 6 parameters, on 10 doubling D values), 2-D forms on the 7 x 7
(N, D) grid. Pass: |estimate - truth| <= 4 stderr (paper: covariance; robust: inflated bootstrap)
and, for the exponents, a loose absolute tolerance; robust: ci95 consistent with its stderr.
Why 4 and not 3: with 3 seeds the stated errors are themselves noisy, and the published ones are
too small (`optiscale bench fit`: RMS of (estimate - truth)/stderr 1.4-2.9 for the published
method, 1.0-1.2 for the robust one), so 4 stated errors are 1.5-3 true ones.
"""

from __future__ import annotations

import pytest

from experiments.fitting import fit_runs
from experiments.fitting.forms import FORMS

CASES = {
    "power": ((1e4, 0.3), None),
    "power_floor": ((0.3, 5e3, 0.5), None),
    "broken": ((2e4, 0.6, 0.2), None),
    "broken_amp": ((1.0, 2e4, 0.1, 0.6), None),
    "bnsl": ((0.1, 5.0, 0.2, 0.6, 2e4, 0.5), [2500 * 2**k for k in range(10)]),
    "kaplan": ((0.3, 0.6, 0.2, 1e6, 2e4), None),
    "hoffmann": ((0.1, 0.3, 0.2, 0.7, 1e5, 2e4), None),
}
# loose absolute bounds on the exponents, about 3 times their scatter over noise draws: the slope
# above a steepening break rests on 3-4 points; BNSL has six parameters for ten points
EXPONENT_TOL = {"broken_amp": 0.15, "hoffmann": 0.15, "bnsl": 0.3}
CHECKED = {"bnsl": ("alpha1", "alpha2")}  # its L_inf, A, xc and sharpness trade off within the noise


def _fit(draw_runs, form, method):
    params, xs = CASES[form]
    runs = draw_runs(form, params, **({"xs": xs} if xs else {}), rng_seed=7)
    axes = ("ND",) if FORMS[form].ndim == 2 else ("D",)
    fits = fit_runs(runs, axes=axes, method=method, forms=[form], starts=8, bootstrap=40, seed=3)
    assert len(fits) == 1
    return fits[0], dict(zip(FORMS[form].params, params, strict=True))


@pytest.mark.parametrize("method", ["paper", "robust"])
@pytest.mark.parametrize("form", list(CASES))
def test_parameters_recovered_within_stated_uncertainty(draw_runs, form, method):
    fit, truth = _fit(draw_runs, form, method)
    assert fit["params"] is not None, fit["status"]
    assert fit["status"] == "ok" or fit["status"].startswith("no AICc"), fit["status"]
    for name in CHECKED.get(form, truth):
        est, err, true = fit["params"][name], fit["stderr"][name], truth[name]
        assert err is not None and err > 0, (name, fit["stderr"])
        assert abs(est - true) <= 4 * err, f"{form}/{method} {name}: {est:.4g} vs {true:.4g} ± {err:.3g}"
        if name.startswith("alpha"):
            assert abs(est - true) <= EXPONENT_TOL.get(form, 0.08), (name, est, true)
        if method == "robust":  # the percentile interval brackets the estimate, about +-2 stderr wide
            lo, hi = fit["ci95"][name]
            assert lo <= est <= hi and 1.5 * err <= hi - lo <= 8 * err, (name, lo, est, hi, err)


def test_paper_method_on_noiseless_broken_law_is_exact(draw_runs):
    runs = draw_runs("broken", (2e4, 0.6, 0.2), noise=0.0)
    (fit,) = fit_runs(runs, axes=("D",), method="paper", forms=["broken"])
    assert fit["status"] == "ok"
    assert fit["params"]["xc"] == pytest.approx(2e4, rel=1e-7)
    assert fit["params"]["alpha1"] == pytest.approx(0.6, abs=1e-8)
    assert fit["params"]["alpha2"] == pytest.approx(0.2, abs=1e-8)


def test_robust_fit_shrugs_off_a_diverged_seed(draw_runs):
    runs = draw_runs("power", (1e4, 0.3), noise=0.01, rng_seed=2)
    runs[-1]["val_loss"] *= 3.0  # one seed at the largest D diverged
    (fit,) = fit_runs(runs, axes=("D",), method="robust", forms=["power"], starts=8, bootstrap=0)
    assert abs(fit["params"]["alpha"] - 0.3) < 0.01
    assert fit["stderr"] is None and fit["ci95"] is None  # no bootstrap asked for


def test_one_seed_per_x_bootstraps_the_residuals(draw_runs):
    runs = draw_runs("power", (1e4, 0.3), seeds=(1,), rng_seed=9)
    (fit,) = fit_runs(runs, axes=("D",), method="robust", forms=["power"], starts=4, bootstrap=40)
    assert fit["bootstrap"]["kind"] == "residuals" and fit["bootstrap"]["converged"] == 40
    lo, hi = fit["ci95"]["alpha"]
    assert lo < 0.3 < hi and hi - lo > 0.005  # not the zero width a resampling of single runs would give

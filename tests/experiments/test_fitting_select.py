"""AICc, the break rule, floors at their bound and fits that cannot be made."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.fitting import fit_runs
from experiments.fitting.paper import seed_sigma
from experiments.fitting.result import aicc

BREAK_FORMS = ("broken", "broken_amp", "bnsl")


def test_aicc_by_hand():
    # n=7, k=2, RSS=0.5: 2*2 + 7 ln(0.5/7) + (8 + 4)/(7 - 2 - 1)
    value, why = aicc(0.5, 7, 2)
    assert why is None and value == pytest.approx(4 + 7 * math.log(0.5 / 7) + 3.0)
    assert aicc(0.5, 7, 6) == (None, "no AICc: n - k - 1 = 0 <= 0 (n=7, k=6)")


def test_paper_aicc_uses_unweighted_residuals_of_the_means(draw_runs):
    runs = draw_runs("power", (1e4, 0.3), noise=0.03, rng_seed=5)
    (fit,) = fit_runs(runs, axes=("D",), method="paper", forms=["power"])
    D = np.array(sorted({r["D"] for r in runs}), float)
    mean = np.array([np.mean([r["val_loss"] for r in runs if r["D"] == d]) for d in D])
    pred = (fit["params"]["x0"] / D) ** fit["params"]["alpha"]
    rss = float(np.sum((mean - pred) ** 2))
    assert fit["n_points"] == 7
    assert fit["aicc"] == pytest.approx(2 * 2 + 7 * math.log(rss / 7) + 12 / 4, rel=1e-9)


def test_zero_std_replaced_by_smallest_positive_and_all_zero_means_unweighted():
    np.testing.assert_array_equal(seed_sigma(np.array([0.0, 0.2, 0.1])), [0.1, 0.2, 0.1])
    assert seed_sigma(np.zeros(3)) is None


def _by_form(fits, method):
    return {f["form"]: f for f in fits if f["method"] == method}


@pytest.mark.parametrize("method", ["paper", "robust"])
def test_break_inside_the_range_is_found(draw_runs, method):
    runs = draw_runs("broken_amp", (1.0, 2e4, 0.1, 0.6), rng_seed=11)
    fits = _by_form(fit_runs(runs, axes=("D",), method=method, starts=6, bootstrap=0), method)
    claimed = [f for f in BREAK_FORMS if fits[f]["break_in_range"]]
    assert "broken_amp" in claimed, {f: fits[f]["break_reason"] for f in BREAK_FORMS}
    (f,) = fit_runs(runs, axes=("D",), method=method, forms=["broken_amp"], starts=6, bootstrap=15)
    assert abs(f["params"]["xc"] - 2e4) <= 4 * f["stderr"]["xc"]
    assert any(fits[k]["best"] for k in claimed)  # a claimed break beats both unbroken laws by AICc
    for name in ("power", "power_floor"):
        assert fits[name]["break_in_range"] is None


@pytest.mark.parametrize("xc", [5e7, 10.0])
@pytest.mark.parametrize("method", ["paper", "robust"])
def test_break_outside_the_range_is_not_claimed(draw_runs, method, xc):
    # far above the range the law is (xc/x)^0.5 throughout, far below it (xc/x)^0.2
    runs = draw_runs("broken_amp", (1.0, xc, 0.5, 0.2), rng_seed=12)
    fits = _by_form(fit_runs(runs, axes=("D",), method=method, starts=6, bootstrap=0), method)
    for name in BREAK_FORMS:
        assert fits[name]["break_in_range"] is False, (name, fits[name]["params"])
        assert fits[name]["break_reason"]


@pytest.mark.parametrize("method", ["paper", "robust"])
def test_floor_at_its_bound_is_reported(draw_runs, method):
    runs = draw_runs("power", (1e4, 0.3), noise=0.0)  # no floor
    fits = _by_form(fit_runs(runs, axes=("D",), method=method, forms=["power_floor"], bootstrap=0), method)
    f = fits["power_floor"]
    assert f["status"] == "ok" and f["at_bound"] == ["L_inf"]
    assert f["params"]["L_inf"] < 1e-3 * min(r["val_loss"] for r in runs)
    assert f["params"]["alpha"] == pytest.approx(0.3, abs=1e-4)


@pytest.mark.parametrize("method", ["paper", "robust"])
def test_a_real_floor_is_not_at_its_bound(draw_runs, method):
    runs = draw_runs("power_floor", (0.3, 5e3, 0.5), rng_seed=3)
    (f,) = fit_runs(runs, axes=("D",), method=method, forms=["power_floor"], starts=8, bootstrap=10)
    assert f["status"] == "ok" and f["at_bound"] == []


def test_too_few_points_and_no_aicc_are_statuses_not_crashes(draw_runs):
    runs = draw_runs("power", (1e4, 0.3), xs=[2500, 5000, 10000, 20000])
    fits = _by_form(fit_runs(runs, axes=("D",), method="both", starts=4, bootstrap=0), "paper")
    assert fits["power"]["status"] == "ok"
    assert fits["power_floor"]["status"].startswith("no AICc: n - k - 1 = 0")  # 4 points, 3 parameters
    assert fits["power_floor"]["params"] is not None
    assert fits["bnsl"]["status"] == "too few distinct D: 4 for 6 parameters" and fits["bnsl"]["params"] is None
    assert fits["bnsl"]["break_in_range"] is False


def test_degenerate_data_is_reported(draw_runs):
    runs = draw_runs("power", (1e4, 0.3), noise=0.0)
    for r in runs:
        r["val_loss"] = 0.7  # flat: x0 and alpha not determined together
    fits = fit_runs(runs, axes=("D",), method="both", forms=["power", "broken_amp"], starts=4, bootstrap=0)
    assert len(fits) == 4
    for method in ("paper", "robust"):
        by_form = _by_form(fits, method)
        assert by_form["power"]["params"]["alpha"] < 0.02  # as flat as a power law gets
        # both slopes 0: the break location does nothing, which is said instead of a number claimed
        assert by_form["broken_amp"]["status"] == "degenerate: xc without effect on the loss at the data"
        assert by_form["broken_amp"]["break_in_range"] is False


def test_single_x_groups_are_skipped_with_reason(draw_runs):
    runs = draw_runs("power", (1e4, 0.3))  # one N: along N there is no series
    skipped = []
    fits = fit_runs(runs, axes=("D", "N", "ND"), method="paper", skipped=skipped)
    assert {f["axis"] for f in fits} == {"D"}
    assert {(s["axis"], s["reason"]) for s in skipped} >= {("N", "a single N = 1288483")}
    assert any(s["axis"] == "ND" for s in skipped)

"""The forms against their analytic limits and each other (log form = log of the linear form)."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.fitting.forms import FORMS, FORMS_1D, FORMS_2D


def local_slope(f, x, h=1e-4):
    """-d log f / d log x by central differences of the linear-space function."""
    return -(np.log(f(x * np.exp(h))) - np.log(f(x * np.exp(-h)))) / (2 * h)


def test_broken_power_law_slopes_are_alpha1_below_and_alpha2_above_the_break():
    xc, a1, a2 = 2e4, 0.6, 0.15
    f = lambda x: FORMS["broken"].linear(x, xc, a1, a2)  # noqa: E731
    assert local_slope(f, xc * 1e-6) == pytest.approx(a1, abs=1e-5)
    assert local_slope(f, xc * 1e6) == pytest.approx(a2, abs=1e-5)
    # at the break: L = 2^(a1 - a2) and the slope is the mean of the two
    assert f(np.array(xc)) == pytest.approx(2 ** (a1 - a2))
    assert local_slope(f, xc) == pytest.approx((a1 + a2) / 2, abs=1e-6)
    g = lambda x: FORMS["broken_amp"].linear(x, 3.0, xc, a1, a2)  # noqa: E731
    assert g(np.array(5e3)) == pytest.approx(3.0 * f(np.array(5e3)))


def test_bnsl_slopes_and_floor():
    L_inf, A, a1, a2, xc, s = 0.0, 5.0, 0.2, 0.7, 3e4, 0.5
    f = lambda x: FORMS["bnsl"].linear(x, L_inf, A, a1, a2, xc, s)  # noqa: E731
    assert local_slope(f, xc * 1e-8) == pytest.approx(a1, abs=1e-4)
    assert local_slope(f, xc * 1e8) == pytest.approx(a2, abs=1e-4)
    # far below the break it is A x^-alpha1, and a floor is approached from above
    assert f(np.array(1.0)) == pytest.approx(A * (1 + (1 / xc) ** (1 / s)) ** (-(a2 - a1) * s))
    floor = FORMS["bnsl"].linear(np.array(1e30), 0.25, A, a1, a2, xc, s)
    assert floor == pytest.approx(0.25, rel=1e-9)
    # a sharper break: the slope changes over a narrower range of x
    soft = local_slope(lambda x: FORMS["bnsl"].linear(x, 0, A, a1, a2, xc, 2.0), xc * 10)
    sharp = local_slope(lambda x: FORMS["bnsl"].linear(x, 0, A, a1, a2, xc, 0.1), xc * 10)
    assert abs(sharp - a2) < abs(soft - a2)


def test_kaplan_limits():
    aN, aD1, aD2, Nc, Dc = 0.3, 0.6, 0.2, 1e6, 2e4
    f = FORMS["kaplan"].linear
    big = 1e30
    # infinite model: the data term alone, slope aD1 below D_c and aD2 above
    assert local_slope(lambda D: f((np.full_like(D, big), D), aN, aD1, aD2, Nc, Dc), Dc * 1e-6) == pytest.approx(
        aD1, abs=1e-5
    )
    assert local_slope(lambda D: f((np.full_like(D, big), D), aN, aD1, aD2, Nc, Dc), Dc * 1e6) == pytest.approx(
        aD2, abs=1e-5
    )
    # infinite data: (N_c/N)^alpha_N
    N = np.array([3e5, 3e7])
    np.testing.assert_allclose(f((N, np.full(2, big)), aN, aD1, aD2, Nc, Dc), (Nc / N) ** aN, rtol=1e-9)


def test_hoffmann_is_floor_plus_power_in_N_plus_broken_law_in_D():
    p = (0.1, 0.3, 0.2, 0.7, 1e5, 2e4)
    N, D = np.array([3e5, 1e8]), np.array([5e3, 1e5])
    expect = 0.1 + (1e5 / N) ** 0.3 + FORMS["broken"].linear(D, 2e4, 0.2, 0.7)
    np.testing.assert_allclose(FORMS["hoffmann"].linear((N, D), *p), expect, rtol=1e-12)


PARAMS = {
    "power": (1e4, 0.3),
    "power_floor": (0.3, 5e3, 0.5),
    "broken": (2e4, 0.6, 0.2),
    "broken_amp": (0.5, 2e4, 0.6, 0.15),
    "bnsl": (0.1, 5.0, 0.2, 0.6, 2e4, 0.5),
    "kaplan": (0.3, 0.6, 0.2, 1e6, 2e4),
    "hoffmann": (0.1, 0.3, 0.2, 0.7, 1e5, 2e4),
}


@pytest.mark.parametrize("name", FORMS_1D + FORMS_2D)
def test_log_form_is_log_of_linear_form_and_guess_is_inside_bounds(name):
    form = FORMS[name]
    x = np.geomspace(2500, 160000, 7)
    if form.ndim == 2:
        x = np.stack([np.geomspace(3e5, 8e7, 7), x])
    p = PARAMS[name]
    y = form.linear(x, *p)
    np.testing.assert_allclose(form.log(x, *p), np.log(y), rtol=1e-12, atol=1e-12)
    lo, hi = form.bounds()
    assert np.all((np.array(p) >= lo) & (np.array(p) <= hi))
    g = np.array(form.guess(x, y), float)
    assert g.shape == (form.k,) and np.all(np.isfinite(g))
    assert np.all((g >= lo) & (g <= hi)), (name, g)


def test_log_forms_stay_finite_where_linear_overflows():
    x = np.array([1e3, 1e6])
    with np.errstate(over="ignore"):
        assert not np.all(np.isfinite(FORMS["broken"].linear(x, 1e300, 4.0, 3.0)))
    assert np.all(np.isfinite(FORMS["broken"].log(x, 1e300, 4.0, 3.0)))
    assert np.all(np.isfinite(FORMS["power_floor"].log(x, 0.0, 1e4, 0.3)))  # floor exactly 0

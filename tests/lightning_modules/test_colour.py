"""Reflectance and CIELAB colour against analytic limits and published numbers."""

import numpy as np
import pytest

from lightning_modules.colour import VISIBLE_EV, VISIBLE_NM, delta_e, lab_colour, lab_from_reflectance, reflectance


def test_reflectance_of_simple_media():
    w = np.array([1.0, 2.0])
    # no Drude term: eps = 4 gives n = 2, R = (1/3)^2; eps = -1 gives n = i, R = 1
    assert reflectance(np.full(2, 4 + 0j), 0.0, w) == pytest.approx(1 / 9)
    assert reflectance(np.full(2, -1 + 0j), 0.0, w) == pytest.approx(1.0)
    assert reflectance(np.ones(2, complex), 0.0, w) == pytest.approx(0.0, abs=1e-15)


def test_drude_metal_reflects_below_and_transmits_far_above_the_plasma_frequency():
    w = np.linspace(0.0, 1.0, 11)
    r = reflectance(np.ones(11, complex), 10.0, w)
    assert r[0] == 1.0 and (r > 0.97).all()  # w << w_p: a mirror
    nearly_undamped = reflectance(np.ones(10, complex), 10.0, w[1:], gamma=1e-5)
    assert (nearly_undamped > 0.9999).all()
    far = reflectance(np.ones(1, complex), 2.0, np.array([20.0]))
    assert far[0] < 1e-4  # eps ~ 1 - (2/20)^2: almost vacuum


def test_flat_reflectances_are_the_d65_white_and_its_greys():
    lab = lab_from_reflectance(np.ones(VISIBLE_NM.size))
    assert lab == pytest.approx([100.0, 0.0, 0.0], abs=1e-6)
    grey = lab_from_reflectance(np.full(VISIBLE_NM.size, 0.18))
    assert grey == pytest.approx([116 * 0.18 ** (1 / 3) - 16, 0.0, 0.0], abs=1e-6)  # L* = 49.496


def test_colour_agrees_with_colour_sciences_own_integration():
    import colour

    r = 0.3 + 0.6 / (1 + np.exp(-(VISIBLE_NM - 560) / 20))  # an orange-ish reflector
    sd = colour.SpectralDistribution(dict(zip(VISIBLE_NM, r, strict=True)))
    shape = colour.SpectralShape(380, 780, 5)
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(shape)
    xyz = colour.sd_to_XYZ(sd, cmfs, colour.SDS_ILLUMINANTS["D65"].copy().align(shape)) / 100
    white = colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"]
    ref = colour.XYZ_to_Lab(xyz, illuminant=white)
    assert lab_from_reflectance(r) == pytest.approx(ref, abs=0.05)
    assert ref[1] > 5 and ref[2] > 20


def test_metal_colours_from_eps():
    omega = np.linspace(0, 20, 2001)
    vacuum = np.ones((2, omega.size), complex)
    lab = lab_colour(vacuum, np.array([15.0, 2.6]), omega)
    # Al-like free-electron metal: a bright, nearly neutral mirror
    assert lab[0, 0] > 95 and abs(lab[0, 1]) < 2 and abs(lab[0, 2]) < 2
    # plasma edge in the blue (~2.6 eV, 477 nm): yellow, like gold
    assert lab[1, 2] > 20
    assert delta_e(lab[0], lab[0]) == 0.0
    assert lab_colour(vacuum[0], 15.0, omega) == pytest.approx(lab[0])
    with pytest.raises(ValueError, match="does not cover the visible"):
        lab_colour(vacuum[:, :50], np.array([1.0, 1.0]), omega[:50])


def test_ciede2000_against_sharma_et_al_2005():
    # first pair of the CIEDE2000 test data (Sharma, Wu, Dalal, Color Res. Appl. 30, 21 (2005))
    d = delta_e(np.array([50.0, 2.6772, -79.7751]), np.array([50.0, 0.0, -82.7485]))
    assert float(d) == pytest.approx(2.0425, abs=1e-4)
    assert VISIBLE_EV.max() == pytest.approx(3.263, abs=1e-3)

"""Colour of a metal from its dielectric function (docs/reference.md, section The task).

eps_total = eps_inter + eps_intra(w_D, gamma),
eps_intra = -w_D^2 / (w^2 + gamma^2) + i w_D^2 gamma / (w (w^2 + gamma^2));
normal-incidence reflectance R = |(n - 1) / (n + 1)|^2 with n = sqrt(eps_total) (principal root, Re n >= 0);
XYZ = k sum R S xbar (ybar, zbar) over 380-780 nm in 5 nm steps with the CIE 1931 2 degree observer and
the D65 illuminant (tables from colour-science), k = 100 / sum S ybar; CIELAB relative to the white of
the same weights (so R = 1 is L* = 100, a* = b* = 0). Delta E is CIEDE2000 (colour.delta_E).
Arrays are numpy; torch tensors are accepted and converted.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

HC_EV_NM = 1239.84198  # h c in eV nm
VISIBLE_NM = np.arange(380.0, 781.0, 5.0)
VISIBLE_EV = HC_EV_NM / VISIBLE_NM
OBSERVER = "CIE 1931 2 Degree Standard Observer"
DELTA_E_METHOD = "CIE 2000"


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu()
        a = a.float() if not a.is_complex() else a
        a = a.numpy()
    return np.asarray(a)


def eps_intra(omega, drude, gamma: float = 0.1) -> np.ndarray:
    """Drude term (..., P) of w_D (...) on omega (P,) eV; omega must be > 0."""
    w = _np(omega).astype(np.float64)
    wd2 = np.square(_np(drude).astype(np.float64))[..., None]
    den = w * w + gamma * gamma
    return -wd2 / den + 1j * wd2 * gamma / (w * den)


def reflectance(eps_inter, drude, omega, gamma: float = 0.1) -> np.ndarray:
    """Normal-incidence reflectance (..., P) of eps_inter (..., P) complex plus the Drude term of w_D (...).

    At w = 0 the Drude term diverges: R = 1 there when w_D > 0.
    """
    w = _np(omega).astype(np.float64)
    eps = _np(eps_inter).astype(np.complex128)
    drude = _np(drude).astype(np.float64)
    zero = w <= 0
    w_safe = np.where(zero, 1.0, w)
    total = eps + eps_intra(w_safe, drude, gamma)
    n = np.sqrt(total)
    r = np.abs((n - 1) / (n + 1)) ** 2
    if zero.any():
        r_at_zero = np.abs((np.sqrt(eps) - 1) / (np.sqrt(eps) + 1)) ** 2
        r = np.where(zero, np.where(drude[..., None] > 0, 1.0, r_at_zero), r)
    return r


@lru_cache(maxsize=1)
def _weights() -> tuple[np.ndarray, np.ndarray]:
    """(L, 3) weights S(l) xbar, ybar, zbar(l) * k on VISIBLE_NM and the white point XYZ/100 (3,)."""
    import colour

    shape = colour.SpectralShape(380, 780, 5)
    cmfs = colour.MSDS_CMFS[OBSERVER].copy().align(shape).values
    illum = colour.SDS_ILLUMINANTS["D65"].copy().align(shape).values
    w = illum[:, None] * cmfs
    w = w / w[:, 1].sum()  # k: a perfect reflector has Y = 1
    return w, w.sum(axis=0)


def lab_from_reflectance(r) -> np.ndarray:
    """CIELAB (..., 3) of reflectances (..., L) sampled on VISIBLE_NM."""
    import colour

    w, white = _weights()
    xyz = _np(r).astype(np.float64) @ w
    return colour.XYZ_to_Lab(xyz, illuminant=colour.XYZ_to_xy(white))


def _interp_last(values: np.ndarray, x: np.ndarray, xq: np.ndarray) -> np.ndarray:
    """Linear interpolation of values (..., P) on increasing x (P,) at xq (Q,)."""
    if xq.min() < x[0] or xq.max() > x[-1]:
        raise ValueError(
            f"the grid {x[0]:.3g}-{x[-1]:.3g} eV does not cover the visible {xq.min():.3g}-{xq.max():.3g} eV"
        )
    j = np.clip(np.searchsorted(x, xq, side="right") - 1, 0, x.size - 2)
    t = (xq - x[j]) / (x[j + 1] - x[j])
    return values[..., j] * (1 - t) + values[..., j + 1] * t


def lab_colour(eps_inter, drude, omega, gamma: float = 0.1) -> np.ndarray:
    """CIELAB (..., 3) of a metal: eps_inter (..., P) complex on omega (P,) eV, Drude frequency (...) eV."""
    eps = _interp_last(_np(eps_inter).astype(np.complex128), _np(omega).astype(np.float64), VISIBLE_EV)
    return lab_from_reflectance(reflectance(eps, drude, VISIBLE_EV, gamma))


def delta_e(lab1, lab2) -> np.ndarray:
    """CIEDE2000 colour difference (...) of two CIELAB arrays (..., 3)."""
    import colour

    return np.asarray(colour.delta_E(_np(lab1), _np(lab2), method=DELTA_E_METHOD))

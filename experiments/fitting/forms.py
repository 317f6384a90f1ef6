"""The scaling-law forms: loss L as a function of x = D or N (1-D) or of (N, D) (2-D).

Each form has its parameter names (the JSON schema's), a function in linear space (used by the
published procedure), a numerically stable log-space version (used by the robust fit and for
plotting), bounds, and a deterministic initial guess from the data.

Parameter kinds fix bounds and how the robust fit moves a parameter:
  exponent  linear, bounded (alpha, alpha1, ...)
  level     linear, >= 0 (L_inf, L0): a floor may sit on its bound 0
  scale     > 0, moved in log space by the robust fit (x0, xc, A, N_c, D_c)
  shape     > 0, in [0.01, 100], log space (BNSL sharpness)

BNSL with one break (Caballero et al. 2022, arXiv 2210.14891), y = a + b x^-c0 (1 + (x/d1)^(1/f1))^(-c1 f1),
is written in the schema's names: L_inf = a, A = b, alpha1 = c0 (slope below the break),
alpha2 = c0 + c1 (slope above it), xc = d1, sharpness = f1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EXPONENT = (0.0, 5.0)  # exponents of plain power laws and of N
SLOPE = (-2.0, 5.0)  # slopes on either side of a break (a loss may rise after a break)
SHAPE = (0.01, 100.0)
BREAKS = {"xc", "D_c"}  # parameters that locate a break
LOG_KINDS = {"scale", "shape"}


@dataclass(frozen=True)
class Form:
    name: str
    params: tuple[str, ...]
    kinds: tuple[str, ...]
    linear: Callable  # f(x, *p) -> L ; x is (n,) or, for 2-D, (2, n) = (N, D)
    log: Callable  # log f(x, *p), stable for extreme parameters
    guess: Callable  # guess(x, y) -> tuple of parameters (deterministic)
    ndim: int = 1
    exponent_bounds: tuple[tuple[float, float] | None, ...] = ()  # per parameter; ignored for other kinds

    @property
    def k(self) -> int:
        return len(self.params)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounds in linear (natural) parameter space."""
        lo, hi = [], []
        for i, kind in enumerate(self.kinds):
            if kind == "exponent":
                b = (self.exponent_bounds[i] if self.exponent_bounds else None) or EXPONENT
            else:
                b = {"level": (0.0, np.inf), "scale": (0.0, np.inf), "shape": SHAPE}[kind]
            lo.append(b[0])
            hi.append(b[1])
        return np.array(lo, float), np.array(hi, float)

    def to_internal(self, p) -> np.ndarray:
        """Natural parameters -> the fitting space of the robust method (log for scales, shapes)."""
        with np.errstate(divide="ignore"):
            return np.array([np.log(v) if k in LOG_KINDS else v for v, k in zip(p, self.kinds, strict=True)], float)

    def to_natural(self, q) -> np.ndarray:
        return np.array([np.exp(v) if k in LOG_KINDS else v for v, k in zip(q, self.kinds, strict=True)], float)

    def predict(self, x, params: dict) -> np.ndarray:
        """L at x from a parameter dict (via the log form: no overflow)."""
        return np.exp(self.log(np.asarray(x, float), *[params[p] for p in self.params]))


def _lae(a, b):
    return np.logaddexp(a, b)


def _log(v):
    with np.errstate(divide="ignore"):
        return np.log(v)


# ---- 1-D forms -------------------------------------------------------------------------------


def power(x, x0, alpha):
    return (x0 / x) ** alpha


def power_log(x, x0, alpha):
    return alpha * (_log(x0) - np.log(x))


def power_floor(x, L_inf, x0, alpha):
    return L_inf + (x0 / x) ** alpha


def power_floor_log(x, L_inf, x0, alpha):
    return _lae(_log(L_inf), power_log(x, x0, alpha))


def broken(x, xc, alpha1, alpha2):
    return (xc / x) ** alpha2 * (1 + xc / x) ** (alpha1 - alpha2)


def broken_log(x, xc, alpha1, alpha2):
    u = _log(xc) - np.log(x)  # log(xc/x)
    return alpha2 * u + (alpha1 - alpha2) * _lae(0.0, u)


def broken_amp(x, A, xc, alpha1, alpha2):
    return A * broken(x, xc, alpha1, alpha2)


def broken_amp_log(x, A, xc, alpha1, alpha2):
    return _log(A) + broken_log(x, xc, alpha1, alpha2)


def bnsl(x, L_inf, A, alpha1, alpha2, xc, sharpness):
    return L_inf + A * x ** (-alpha1) * (1 + (x / xc) ** (1 / sharpness)) ** (-(alpha2 - alpha1) * sharpness)


def bnsl_log(x, L_inf, A, alpha1, alpha2, xc, sharpness):
    lx = np.log(x)
    soft = _lae(0.0, (lx - _log(xc)) / sharpness)
    return _lae(_log(L_inf), _log(A) - alpha1 * lx - (alpha2 - alpha1) * sharpness * soft)


# ---- 2-D forms over (N, D) ---------------------------------------------------------------------


def kaplan(ND, alpha_N, alpha_D1, alpha_D2, N_c, D_c):
    N, D = ND
    return ((N_c / N) ** (alpha_N / alpha_D2) + (D_c / D) * (1 + D_c / D) ** (alpha_D1 / alpha_D2 - 1)) ** alpha_D2


def kaplan_log(ND, alpha_N, alpha_D1, alpha_D2, N_c, D_c):
    N, D = ND
    u = _log(D_c) - np.log(D)
    n_term = alpha_N / alpha_D2 * (_log(N_c) - np.log(N))
    d_term = u + (alpha_D1 / alpha_D2 - 1) * _lae(0.0, u)
    return alpha_D2 * _lae(n_term, d_term)


def hoffmann(ND, L0, alpha_N, alpha_D1, alpha_D2, N_c, D_c):
    N, D = ND
    return L0 + (N_c / N) ** alpha_N + (D_c / D) ** alpha_D2 * (1 + D_c / D) ** (alpha_D1 - alpha_D2)


def hoffmann_log(ND, L0, alpha_N, alpha_D1, alpha_D2, N_c, D_c):
    N, D = ND
    return _lae(_lae(_log(L0), power_log(N, N_c, alpha_N)), broken_log(D, D_c, alpha_D1, alpha_D2))


# ---- deterministic initial guesses ------------------------------------------------------------


def _slope(x, y) -> float:
    """Minus the slope of log y against log x (an exponent estimate), kept inside (0.02, 3)."""
    lx, ly = np.log(x), np.log(y)
    if np.ptp(lx) == 0:
        return 0.3
    return float(np.clip(-np.polyfit(lx, ly, 1)[0], 0.02, 3.0))


def _halves(x, y):
    order = np.argsort(x)
    x, y = np.asarray(x)[order], np.asarray(y)[order]
    m = (len(x) + 1) // 2
    return (x[:m], y[:m]), (x[-m:], y[-m:])


def guess_power(x, y):
    a = _slope(x, y)
    return float(np.exp(np.mean(np.log(x)) + np.mean(np.log(y)) / a)), a


def guess_power_floor(x, y):
    floor = 0.5 * float(np.min(y))
    return (floor, *guess_power(x, np.asarray(y) - floor))


def guess_broken(x, y):
    (xl, yl), (xh, yh) = _halves(x, y)
    return guess_power(x, y)[0], _slope(xl, yl), _slope(xh, yh)


def guess_broken_amp(x, y):
    (xl, yl), (xh, yh) = _halves(x, y)
    a1, a2 = _slope(xl, yl), _slope(xh, yh)
    xc = float(np.exp(np.mean(np.log(x))))
    return float(np.exp(np.mean(np.log(y)))) / 2 ** (a1 - a2), xc, a1, a2


def guess_bnsl(x, y):
    floor = 0.5 * float(np.min(y))
    (xl, yl), (xh, yh) = _halves(x, np.asarray(y) - floor)
    a1, a2 = _slope(xl, yl), _slope(xh, yh)
    A = float(np.exp(np.mean(np.log(yl)) + a1 * np.mean(np.log(xl))))
    return floor, A, a1, a2, float(np.exp(np.mean(np.log(x)))), 1.0


def _slices(ND, y):
    """(N, loss) at the largest D and (D, loss) at the largest N: where the other term is smallest."""
    N, D = ND
    at_D, at_N = D == D.max(), N == N.max()
    return (N[at_D], y[at_D]), (D[at_N], y[at_N])


def guess_kaplan(ND, y):
    (n, yn), (d, yd) = _slices(ND, np.asarray(y))
    N_c, a_N = guess_power(n, yn)
    D_c, a_D1, a_D2 = guess_broken(d, yd)
    return a_N, a_D1, max(a_D2, 0.05), N_c, D_c


def guess_hoffmann(ND, y):
    (n, yn), (d, yd) = _slices(ND, np.asarray(y))
    L0 = 0.25 * float(np.min(y))
    N_c, a_N = guess_power(n, yn - L0 - 0.5 * yn.min())  # the D term at the largest D: about half the minimum
    D_c, a_D1, a_D2 = guess_broken(d, yd - L0 - 0.5 * yd.min())
    return L0, a_N, a_D1, a_D2, N_c, D_c


_E, _S = EXPONENT, SLOPE
FORMS: dict[str, Form] = {
    f.name: f
    for f in (
        Form("power", ("x0", "alpha"), ("scale", "exponent"), power, power_log, guess_power),
        Form(
            "power_floor",
            ("L_inf", "x0", "alpha"),
            ("level", "scale", "exponent"),
            power_floor,
            power_floor_log,
            guess_power_floor,
        ),
        Form(
            "broken",
            ("xc", "alpha1", "alpha2"),
            ("scale", "exponent", "exponent"),
            broken,
            broken_log,
            guess_broken,
            exponent_bounds=(None, _S, _S),
        ),
        Form(
            "broken_amp",
            ("A", "xc", "alpha1", "alpha2"),
            ("scale", "scale", "exponent", "exponent"),
            broken_amp,
            broken_amp_log,
            guess_broken_amp,
            exponent_bounds=(None, None, _S, _S),
        ),
        Form(
            "bnsl",
            ("L_inf", "A", "alpha1", "alpha2", "xc", "sharpness"),
            ("level", "scale", "exponent", "exponent", "scale", "shape"),
            bnsl,
            bnsl_log,
            guess_bnsl,
            exponent_bounds=(None, None, _S, _S, None, None),
        ),
        Form(
            "kaplan",
            ("alpha_N", "alpha_D1", "alpha_D2", "N_c", "D_c"),
            ("exponent", "exponent", "exponent", "scale", "scale"),
            kaplan,
            kaplan_log,
            guess_kaplan,
            ndim=2,
            exponent_bounds=(_E, _S, (0.01, 5.0), None, None),
        ),
        Form(
            "hoffmann",
            ("L0", "alpha_N", "alpha_D1", "alpha_D2", "N_c", "D_c"),
            ("level", "exponent", "exponent", "exponent", "scale", "scale"),
            hoffmann,
            hoffmann_log,
            guess_hoffmann,
            ndim=2,
            exponent_bounds=(None, _E, _S, _S, None, None),
        ),
    )
}
FORMS_1D = tuple(n for n, f in FORMS.items() if f.ndim == 1)
FORMS_2D = tuple(n for n, f in FORMS.items() if f.ndim == 2)
BROKEN_FORMS = ("broken", "broken_amp", "bnsl")
UNBROKEN_FORMS = ("power", "power_floor")

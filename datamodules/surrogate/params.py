"""Tight-binding parameters of the surrogate and where each one comes from (units: eV, Å).

- On-site energies: the valence s, p and d eigenvalues of the free atom from pymatgen's
  `Element.atomic_orbitals` (NIST atomic reference data: LDA total-energy calculations of the
  neutral atoms, Kotochigova et al., Phys. Rev. A 55, 191 (1997)), converted from Hartree to eV.
  Where the ground-state configuration leaves the valence p level empty (alkali, alkaline-earth,
  transition metals) the table has no p eigenvalue; it is set to eps_p = eps_s + KAPPA_SP |eps_s|,
  with KAPPA_SP = 0.65 the ratio (eps_p - eps_s)/|eps_s| of the group-13 metals Al, Ga, In, Tl, where
  both levels are tabulated (0.64-0.69). A missing valence s level (Pd, 4d10 5s0) is the mean of the
  neighbours in its period (Rh, Ag).
- Two-centre hoppings: Harrison's universal forms, V_llm = eta_llm hbar^2/(m d^2) for s, p;
  V_ldm = eta_ldm hbar^2 r_d^(3/2)/(m d^(7/2)) for s-d, p-d; V_ddm = eta_ddm hbar^2 r_d^3/(m d^5),
  hbar^2/m = 7.62 eV Å^2. sp coefficients: W. A. Harrison, Elementary Electronic Structure (World
  Scientific, 1999); d coefficients: W. A. Harrison and S. Froyen, Phys. Rev. B 21, 3214 (1980)
  (eta_dd = -45/pi, 30/pi, -15/(2 pi); eta_sd sigma = -3.11, eta_pd = -2.82, +1.35).
  d radii r_d: after Harrison's Solid State Table (Electronic Structure and the Properties of Solids,
  1980), rounded to 0.01 Å; between two atoms the geometric mean is used.
- Distance range: each hopping is multiplied by a smooth cos^2 taper that is 1 below
  TAPER_START (r_i + r_j) and 0 beyond TAPER_END (r_i + r_j); r are metallic radii (pymatgen,
  falling back to its empirical atomic radius where no metallic radius is tabulated).
- Electron count: the valence s and p electrons of the outer shell plus, on transition metals, the
  (n-1)d electrons of the ground-state configuration (pymatgen `full_electronic_structure`).
Transition metals (groups 3-11, with La) carry s, p and d orbitals; every other atom s and p.
Spin is degenerate (non-magnetic model): every band holds 2 electrons.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

HARTREE = 27.211386  # eV
HBAR2_M = 7.62  # hbar^2 / m_e in eV Å^2
E2 = 14.399645  # e^2 in eV Å (Gaussian units)
SPIN = 2.0  # spin degeneracy of every band

KAPPA_SP = 0.65
TAPER_START, TAPER_END = 1.25, 1.6  # in units of r_i + r_j

ETA = {  # dimensionless coefficients of the universal forms
    "sss": -1.32,
    "sps": 1.42,
    "pps": 2.22,
    "ppp": -0.63,
    "sds": -3.11,
    "pds": -2.82,
    "pdp": 1.35,
    "dds": -45 / np.pi,
    "ddp": 30 / np.pi,
    "ddd": -15 / (2 * np.pi),
}

R_D = {  # Å
    "Sc": 1.24, "Ti": 1.08, "V": 0.98, "Cr": 0.90, "Mn": 0.86, "Fe": 0.80, "Co": 0.76, "Ni": 0.71,
    "Cu": 0.67, "Y": 1.58, "Zr": 1.41, "Nb": 1.28, "Mo": 1.20, "Tc": 1.11, "Ru": 1.05, "Rh": 0.99,
    "Pd": 0.94, "Ag": 0.89, "La": 1.58, "Hf": 1.44, "Ta": 1.34, "W": 1.27, "Re": 1.20, "Os": 1.13,
    "Ir": 1.08, "Pt": 1.04, "Au": 1.01,
}  # fmt: skip

# default element pool of the generator
ALKALI = ("Li", "Na", "K", "Rb", "Cs")
ALKALINE_EARTH = ("Be", "Mg", "Ca", "Sr", "Ba")
TRANSITION = tuple(s for s in R_D if s != "Tc")
# Downward shift (eV) of the free-atom LDA d level of the noble metals. The LDA eigenvalue puts
# their filled d shell only ~1 eV below the s level, so in the solid the d band reaches E_F and
# the spectrum starts at 0 eV. One shift per element was chosen (in 0.5 eV steps) so that the
# interband absorption edge of the fcc crystal at the default settings lies where the measured
# optical constants put it (P. B. Johnson and R. W. Christy, Phys. Rev. B 6, 4370 (1972):
# Cu 2.1, Ag 3.9, Au 2.4 eV; photoemission places the d-band top about as far below E_F).
# The shifted levels (Cu -15.0, Ag -14.1, Au -13.8 eV) lie between the LDA values and the deeper
# Hartree-Fock levels of Harrison's Solid State Table. Other transition metals are unshifted.
D_SHIFT = {"Cu": -9.5, "Ag": -6.0, "Au": -5.5}

POST_TRANSITION = ("Zn", "Cd", "Hg", "Al", "Ga", "In", "Tl", "Sn", "Pb", "Bi")
METALS = ALKALI + ALKALINE_EARTH + TRANSITION + POST_TRANSITION


class UnsupportedElement(ValueError):
    """An element the surrogate has no parameters for."""


@dataclass(frozen=True)
class Species:
    symbol: str
    z: int
    onsite: tuple[float, ...]  # (eps_s, eps_p, eps_d) or (eps_s, eps_p), eV
    n_orbitals: int  # 4 (s, p) or 9 (s, p, d)
    valence: int  # electrons
    radius: float  # Å
    r_d: float  # Å (0 without d orbitals)


def _level(table: dict, n: int, l: str) -> float | None:
    v = table.get(f"{n}{l}")
    return None if v is None else v * HARTREE


@cache
def species(z: int) -> Species:
    """Parameters of element z; UnsupportedElement for f-block elements and Z > 86."""
    from pymatgen.core import Element

    el = Element.from_Z(int(z))
    sym = el.symbol
    if z > 86 or (58 <= z <= 71):
        raise UnsupportedElement(f"element {sym} (Z={z}) is not supported by the surrogate (no f orbitals)")
    config = el.full_electronic_structure
    n_s = max(n for n, l, _ in config if l in "sp")  # outer shell
    if sym == "Pd":
        n_s = 5
    table = el.atomic_orbitals or {}
    eps_s = _level(table, n_s, "s")
    if eps_s is None:  # Pd: interpolate the period's neighbours
        eps_s = 0.5 * (species(z - 1).onsite[0] + species(z + 1).onsite[0])
    eps_s = float(eps_s)
    eps_p = _level(table, n_s, "p")
    if eps_p is None:
        eps_p = eps_s + KAPPA_SP * abs(eps_s)
    has_d = sym in R_D
    valence = sum(c for n, l, c in config if n == n_s and l in "sp")
    onsite: tuple[float, ...] = (eps_s, eps_p)
    if has_d:
        valence += sum(c for n, l, c in config if n == n_s - 1 and l == "d")
        eps_d = float(_level(table, n_s - 1, "d") or 0.0) + D_SHIFT.get(sym, 0.0)  # every d metal has it
        onsite = (eps_s, eps_p, eps_d)
    radius = el.metallic_radius if sym not in ("H",) and _has_metallic(el) else el.atomic_radius
    if radius is None:
        raise UnsupportedElement(f"element {sym} (Z={z}) has no tabulated radius")
    return Species(sym, int(z), onsite, 9 if has_d else 4, int(valence), float(radius), R_D.get(sym, 0.0))


def _has_metallic(el) -> bool:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            r = el.metallic_radius
        except (AttributeError, ValueError):
            return False
    return r is not None and float(r) > 0


def taper(d: np.ndarray, r0: np.ndarray) -> np.ndarray:
    """Smooth cutoff: 1 below TAPER_START r0, cos^2 down to 0 at TAPER_END r0."""
    x = np.clip((d / r0 - TAPER_START) / (TAPER_END - TAPER_START), 0.0, 1.0)
    return np.cos(0.5 * np.pi * x) ** 2


def hoppings(d: np.ndarray, r0: np.ndarray, rd_i: np.ndarray, rd_j: np.ndarray) -> dict[str, np.ndarray]:
    """Harrison two-centre integrals (eV) for bond lengths d; r_d of the two atoms (0: none)."""
    f = taper(d, r0) * HBAR2_M
    out = {k: ETA[k] * f / d**2 for k in ("sss", "sps", "pps", "ppp")}
    rd_mix_i = rd_i**1.5 / d**3.5
    rd_mix_j = rd_j**1.5 / d**3.5
    for k in ("sds", "pds", "pdp"):
        out[k + "_i"] = ETA[k] * f * rd_mix_i  # d orbital on atom i
        out[k + "_j"] = ETA[k] * f * rd_mix_j  # d orbital on atom j
    rd3 = (rd_i * rd_j) ** 1.5 / d**5
    for k in ("dds", "ddp", "ddd"):
        out[k] = ETA[k] * f * rd3
    return out

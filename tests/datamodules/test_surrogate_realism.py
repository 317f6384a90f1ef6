"""The surrogate's elemental metals against published plasma frequencies and interband onsets."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.surrogate.hamiltonian import build_model
from datamodules.surrogate.optics import OpticsSettings, compute_optics
from datamodules.surrogate.prototypes import PROTOTYPES, structure_arrays

# Plasma frequencies hbar w_p, eV. K, Na, Al: measured volume plasmon energies (electron energy
# loss) tabulated in C. Kittel, Introduction to Solid State Physics (8th ed., ch. 14): 3.72, 5.71,
# 15.3 eV (little core screening in these metals, so close to the Drude frequency). Cu, Ag, Au:
# Drude frequencies of the free-carrier part from fits to optical data, ~8.8, ~9.0, ~9.0 eV, as
# collected by M. G. Blaber, M. D. Arnold and M. J. Ford, J. Phys.: Condens. Matter 22, 143201
# (2010). The test allows a factor 1.5, so the rounding does not matter.
PUBLISHED_DRUDE = {"K": 3.72, "Na": 5.71, "Cu": 8.8, "Ag": 9.0, "Au": 9.0, "Al": 15.3}
# Interband absorption edges (d band -> Fermi level), eV, read off the optical constants of
# P. B. Johnson and R. W. Christy, Phys. Rev. B 6, 4370 (1972). The d-level shift of params.D_SHIFT
# was chosen against these edges, so this test guards the fit; the Drude test above is independent.
PUBLISHED_ONSET = {"Cu": 2.1, "Ag": 3.9, "Au": 2.4}


def _optics(el):
    proto = PROTOTYPES["A2-bcc" if el in ("K", "Na") else "A1-fcc"]
    lat, z, cart = structure_arrays(proto, (el,), 0.0, None)
    return compute_optics(build_model(lat, z, cart), OpticsSettings(), numbers=z)


@pytest.fixture(scope="module")
def optics():
    return {el: _optics(el) for el in PUBLISHED_DRUDE}


def test_drude_frequencies_within_factor_1_5_and_in_published_order(optics):
    for el, ref in PUBLISHED_DRUDE.items():
        assert 1 / 1.5 < optics[el].drude / ref < 1.5, (el, optics[el].drude, ref)
    # order of the clearly distinct groups: K < Na < noble metals < Al (the nobles are within 3 %)
    w = {el: o.drude for el, o in optics.items()}
    assert w["K"] < w["Na"] < min(w["Cu"], w["Ag"], w["Au"]) <= max(w["Cu"], w["Ag"], w["Au"]) < w["Al"]


def interband_onset(o, lo=0.3, hi=10.0) -> float:
    """First energy in [lo, hi] eV where the averaged Im eps reaches half its maximum there."""
    im = o.eps_im.mean(0)
    sel = (o.omega > lo) & (o.omega < hi)
    return float(o.omega[sel][np.argmax(im[sel] >= 0.5 * im[sel].max())])


@pytest.mark.parametrize("el", sorted(PUBLISHED_ONSET))
def test_noble_metal_interband_onsets_within_half_an_ev(optics, el):
    assert abs(interband_onset(optics[el]) - PUBLISHED_ONSET[el]) < 0.5

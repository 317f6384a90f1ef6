"""The TB surrogate against independent facts: symmetry, cell choice, KK, sum rule, closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.surrogate.hamiltonian import TBModel, build_model
from datamodules.surrogate.optics import OpticsSettings, compute_optics, kpoints
from datamodules.surrogate.params import E2, SPIN
from datamodules.surrogate.prototypes import PROTOTYPES, structure_arrays

FAST = OpticsSettings(k_spacing=0.25, k_spacing_sp=0.25, symmetry=False)


def _crystal(name, elements, strain=0.0):
    p = PROTOTYPES[name]
    return structure_arrays(p, elements, strain, p.hexagonal_ca)


def _low_symmetry():
    """A distorted 3-atom cell with s, p and d atoms: every Slater-Koster entry is exercised."""
    lat, z, cart = _crystal("C1b-halfHeusler", ("Ti", "Ni", "Sn"))
    rng = np.random.default_rng(5)
    return lat @ (np.eye(3) + rng.uniform(-0.05, 0.05, (3, 3))), z, cart + rng.uniform(-0.15, 0.15, cart.shape)


def _rotation(seed=3):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def test_rigid_rotation_leaves_bands_unchanged():
    lat, z, cart = _low_symmetry()
    R = _rotation()
    k = np.random.default_rng(0).uniform(-0.5, 0.5, (7, 3))  # fractional: the same points after rotation
    e0 = np.linalg.eigvalsh(build_model(lat, z, cart).hamiltonian(k, 0)[0])
    e1 = np.linalg.eigvalsh(build_model(lat @ R.T, z, cart @ R.T).hamiltonian(k, 0)[0])
    assert np.abs(e0 - e1).max() < 1e-9


def test_hamiltonian_hermitian_and_derivatives_match_finite_differences():
    lat, z, cart = _low_symmetry()
    m = build_model(lat, z, cart)
    k = np.array([[0.13, -0.21, 0.34]])
    H = m.hamiltonian(k, 2)
    assert np.abs(H[0] - np.conj(np.swapaxes(H[0], 1, 2))).max() < 1e-12
    h = 1e-4  # Å^-1, Cartesian
    to_frac = lat.T / (2 * np.pi)  # k_frac = k_cart @ L^T / 2pi
    for a in range(3):
        dk = np.zeros(3)
        dk[a] = h
        plus, minus = (m.hamiltonian(k + s * dk @ to_frac, 0)[0] for s in (1, -1))
        assert np.abs((plus - minus) / (2 * h) - H[1 + a]).max() < 1e-6
        assert np.abs((plus - 2 * H[0] + minus) / h**2 - H[4 + a]).max() < 1e-3


def _unfolded_kpoints(prim_lat, super_lat, k_super):
    """The k-points of a supercell calculation, seen from the primitive cell (folded-back images)."""
    n = np.rint(super_lat @ np.linalg.inv(prim_lat)).astype(int)  # super = n @ prim
    det = int(round(abs(np.linalg.det(n))))
    # reciprocal-lattice vectors of the supercell inside the primitive zone: G = m @ inv(n).T, m integer
    grid = np.array(np.meshgrid(*[np.arange(-det, det + 1)] * 3, indexing="ij")).reshape(3, -1).T
    g = (grid @ np.linalg.inv(n).T) % 1.0
    g = np.unique(np.round(g, 9), axis=0)
    assert len(g) == det
    return ((k_super @ np.linalg.inv(n).T)[:, None, :] + g[None]).reshape(-1, 3)


def test_supercell_equals_primitive_cell_exactly_on_the_same_k_points():
    """fcc conventional cell (4 atoms) vs primitive cell (1 atom) on identical Cartesian k-points."""
    a = 3.9
    prim = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a
    conv = np.eye(3) * a
    four = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a
    s = OpticsSettings(symmetry=False)
    big = build_model(conv, [46] * 4, four)
    k_big, w_big = kpoints(big, (6, 6, 6), symmetry=False)
    o_big = compute_optics(big, s, kpts=(k_big, w_big))
    small = build_model(prim, [46], np.zeros((1, 3)))
    k_small = _unfolded_kpoints(prim, conv, k_big)
    w_small = np.repeat(w_big, 4) / 1.0
    o_small = compute_optics(small, s, kpts=(k_small, w_small / w_small.sum()))
    assert abs(o_big.fermi - o_small.fermi) < 1e-8
    assert np.allclose(o_big.drude2, o_small.drude2, rtol=1e-8)
    n = min(o_big.omega.size, o_small.omega.size)
    assert np.abs(o_big.eps_im[:, :n] - o_small.eps_im[:, :n]).max() < 1e-8 * o_big.eps_im.max()
    assert np.abs(o_big.eps_re[:, :n] - o_small.eps_re[:, :n]).max() < 1e-8 * np.abs(o_big.eps_re).max()


def test_supercell_and_primitive_agree_at_default_settings():
    a = 3.9
    prim = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a
    four = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a
    s = OpticsSettings()
    o1 = compute_optics(build_model(prim, [46], np.zeros((1, 3))), s, numbers=[46])
    o4 = compute_optics(build_model(np.eye(3) * a, [46] * 4, four), s, numbers=[46] * 4)
    e1, e4 = o1.eps_average(), o4.eps_average()
    assert abs(o4.drude / o1.drude - 1) < 0.02
    assert 1 - np.abs(e4.imag - e1.imag).sum() / np.abs(e1.imag).sum() > 0.95


def test_primitive_and_conventional_fcc_cu_agree_over_the_visible_range():
    """Each cell on its own default grid (same k-points per reciprocal volume): Im eps within 5 %."""
    a = 3.61  # Cu, Å
    prim = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a
    four = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]) * a
    s = OpticsSettings()
    o1 = compute_optics(build_model(prim, [29], np.zeros((1, 3))), s, numbers=[29])
    o4 = compute_optics(build_model(np.eye(3) * a, [29] * 4, four), s, numbers=[29] * 4)
    # one k-point per k_spacing^3 of reciprocal volume, for both cells (the conventional BZ is 1/4)
    for o, v_recip in ((o1, 4 * (2 * np.pi / a) ** 3), (o4, (2 * np.pi / a) ** 3)):
        assert 0.8 < np.prod(o.mesh) * s.k_spacing**3 / v_recip < 1.5
    n = min(o1.omega.size, o4.omega.size)
    sel = (o1.omega[:n] >= 0.5) & (o1.omega[:n] <= 15)
    im1, im4 = o1.eps_im.mean(0)[:n][sel], o4.eps_im.mean(0)[:n][sel]
    assert np.abs(im4 - im1).sum() / np.abs(im1).sum() < 0.05


def _maclaurin_kk(omega, im):
    """Independent KK transform (Ohta & Ishida 1988): Re - 1 from Im on a uniform grid, odd/even points."""
    h = omega[1] - omega[0]
    re = np.empty_like(im)
    j = np.arange(omega.size)
    for i in range(omega.size):
        sel = (j - i) % 2 == 1
        re[i] = (4 / np.pi) * h * np.sum(omega[sel] * im[sel] / (omega[sel] ** 2 - omega[i] ** 2))
    return 1 + re


def test_kramers_kronig_consistency_positivity_and_static_limit():
    lat, z, cart = _crystal("B2-CsCl", ("Al", "Ni"))
    o = compute_optics(build_model(lat, z, cart), FAST, numbers=z)
    im, re = o.eps_im.mean(0), o.eps_re.mean(0)
    assert im.min() >= 0 and im[0] == 0
    ref = _maclaurin_kk(o.omega[::2], im[::2])  # 0.02 eV steps keep the check fast
    sel = o.omega[::2] >= 0.5
    assert np.abs(ref[sel] - re[::2][sel]).max() < 0.01 * np.abs(re - 1).max()


def test_cubic_crystal_is_isotropic():
    for name, el in (("L1_2-Cu3Au", ("Au", "Cu")), ("L2_1-Heusler", ("Mn", "Cu", "Al"))):
        lat, z, cart = _crystal(name, el)
        o = compute_optics(build_model(lat, z, cart), FAST)
        assert np.allclose(o.drude2, o.drude2.mean(), rtol=1e-6)
        assert np.abs(o.eps_im - o.eps_im.mean(0)).max() < 1e-6 * o.eps_im.max()


def test_tetragonal_crystal_is_anisotropic_and_symmetry_reduction_is_exact():
    lat, z, cart = _crystal("L1_0-CuAu", ("Pt", "Fe"))
    m = build_model(lat, z, cart)
    full = compute_optics(m, FAST, numbers=z, mesh=(8, 8, 6))
    ibz = compute_optics(m, OpticsSettings(k_spacing=0.25, symmetry=True), numbers=z, mesh=(8, 8, 6))
    assert ibz.n_k < full.n_k / 2
    assert abs(full.drude2[0] - full.drude2[2]) > 0.01 * full.drude2.mean()  # xx != zz
    assert abs(ibz.drude2.mean() / full.drude2.mean() - 1) < 1e-9
    assert np.abs(ibz.eps_im.mean(0) - full.eps_im.mean(0)).max() < 1e-9 * full.eps_im.max()


@pytest.mark.parametrize("name,elements", [("A1-fcc", ("Cu",)), ("B2-CsCl", ("Al", "Ni")), ("Bh-WC", ("W", "Mg"))])
def test_f_sum_rule_of_the_model(name, elements):
    """int_0^inf w Im eps dw + (pi/2) w_D^2 = (pi/2) (4 pi e^2 g / V) sum_k sum_n f <n|d2H/dk2|n>, per direction."""
    lat, z, cart = _crystal(name, elements)
    o = compute_optics(build_model(lat, z, cart), OpticsSettings(k_spacing=0.1, symmetry=False), curvature=True)
    integral = np.trapezoid(o.omega * o.eps_im, o.omega, axis=1)
    lhs = integral + 0.5 * np.pi * o.drude2
    rhs = 0.5 * np.pi * o.curvature2
    assert np.abs(lhs / rhs - 1).max() < 0.01


def _chain(a: float, t: float, n_electrons: float) -> TBModel:
    """One s orbital per site, hopping t to the two neighbours along x; far apart in y and z."""
    lattice = np.diag([a, 30.0, 30.0])
    fd = np.array([[1.0, 0, 0], [-1.0, 0, 0]])
    return TBModel(lattice, np.zeros((1, 3)), np.zeros(1), np.array([0, 1]), [(0, 0, fd, np.full((2, 1, 1), t))],
                   n_electrons)  # fmt: skip


@pytest.mark.parametrize("filling", [0.5, 1.0, 1.5])
def test_one_band_chain_reproduces_the_closed_form_drude_frequency(filling):
    """E = 2t cos(ka): (hbar w_D)^2 = 16 e^2 |t| a^2 sin(k_F a) / V with k_F a = pi N_e / 2 (T -> 0)."""
    a, t = 2.5, -1.0
    m = _chain(a, t, filling)
    o = compute_optics(m, OpticsSettings(smearing=0.005, symmetry=False), mesh=(6000, 1, 1))
    closed = 16 * E2 * abs(t) * a**2 * np.sin(np.pi * filling / 2) / m.volume
    assert abs(o.drude2[0] / closed - 1) < 1e-3
    assert np.allclose(o.drude2[1:], 0) and np.allclose(o.eps_im, 0)
    assert abs(o.fermi - 2 * t * np.cos(np.pi * filling / 2)) < 1e-3
    assert SPIN == 2.0


def test_k_point_batches_give_the_same_result(monkeypatch):
    import datamodules.surrogate.optics as optics

    lat, z, cart = _crystal("B2-CsCl", ("Al", "Ni"))
    m = build_model(lat, z, cart)
    whole = compute_optics(m, FAST, curvature=True)
    monkeypatch.setattr(optics, "K_BATCH_ELEMENTS", 13 * 13 * 7)  # 7 k-points per batch
    parts = compute_optics(m, FAST, curvature=True)
    assert np.allclose(whole.drude2, parts.drude2, rtol=1e-12) and np.allclose(whole.curvature2, parts.curvature2)
    assert np.abs(whole.eps_im - parts.eps_im).max() < 1e-10 * whole.eps_im.max()

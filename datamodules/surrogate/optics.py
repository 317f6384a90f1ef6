"""Optics of a TB model: bands, Fermi level, interband eps(w) and the Drude frequency.

Independent-particle, velocity form, Gaussian units (e^2 = 14.3996 eV Å), energies in eV, the
velocity matrix elements p = hbar v = dH/dk in eV Å (Peierls approximation), w_k the k-point
weights (sum 1), V the cell volume, g = 2 the spin degeneracy, f Fermi-Dirac occupations:

  Im eps_aa(w) = (4 pi^2 e^2 g / V) sum_k w_k sum_{E_m > E_n} (f_n - f_m) |p_a,mn|^2 / E_mn^2
                 x [G(w - E_mn) - G(w + E_mn)]            (G: normalised Gaussian, width sigma)
  Re eps_aa(w) = 1 + its Kramers-Kronig transform, exact per transition: the Hilbert transform of
                 a Gaussian is a Dawson function. The model's spectrum ends at the largest
                 transition energy, so the KK integral needs no high-frequency tail model.
  (hbar w_D,aa)^2 = (4 pi e^2 g / V) sum_k w_k sum_{n, m: E_n = E_m} (-df/dE)(E_n) |p_a,nm|^2
                 (the smeared Fermi surface; degenerate pairs count as intraband).

The f-sum rule of the model, exact in the k-continuum (by parts in k):
  int_0^inf w Im eps_aa dw + (pi/2) (hbar w_D,aa)^2 = (pi/2) (4 pi e^2 g / V) sum_k w_k sum_n f_n <n|d2H/dk_a2|n>.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hamiltonian import TBModel
from .params import E2, SPIN

DEGENERATE = 1e-6  # eV: closer pairs are intraband
STEP = 0.01  # eV, internal and output frequency step
GAUSS_RANGE = 8.0  # Gaussians cut at this many sigma
K_BATCH_ELEMENTS = 4_000_000  # k-points per batch x orbitals^2 (bounds memory for large cells)


@dataclass(frozen=True)
class OpticsSettings:
    broadening: float = 0.15  # eV, Gaussian sigma of every interband transition
    smearing: float = 0.15  # eV, kT of the Fermi-Dirac occupations (Fermi level and Drude)
    k_spacing: float = 0.08  # Å^-1 (2 pi included): one k-point per k_spacing^3 (see mesh_for)
    k_spacing_sp: float = 0.07  # Å^-1 for cells without d orbitals: steeper bands, 4 orbitals per atom
    symmetry: bool = True  # reduce k to the irreducible wedge (direction average only)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("broadening", "smearing", "k_spacing", "k_spacing_sp", "symmetry")}

    def spacing_for(self, model: TBModel) -> float:
        """The k-spacing of a model: `k_spacing_sp` if no atom carries d orbitals."""
        return self.k_spacing if np.any(np.diff(model.offsets) > 4) else self.k_spacing_sp

    def scaled(self, factor: float) -> OpticsSettings:
        """The same settings on a k-grid `factor` times finer or coarser (both spacings)."""
        from dataclasses import replace

        return replace(self, k_spacing=self.k_spacing * factor, k_spacing_sp=self.k_spacing_sp * factor)


@dataclass
class Optics:
    omega: np.ndarray  # (M,) eV, internal grid 0 .. beyond the largest transition
    eps_im: np.ndarray  # (3, M) per direction (meaningful per direction only without symmetry)
    eps_re: np.ndarray  # (3, M)
    drude2: np.ndarray  # (3,) (hbar w_D,aa)^2, eV^2
    fermi: float  # eV
    mesh: tuple[int, int, int]
    n_k: int  # irreducible k-points used
    weight_sum: np.ndarray | None = None  # (3,) sum of A_t E_t: int_0^inf w Im eps dw, exactly
    curvature2: np.ndarray | None = None  # (3,) (4 pi e^2 g/V) sum f <d2H/dk2>, eV^2 (if asked)

    @property
    def drude(self) -> float:
        """RMS Drude frequency sqrt(mean_a w_D,aa^2), eV."""
        return float(np.sqrt(max(self.drude2.mean(), 0.0)))

    def eps_average(self, points: int = 2001) -> np.ndarray:
        """Direction-averaged complex eps on the reference grid 0 .. (points-1)*STEP eV."""
        return self.eps_re[:, :points].mean(0) + 1j * self.eps_im[:, :points].mean(0)


def mesh_for(lattice: np.ndarray, k_spacing: float) -> tuple[int, int, int]:
    """Monkhorst-Pack divisions with one k-point per k_spacing^3 of reciprocal volume.

    N_i = ceil(|b_i| / s') with s' = k_spacing (prod |b_i| / V*)^(1/3): N_i stays proportional to
    |b_i|, and prod N_i ~ V* / k_spacing^3 for any cell shape. Plain ceil(|b_i| / k_spacing)
    over-samples skewed cells (fcc primitive: prod |b_i| = 1.30 V*), so a primitive and a
    conventional cell of one crystal would not be sampled alike.
    """
    recip = 2 * np.pi * np.linalg.inv(lattice).T
    lengths = np.linalg.norm(recip, axis=1)
    skew = np.prod(lengths) / abs(np.linalg.det(recip))  # >= 1, equal for orthogonal cells
    spacing = k_spacing * skew ** (1 / 3)
    n1, n2, n3 = (int(max(1, np.ceil(b / spacing - 1e-9))) for b in lengths)
    return n1, n2, n3


def point_operations(lattice, frac, numbers) -> np.ndarray:
    """Rotations (on fractional coordinates) of the crystal's space group (spglib, symprec 1e-5 Å)."""
    import spglib

    cell = (lattice, frac, np.asarray(numbers, dtype=np.int64))
    sym = spglib.get_symmetry(cell, symprec=1e-5)  # type: ignore[arg-type]  # spglib takes arrays
    return np.eye(3, dtype=np.int64)[None] if sym is None else np.unique(sym["rotations"], axis=0)


def kpoints(model: TBModel, mesh, numbers=None, symmetry: bool = True, rotations=None) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-centred Monkhorst-Pack grid reduced by time reversal (and the space group): k_frac, weights."""
    mesh = np.asarray(mesh, dtype=np.int64)
    identity = np.eye(3, dtype=np.int64)[None]
    if not symmetry:
        rotations = identity
    elif rotations is None:
        rotations = identity if numbers is None else point_operations(model.lattice, model.frac, numbers)
    rotations = np.asarray(rotations)
    key = (rotations.astype(np.int64).tobytes(), tuple(mesh.tolist()))
    if key not in _KPOINT_CACHE:
        if len(_KPOINT_CACHE) > 512:
            _KPOINT_CACHE.clear()
        _KPOINT_CACHE[key] = _reduce(mesh, rotations)
    return _KPOINT_CACHE[key]


_KPOINT_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _reduce(mesh: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = np.stack(np.meshgrid(*[np.arange(n) for n in mesh], indexing="ij"), -1).reshape(-1, 3)
    ops = [W for W in rotations if np.all(mesh[:, None] == mesh[None, :], where=W != 0)]
    # k' = k W in fractional reciprocal coordinates (W: rotations on direct fractional coordinates);
    # each point's representative is the smallest flat index of its star, time reversal included
    flat = lambda a: (a[0] * mesh[1] + a[1]) * mesh[2] + a[2]  # noqa: E731
    cols = g.T.astype(np.int64)
    rep = np.full(g.shape[0], np.iinfo(np.int64).max)
    for W in ops:  # at most 48 point operations
        img = [(cols[0] * W[0, j] + cols[1] * W[1, j] + cols[2] * W[2, j]) for j in range(3)]
        rep = np.minimum(rep, flat([c % n for c, n in zip(img, mesh, strict=True)]))
        rep = np.minimum(rep, flat([(-c) % n for c, n in zip(img, mesh, strict=True)]))
    ir, counts = np.unique(rep, return_counts=True)
    gk = g[ir]
    gk = np.where(gk > mesh // 2, gk - mesh, gk)
    return gk / mesh, counts / counts.sum()


def occupations(e: np.ndarray, mu: float, kt: float) -> np.ndarray:
    return 0.5 * (1.0 - np.tanh((e - mu) / (2 * kt)))


def fermi_level(e: np.ndarray, w: np.ndarray, n_electrons: float, kt: float) -> float:
    """Chemical potential with sum_k w_k sum_n g f = n_electrons (bisection)."""
    lo, hi = e.min() - 10 * kt - 1, e.max() + 10 * kt + 1
    for _ in range(80):
        mu = 0.5 * (lo + hi)
        n = SPIN * np.sum(w[:, None] * occupations(e, mu, kt))
        lo, hi = (mu, hi) if n < n_electrons else (lo, mu)
        if hi - lo < 1e-10:
            break
    return 0.5 * (lo + hi)


def compute_optics(
    model: TBModel,
    settings: OpticsSettings = OpticsSettings(),
    numbers=None,
    mesh=None,
    kpts: tuple[np.ndarray, np.ndarray] | None = None,
    curvature: bool = False,
    rotations: np.ndarray | None = None,
) -> Optics:
    """Spectra of `model` on its k-grid (or on the explicit `kpts` = (k_frac, weights)).

    The k-grid is reduced by the space group found from `numbers`, or by the given `rotations`.
    """
    mesh = tuple(mesh or mesh_for(model.lattice, settings.spacing_for(model)))
    k, w = kpts if kpts is not None else kpoints(model, mesh, numbers, settings.symmetry, rotations)
    e, S, P2, C = _bands(model, k, curvature)
    mu = fermi_level(e, w, model.n_electrons, settings.smearing)
    f = occupations(e, mu, settings.smearing)
    pref = 4 * np.pi * E2 * SPIN / model.volume
    # intraband: degenerate pairs (including n = m) on the smeared Fermi surface
    minus_df = f * (1 - f) / settings.smearing
    drude2 = pref * np.einsum("akn,kn->a", S, w[:, None] * minus_df)
    # interband transitions
    iu, ju = np.triu_indices(e.shape[1], 1)
    E = e[:, ju] - e[:, iu]  # >= 0
    dfo = f[:, iu] - f[:, ju]
    ok = (E >= DEGENERATE) & (np.abs(dfo) > 1e-12)
    Et, kw = E[ok], (w[:, None] * dfo)[ok]
    A = np.pi * pref * kw[None] * P2[:, ok] / Et[None] ** 2  # (3, T)
    omega, im, re = _spectra(Et, A, settings.broadening)
    curv = pref * np.einsum("akn,kn->a", C, f * w[:, None]) if curvature else None
    return Optics(omega, im, re, drude2, mu, mesh, len(w), (A * Et[None]).sum(1), curv)


def _bands(model: TBModel, k: np.ndarray, curvature: bool):
    """Eigenvalues (K, nb), intraband |p|^2 sums S (3, K, nb), interband |p_mn|^2 over the pairs
    m > n (3, K, pairs) and, if asked, <n|d2H/dk_a2|n> (3, K, nb); in batches of k-points that
    bound the memory of the Hamiltonian stack (large user cells)."""
    n = model.n_orbitals
    iu, ju = np.triu_indices(n, 1)
    batch = max(1, int(K_BATCH_ELEMENTS // (n * n)))
    out: dict[str, list] = {"e": [], "S": [], "P": [], "C": []}
    for s in range(0, k.shape[0], batch):
        H = model.hamiltonian(k[s : s + batch], derivatives=2 if curvature else 1)
        e, U = np.linalg.eigh(H[0])
        Uh = np.conj(np.swapaxes(U, 1, 2))
        P2 = np.stack([np.abs(Uh @ H[1 + a] @ U) ** 2 for a in range(3)])  # |<m|dH/dk_a|n>|^2
        deg = np.abs(e[:, :, None] - e[:, None, :]) < DEGENERATE
        out["e"].append(e)
        out["S"].append((P2 * deg).sum(axis=2))
        out["P"].append(P2[:, :, ju, iu])
        if curvature:
            out["C"].append(np.stack([np.einsum("kmn,kmn->kn", np.conj(U), H[4 + a] @ U).real for a in range(3)]))
    cat = {key: np.concatenate(v, axis=0 if key == "e" else 1) if v else None for key, v in out.items()}
    return cat["e"], cat["S"], cat["P"], cat["C"]


def _spectra(E: np.ndarray, A: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Im and Re eps of transitions (energies E, weights A (3, T)) on 0 .. max(E) + 8 sigma."""
    from scipy.signal import fftconvolve
    from scipy.special import dawsn

    top = max(20.0, float(E.max(initial=0.0)) + GAUSS_RANGE * sigma)
    M = int(np.ceil(top / STEP))
    x = E / STEP
    j0 = np.minimum(np.floor(x).astype(np.int64), M - 1)
    frac = x - j0
    hist = np.zeros((A.shape[0], M + 1))
    for a in range(A.shape[0]):  # three directions
        hist[a] = np.bincount(j0, A[a] * (1 - frac), M + 1) + np.bincount(j0 + 1, A[a] * frac, M + 1)
    hist[:, 0] = 0.0  # a transition at E = 0 has G(w - E) - G(w + E) = 0
    odd = np.concatenate([-hist[:, :0:-1], hist], axis=1)  # bins -M .. M, odd in w
    L = int(np.ceil(GAUSS_RANGE * sigma / STEP))
    t = np.arange(-L, L + 1) * STEP
    gauss = np.exp(-0.5 * (t / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
    im = fftconvolve(odd, gauss[None], mode="same", axes=1)[:, M:]
    u = np.arange(-2 * M, 2 * M + 1) * STEP
    hilbert = np.sqrt(2) / (np.pi * sigma) * dawsn(u / (np.sqrt(2) * sigma))  # H[G](u)
    re = 1.0 - fftconvolve(odd, hilbert[None], mode="full", axes=1)[:, 3 * M : 4 * M + 1]
    # G(w - E) - G(w + E) >= 0 for w, E >= 0: only FFT round-off (~1e-16 of the peak) can be negative
    im = np.maximum(im, 0.0)
    im[:, 0] = 0.0  # odd in w: exactly zero, up to FFT round-off
    return np.arange(M + 1) * STEP, im, re

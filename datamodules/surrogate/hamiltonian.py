"""The Slater-Koster tight-binding Hamiltonian H(k) and its k-derivatives, vectorised.

Orbital order per atom: s, px, py, pz, then (transition metals) dxy, dyz, dzx, dx2-y2, d3z2-r2.
Two-centre integrals follow Slater & Koster, Phys. Rev. 94, 1498 (1954), Table I, for the bond
vector from atom i to atom j with direction cosines (l, m, n); the (d on i, p on j) and
(p on i, s on j) blocks follow from parity, E_ba(R) = (-1)^(l_a + l_b) E_ab(R).

Bloch sums use the atomic gauge, H_ij(k) = sum_b T_b exp(i k.d_b) with d_b = R + tau_j - tau_i,
so dH/dk_a = sum_b i d_b,a T_b exp(i k.d_b) is the velocity operator hbar v_a of the Peierls
approximation (eV Å), and the spectra do not depend on the choice of cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import TAPER_END, hoppings, species

S3 = np.sqrt(3.0)


def sk_blocks(vec: np.ndarray, V: dict[str, np.ndarray]) -> np.ndarray:
    """(B, 9, 9) Slater-Koster blocks <a on i|H|b on j> for bond vectors vec (B, 3)."""
    d = np.linalg.norm(vec, axis=1)
    c = vec / d[:, None]
    l, m, n = c.T
    B = vec.shape[0]
    T = np.zeros((B, 9, 9))
    T[:, 0, 0] = V["sss"]
    # s-p and p-p
    T[:, 0, 1:4] = c * V["sps"][:, None]
    T[:, 1:4, 0] = -c * V["sps"][:, None]
    T[:, 1:4, 1:4] = c[:, :, None] * c[:, None, :] * (V["pps"] - V["ppp"])[:, None, None]
    T[:, 1:4, 1:4] += np.eye(3) * V["ppp"][:, None, None]
    # s-d
    q = n**2 - 0.5 * (l**2 + m**2)
    ang_sd = np.stack([S3 * l * m, S3 * m * n, S3 * n * l, 0.5 * S3 * (l**2 - m**2), q], axis=1)
    T[:, 0, 4:] = ang_sd * V["sds_j"][:, None]
    T[:, 4:, 0] = ang_sd * V["sds_i"][:, None]
    # p-d: rows x, y, z; columns xy, yz, zx, x2-y2, 3z2-r2
    T[:, 1:4, 4:] = _pd(l, m, n, V["pds_j"], V["pdp_j"])
    T[:, 4:, 1:4] = -_pd(l, m, n, V["pds_i"], V["pdp_i"]).transpose(0, 2, 1)
    T[:, 4:, 4:] = _dd(l, m, n, V["dds"], V["ddp"], V["ddd"])
    return T


def _pd(l, m, n, vs, vp) -> np.ndarray:
    cos = (l, m, n)
    t2g = ((0, 1), (1, 2), (2, 0))  # xy, yz, zx as index pairs of (l, m, n)
    out = np.zeros((l.size, 3, 5))
    lmn = l * m * n
    for a in range(3):
        ca = cos[a]
        for col, (b, e) in enumerate(t2g):
            if a in (b, e):
                o = cos[e if a == b else b]
                out[:, a, col] = S3 * ca**2 * o * vs + o * (1 - 2 * ca**2) * vp
            else:
                out[:, a, col] = S3 * lmn * vs - 2 * lmn * vp
    d2 = l**2 - m**2
    q = n**2 - 0.5 * (l**2 + m**2)
    out[:, 0, 3] = 0.5 * S3 * l * d2 * vs + l * (1 - d2) * vp
    out[:, 1, 3] = 0.5 * S3 * m * d2 * vs - m * (1 + d2) * vp
    out[:, 2, 3] = 0.5 * S3 * n * d2 * vs - n * d2 * vp
    out[:, 0, 4] = l * q * vs - S3 * l * n**2 * vp
    out[:, 1, 4] = m * q * vs - S3 * m * n**2 * vp
    out[:, 2, 4] = n * q * vs + S3 * n * (l**2 + m**2) * vp
    return out


def _dd(l, m, n, vs, vp, vd) -> np.ndarray:
    cos = (l, m, n)
    t2g = ((0, 1), (1, 2), (2, 0))
    out = np.zeros((l.size, 5, 5))
    for i, (a, b) in enumerate(t2g):
        ca, cb = cos[a], cos[b]
        cc = cos[3 - a - b]
        out[:, i, i] = 3 * ca**2 * cb**2 * vs + (ca**2 + cb**2 - 4 * ca**2 * cb**2) * vp + (cc**2 + ca**2 * cb**2) * vd
        for j in range(i + 1, 3):
            shared = ({a, b} & set(t2g[j])).pop()
            others = sorted(({a, b} | set(t2g[j])) - {shared})
            s, x, y = cos[shared], cos[others[0]], cos[others[1]]
            out[:, i, j] = 3 * s**2 * x * y * vs + x * y * (1 - 4 * s**2) * vp + x * y * (s**2 - 1) * vd
    d2 = l**2 - m**2
    r2 = l**2 + m**2
    q = n**2 - 0.5 * r2
    out[:, 0, 3] = 1.5 * l * m * d2 * vs - 2 * l * m * d2 * vp + 0.5 * l * m * d2 * vd
    out[:, 1, 3] = 1.5 * m * n * d2 * vs - m * n * (1 + 2 * d2) * vp + m * n * (1 + 0.5 * d2) * vd
    out[:, 2, 3] = 1.5 * n * l * d2 * vs + n * l * (1 - 2 * d2) * vp - n * l * (1 - 0.5 * d2) * vd
    out[:, 0, 4] = S3 * (l * m * q * vs - 2 * l * m * n**2 * vp + 0.5 * l * m * (1 + n**2) * vd)
    out[:, 1, 4] = S3 * (m * n * q * vs + m * n * (r2 - n**2) * vp - 0.5 * m * n * r2 * vd)
    out[:, 2, 4] = S3 * (n * l * q * vs + n * l * (r2 - n**2) * vp - 0.5 * n * l * r2 * vd)
    out[:, 3, 3] = 0.75 * d2**2 * vs + (r2 - d2**2) * vp + (n**2 + 0.25 * d2**2) * vd
    out[:, 3, 4] = S3 * (0.5 * d2 * q * vs - n**2 * d2 * vp + 0.25 * (1 + n**2) * d2 * vd)
    out[:, 4, 4] = q**2 * vs + 3 * n**2 * r2 * vp + 0.75 * r2**2 * vd
    iu = np.triu_indices(5, 1)
    out[:, iu[1], iu[0]] = out[:, iu[0], iu[1]]
    return out


@dataclass
class TBModel:
    """A periodic tight-binding model: on-site energies and hopping blocks grouped by atom pair."""

    lattice: np.ndarray  # (3, 3) rows, Å
    frac: np.ndarray  # (n, 3) fractional positions
    onsite: np.ndarray  # (norb,) eV
    offsets: np.ndarray  # (n + 1,) first orbital of each atom
    pairs: list  # [(i, j, frac_d (B, 3), T (B, ni, nj))]
    n_electrons: float

    @property
    def n_orbitals(self) -> int:
        return int(self.offsets[-1])

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.lattice)))

    def hamiltonian(self, kfrac: np.ndarray, derivatives: int = 1) -> np.ndarray:
        """(1 + 3*derivatives, K, norb, norb): H(k), then dH/dk_a, then d2H/dk_a2 (a = x, y, z)."""
        kfrac = np.atleast_2d(kfrac)
        K, N = kfrac.shape[0], self.n_orbitals
        out = np.zeros((1 + 3 * derivatives, K, N, N), dtype=np.complex128)
        out[0][:, np.arange(N), np.arange(N)] = self.onsite
        for i, j, fd, T in self.pairs:
            phase = np.exp(2j * np.pi * (kfrac @ fd.T))  # (K, B)
            cart = fd @ self.lattice  # (B, 3) Å
            factors = [np.ones((1, cart.shape[0]))]
            if derivatives >= 1:
                factors += [1j * cart[:, a][None] for a in range(3)]
            if derivatives >= 2:
                factors += [-(cart[:, a] ** 2)[None] for a in range(3)]
            stacked = np.concatenate([phase * f for f in factors], axis=0)  # (F*K, B)
            ni, nj = T.shape[1:]
            blk = (stacked @ T.reshape(T.shape[0], -1)).reshape(len(factors), K, ni, nj)
            out[:, :, self.offsets[i] : self.offsets[i] + ni, self.offsets[j] : self.offsets[j] + nj] += blk
        return out


def build_model(lattice, numbers, cart) -> TBModel:
    """The surrogate's TB model of a crystal (parameters: `params`)."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    cart = np.ascontiguousarray(cart, dtype=np.float64)
    sp = [species(int(z)) for z in numbers]
    norb = np.array([s.n_orbitals for s in sp])
    offsets = np.concatenate([[0], np.cumsum(norb)])
    onsite = np.concatenate([np.repeat(s.onsite, [1, 3, 5][: len(s.onsite)]) for s in sp])
    radius = np.array([s.radius for s in sp])
    rd = np.array([s.r_d for s in sp])
    rmax = TAPER_END * 2 * radius.max()
    ci, nj, images, dist = find_points_in_spheres(
        cart, cart, r=float(rmax), pbc=np.array([1, 1, 1], dtype=np.int64), lattice=lattice, tol=1e-8
    )
    # find_points_in_spheres(centres=all, points=all) returns (centre, neighbour, image, distance)
    keep = (dist > 1e-6) & (dist < TAPER_END * (radius[ci] + radius[nj]))
    ci, nj, images, dist = ci[keep], nj[keep], images[keep], dist[keep]
    vec = cart[nj] + images @ lattice - cart[ci]
    V = hoppings(dist, radius[ci] + radius[nj], rd[ci], rd[nj])
    T = sk_blocks(vec, V)
    inv = np.linalg.inv(lattice)
    fd = vec @ inv
    pairs = []
    order = np.lexsort((nj, ci))
    ci, nj, fd, T = ci[order], nj[order], fd[order], T[order]
    keys = ci * len(sp) + nj
    bounds = np.flatnonzero(np.diff(keys)) + 1
    for grp in np.split(np.arange(keys.size), bounds):
        if grp.size == 0:
            continue
        i, j = int(ci[grp[0]]), int(nj[grp[0]])
        pairs.append((i, j, fd[grp], np.ascontiguousarray(T[grp][:, : norb[i], : norb[j]])))
    return TBModel(lattice, cart @ inv, onsite, offsets, pairs, float(sum(s.valence for s in sp)))

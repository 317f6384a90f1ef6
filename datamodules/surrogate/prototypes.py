"""Intermetallic prototypes, decorated with metals: a seeded, duplicate-free stream of crystals.

Every prototype is a primitive cell at conventional lattice constant 1, a site pattern (one letter
per site; distinct letters take distinct elements) and the letter permutations that give the same
crystal (e.g. A <-> B in B2), used to remove duplicates: two draws are the same material when the
prototype and the decoration agree up to such a permutation (strain does not make a new material).
Lattice constants follow from metallic radii: the first neighbour shells of all sites are scaled to
the mean of r_i + r_j over their bonds, times an isotropic strain (1 + u), u ~ U(-STRAIN, STRAIN); the hexagonal
prototypes also draw c/a within +-3 % of the ideal value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import METALS, species

STRAIN = 0.03
FCC = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
BCC = np.array([[-0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.5, 0.5, -0.5]])
SC = np.eye(3)
Q = [[0, 0, 0], [0.25, 0.25, 0.25], [0.5, 0.5, 0.5], [0.75, 0.75, 0.75]]  # fcc ring of the Heusler family


def _hex(c: float) -> np.ndarray:
    return np.array([[1, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [0, 0, c]])


def _ring_perms(pattern: str) -> list[dict]:
    """Letter maps induced by the dihedral symmetry of the 4-site ring 0, 1/4, 1/2, 3/4."""
    rots = [[(i + s) % 4 for i in range(4)] for s in range(4)]
    ops = rots + [[(-i + s) % 4 for i in range(4)] for s in range(4)]
    maps = []
    for op in ops:
        new = "".join(pattern[op[i]] for i in range(4))
        m: dict = {}
        if all(m.setdefault(a, b) == b for a, b in zip(pattern, new, strict=True)) and len(set(m.values())) == len(m):
            maps.append(m)
    return maps


@dataclass(frozen=True)
class Prototype:
    name: str
    lattice: np.ndarray  # rows, conventional a = 1
    frac: tuple  # fractional site coordinates
    pattern: str  # letter per site
    equivalent: tuple = ()  # letter maps giving the same crystal
    hexagonal_ca: float = 0.0  # ideal c/a of hexagonal cells (0: not hexagonal)
    weight: float = 1.0

    @property
    def letters(self) -> str:
        return "".join(dict.fromkeys(self.pattern))


def _swap(a="A", b="B") -> tuple:
    return ({a: b, b: a},)


def _complete(m: dict, letters: str) -> dict:
    return {c: m.get(c, c) for c in letters}


# MgCu2 (Fd-3m, origin choice 1): A on 8a, B on 16d; Cartesian in units of a, then fractional
C15_CART = np.array([[0, 0, 0], [0.25, 0.25, 0.25], [0.625, 0.625, 0.625], [0.375, 0.875, 0.125],
                     [0.875, 0.125, 0.375], [0.125, 0.375, 0.875]])  # fmt: skip
C15_FRAC = (C15_CART @ np.linalg.inv(FCC)) % 1.0
PROTOTYPES = {
    p.name: p
    for p in [
        Prototype("A1-fcc", FCC, ([0, 0, 0],), "A", weight=0.02),
        Prototype("A2-bcc", BCC, ([0, 0, 0],), "A", weight=0.02),
        Prototype("A3-hcp", _hex(1.633), ([1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]), "AA", (), 1.633, 0.02),
        Prototype("B2-CsCl", SC, ([0, 0, 0], [0.5, 0.5, 0.5]), "AB", _swap(), weight=0.10),
        Prototype("L1_2-Cu3Au", SC, ([0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]), "ABBB", weight=0.12),
        Prototype(
            "L1_0-CuAu",
            np.diag([1 / np.sqrt(2), 1 / np.sqrt(2), 1.0]),
            ([0, 0, 0], [0.5, 0.5, 0.5]),
            "AB",
            _swap(),
            weight=0.08,
        ),  # fmt: skip
        Prototype("Bh-WC", _hex(0.976), ([0, 0, 0], [1 / 3, 2 / 3, 0.5]), "AB", _swap(), 0.976, 0.05),
        Prototype("C1-CaF2", FCC, (Q[0], Q[1], Q[3]), "ABB", weight=0.07),
        Prototype("C1b-halfHeusler", FCC, (Q[0], Q[1], Q[2]), "ABC", ({"A": "C", "C": "A"},), weight=0.14),
        Prototype("L2_1-Heusler", FCC, tuple(Q), "ABCB", tuple(_ring_perms("ABCB")), weight=0.14),
        Prototype("D0_3-BiF3", FCC, tuple(Q), "AABA", weight=0.05),
        Prototype("Y-quaternaryHeusler", FCC, tuple(Q), "ABCD", tuple(_ring_perms("ABCD")), weight=0.14),
        Prototype("C15-Laves", FCC, tuple(map(tuple, C15_FRAC)), "AABBBB", weight=0.05),
    ]
}


def structure_arrays(proto: Prototype, elements: tuple[str, ...], strain: float, ca: float | None = None):
    """(lattice, atomic numbers, Cartesian positions) of a decorated, scaled prototype."""
    from pymatgen.core import Element

    emap = dict(zip(proto.letters, elements, strict=True))
    z = np.array([Element(emap[c]).Z for c in proto.pattern])
    lat = proto.lattice.copy()
    if proto.hexagonal_ca and ca:
        lat[2, 2] = ca
    frac = np.array(proto.frac, dtype=float)
    cart = frac @ lat
    # first neighbour shell at unit scale (minimum-image over the 27 neighbouring cells)
    shifts = np.array(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij")).reshape(3, -1).T @ lat
    vec = cart[None, :, None] + shifts[None, None] - cart[:, None, None]
    d = np.linalg.norm(vec, axis=-1)
    d[d < 1e-8] = np.inf
    shell = d <= d.min(axis=(1, 2), keepdims=True) * 1.15  # each site's own first shell
    radii = np.array([species(int(zz)).radius for zz in z])
    i, j, _ = np.nonzero(shell)
    scale = np.mean((radii[i] + radii[j]) / d[shell]) * (1 + strain)
    return lat * scale, z, cart * scale


def canonical_key(proto: Prototype, elements: tuple[str, ...]) -> tuple:
    letters = proto.letters
    options = [tuple(elements)]
    for m in proto.equivalent:
        m = _complete(m, letters)
        options.append(tuple(elements[letters.index(m[c])] for c in letters))
    return (proto.name, min(options))


def draw_specs(n: int, seed: int, pool: tuple[str, ...] = METALS, max_tries: int | None = None) -> list[tuple]:
    """n distinct specs (index, prototype, elements, strain, c/a), deterministic in `seed`.

    Draws come in vectorised batches: a prototype by weight, distinct elements uniformly from
    `pool` (the first k of a random permutation), a strain and a c/a; repeats are skipped.
    """
    from pymatgen.core import Element

    rng = np.random.default_rng(seed)
    names = list(PROTOTYPES)
    protos = [PROTOTYPES[k] for k in names]
    w = np.array([p.weight for p in protos])
    w = w / w.sum()
    pool = tuple(pool)
    radius = {e: species(Element(e).Z).radius for e in pool}
    seen: set = set()
    out: list = []
    tries, limit = 0, max_tries or 100 * n + 1000
    while len(out) < n:
        if tries >= limit:
            raise ValueError(f"only {len(out)} distinct structures after {limit} draws (asked for {n})")
        size = int(min(max(1024, 2 * (n - len(out))), 65536))
        which = rng.choice(len(names), size=size, p=w)
        order = np.argsort(rng.random((size, len(pool))), axis=1)
        strain = np.round(rng.uniform(-STRAIN, STRAIN, size), 6)
        ca_factor = 1 + rng.uniform(-0.03, 0.03, size)
        for b in range(size):
            tries += 1
            proto = protos[which[b]]
            elements = tuple(pool[i] for i in order[b, : len(proto.letters)])
            if proto.name == "C15-Laves":  # the larger atom on the A (diamond) sites, as in real Laves phases
                elements = tuple(sorted(elements, key=lambda e: -radius[e]))
            key = canonical_key(proto, elements)
            if key in seen:
                continue
            seen.add(key)
            ca = float(np.round(proto.hexagonal_ca * ca_factor[b], 6)) if proto.hexagonal_ca else 0.0
            out.append((len(out), proto.name, elements, float(strain[b]), ca))
            if len(out) == n or tries >= limit:
                break
    return out

"""Periodic graphs: two-body multigraph within 5.5 Å, three-body edge pairs within 4.0 Å.

Convention (PyG's source -> target flow): edge k runs from neighbour j = edge_index[0, k] to
centre i = edge_index[1, k]; its vector is pos[j] + shift[k] @ lattice - pos[i].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .elements import unrepresentable

CUTOFF = 5.5  # Å, two-body
THREEBODY_CUTOFF = 4.0  # Å, both edges of a triplet
MIN_DISTANCE = 0.5  # Å, closer atoms are rejected as overlapping


class GraphError(ValueError):
    """A structure that cannot be turned into a valid graph."""


@dataclass
class Graph:
    numbers: np.ndarray  # (n,) int
    cart: np.ndarray  # (n, 3)
    lattice: np.ndarray  # (3, 3) rows
    edge_index: np.ndarray  # (2, E) int64, [neighbour j, centre i]
    edge_shift: np.ndarray  # (E, 3) int8 image offset of j
    edge_vec: np.ndarray  # (E, 3) float32

    @property
    def n_edges(self) -> int:
        return self.edge_index.shape[1]


def build_graph(lattice, numbers, cart, cutoff: float = CUTOFF) -> Graph:
    """Neighbour list under periodic boundary conditions, validated; GraphError if unusable."""
    from pymatgen.optimization.neighbors import find_points_in_spheres

    lattice = np.ascontiguousarray(lattice, dtype=np.float64)
    cart = np.ascontiguousarray(cart, dtype=np.float64)
    numbers = np.asarray(numbers, dtype=np.int64)
    bad = unrepresentable(numbers)
    if bad:
        raise GraphError(f"elements with Z={bad} cannot be encoded (group/period one-hot covers Z=1..86)")
    if abs(np.linalg.det(lattice)) < 1e-6:
        raise GraphError("lattice is singular")
    centre, nbr, images, dist = find_points_in_spheres(
        cart, cart, r=float(cutoff), pbc=np.array([1, 1, 1], dtype=np.int64), lattice=lattice, tol=1e-8
    )
    self_pair = (centre == nbr) & np.all(images == 0, axis=1)
    centre, nbr, images, dist = centre[~self_pair], nbr[~self_pair], images[~self_pair], dist[~self_pair]
    if dist.size and dist.min() < MIN_DISTANCE:
        k = int(np.argmin(dist))
        raise GraphError(
            f"overlapping atoms: sites {int(centre[k])} and {int(nbr[k])} are {dist[k]:.3f} Å apart "
            f"(minimum {MIN_DISTANCE} Å)"
        )
    n = numbers.size
    counts = np.bincount(centre, minlength=n)
    if np.any(counts == 0):
        lonely = np.flatnonzero(counts == 0)[:5].tolist()
        raise GraphError(f"atoms {lonely} have no neighbour within {cutoff} Å")
    if np.abs(images).max(initial=0) > 127:
        raise GraphError("periodic images beyond ±127 cells: lattice vectors are too short")
    order = np.lexsort((images[:, 2], images[:, 1], images[:, 0], nbr, centre))
    centre, nbr, images = centre[order], nbr[order], np.round(images[order]).astype(np.int8)
    vec = cart[nbr] + images @ lattice - cart[centre]
    return Graph(
        numbers=numbers,
        cart=cart,
        lattice=lattice,
        edge_index=np.stack([nbr, centre]).astype(np.int64),
        edge_shift=images,
        edge_vec=vec.astype(np.float32),
    )


def triplets(edge_index: np.ndarray, edge_vec: np.ndarray, cutoff: float = THREEBODY_CUTOFF):
    """Ordered pairs (e1, e2), e1 != e2, of edges with the same centre, both no longer than cutoff.

    Works on one graph or a whole batch (edge_index with global node numbers). Returns (2, T) int64.
    """
    dist = np.sqrt(np.einsum("ij,ij->i", edge_vec, edge_vec))
    short = np.flatnonzero(dist <= cutoff)
    centre = edge_index[1, short]
    order = np.argsort(centre, kind="stable")
    short, centre = short[order], centre[order]
    _, first, size = np.unique(centre, return_index=True, return_counts=True)
    group_size = np.repeat(size, size)  # size of each short edge's group
    group_start = np.repeat(first, size)
    total = int(group_size.sum())
    e1 = np.repeat(short, group_size)
    within = np.arange(total) - np.repeat(np.cumsum(group_size) - group_size, group_size)
    e2 = short[np.repeat(group_start, group_size) + within]
    keep = e1 != e2
    return np.stack([e1[keep], e2[keep]])

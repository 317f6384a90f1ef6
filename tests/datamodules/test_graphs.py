"""Graphs against an independent brute-force neighbour search."""

import itertools

import numpy as np
import pytest

from datamodules.graphs import CUTOFF, GraphError, build_graph, triplets


def brute_force_pairs(lattice, cart, cutoff):
    """All (i, j, image) with 0 < |r_j + image·L - r_i| <= cutoff, by enumerating image cells."""
    inv = np.linalg.inv(lattice)
    # number of cells needed along each lattice vector: cutoff / (distance between lattice planes)
    heights = 1.0 / np.linalg.norm(inv, axis=0)
    reach = np.ceil(cutoff / heights).astype(int) + 1
    out = []
    for img in itertools.product(*(range(-r, r + 1) for r in reach)):
        shift = np.array(img) @ lattice
        d = np.linalg.norm(cart[None, :, :] + shift - cart[:, None, :], axis=-1)  # [i, j]
        i, j = np.nonzero((d <= cutoff) & (d > 1e-8))
        out += [(a, b, img, d[a, b]) for a, b in zip(i, j, strict=True)]
    return out


def random_cells():
    rng = np.random.default_rng(3)
    cells = []
    for n in (1, 2, 5):
        lat = np.diag(rng.uniform(2.6, 4.5, 3)) + rng.uniform(-0.6, 0.6, (3, 3))
        frac = rng.uniform(0, 1, (n, 3))
        cells.append((lat, rng.integers(3, 80, n), frac @ lat))
    return cells


@pytest.fixture(scope="module")
def cells(sample_structures):
    real = [(s.lattice.matrix, np.array(s.atomic_numbers), s.cart_coords) for s in sample_structures.values()]
    return real + random_cells()


def test_edges_equal_independent_neighbour_count(cells):
    for lat, z, cart in cells:
        try:
            g = build_graph(lat, z, cart)
        except GraphError:
            continue  # a random cell with overlapping atoms; covered in the bad-input tests
        ref = brute_force_pairs(lat, cart, CUTOFF)
        assert g.n_edges == len(ref)
        per_centre = np.bincount([i for i, *_ in ref], minlength=len(z))
        assert np.array_equal(np.bincount(g.edge_index[1], minlength=len(z)), per_centre)
        got = np.sort(np.linalg.norm(g.edge_vec, axis=1))
        assert np.allclose(got, np.sort([d for *_, d in ref]), atol=1e-4)


def test_edge_vectors_follow_the_offset_convention(cells):
    lat, z, cart = cells[0]
    g = build_graph(lat, z, cart)
    j, i = g.edge_index
    vec = cart[j] + g.edge_shift @ lat - cart[i]
    assert np.allclose(vec, g.edge_vec, atol=1e-5)
    assert len({tuple(s) for s in g.edge_shift.tolist()}) > 1  # periodic images are present


def test_triplets_are_ordered_pairs_of_short_edges_per_centre(cells):
    for lat, z, cart in cells[:2]:
        g = build_graph(lat, z, cart)
        t = triplets(g.edge_index, g.edge_vec, 4.0)
        short = np.linalg.norm(g.edge_vec, axis=1) <= 4.0
        k = np.bincount(g.edge_index[1][short], minlength=len(z))
        assert t.shape[1] == int((k * (k - 1)).sum())
        assert np.all(t[0] != t[1])
        assert np.all(g.edge_index[1, t[0]] == g.edge_index[1, t[1]])
        assert np.all(short[t[0]]) and np.all(short[t[1]])
        assert len({(a, b) for a, b in t.T.tolist()}) == t.shape[1]  # no duplicates


def test_bad_structures_are_refused_with_a_reason():
    lat = np.eye(3) * 3.0
    with pytest.raises(GraphError, match="overlapping"):
        build_graph(lat, [26, 26], np.array([[0, 0, 0], [0.2, 0, 0]]))
    with pytest.raises(GraphError, match="no neighbour"):
        build_graph(np.eye(3) * 8.0, [26], np.zeros((1, 3)))
    with pytest.raises(GraphError, match="Z=\\[92\\]"):
        build_graph(lat, [92], np.zeros((1, 3)))

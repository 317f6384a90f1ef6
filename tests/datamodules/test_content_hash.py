"""The store's content hash identifies the data up to float32 storage, not its last-bit noise."""

from __future__ import annotations

import functools
import json

import numpy as np

from datamodules.content_hash import HASH_VERSION, quantize
from datamodules.importer import build_store, load_published
from datamodules.records import expand_sources
from datamodules.store import GraphStore


def noisy(refs, rel: float):
    """`load_published` with every float64 input (lattice, positions, eps, Drude) times 1 + rel * N(0, 1)."""
    rng = np.random.default_rng(7)
    for source, m in load_published(refs):
        if not isinstance(m, Exception):
            f = lambda a: a * (1 + rel * rng.standard_normal(np.shape(a)))  # noqa: E731
            m.lattice, m.cart, m.drude = f(m.lattice), f(m.cart), float(f(np.float64(m.drude)))
            m.eps = f(m.eps.real) + 1j * f(m.eps.imag)
        yield source, m


def build(out, refs, rel: float) -> dict:
    loader = functools.partial(noisy, rel=rel)
    return build_store(out, refs, loader, {"kind": "test"}, grid_points=201, workers=1, progress=False)


def test_float64_noise_before_storage_keeps_the_content_hash(derived_dir, tmp_path):
    refs = expand_sources([str(derived_dir)])
    clean = build(tmp_path / "clean", refs, 0.0)
    # last-bit noise (as another BLAS or CPU gives): edge vectors of symmetric structures that
    # cancel to 0 now come out as +-1e-14, and some values cross a float32 rounding midpoint
    noise = build(tmp_path / "noise", refs, 1e-13)
    assert clean["content_hash"] == noise["content_hash"]
    assert clean["content_hash_version"] == HASH_VERSION == 2
    a, b = GraphStore(tmp_path / "clean").read(0), GraphStore(tmp_path / "noise").read(0)
    assert not np.array_equal(a["edge_vec"], b["edge_vec"])  # the stored bytes do differ
    changed = build(tmp_path / "changed", refs, 1e-3)  # a real change of the data
    assert changed["content_hash"] != clean["content_hash"]


def test_quantize_rounds_to_16_significant_bits_and_flushes_residues():
    x = np.array([1.0, 1.0 + 2**-18, 1.0 + 2**-15, -0.0, 1e-14, -3e-6, 3.0], dtype=np.float32)
    q = quantize(x)
    assert q[0] == q[1] != q[2] and q[3] == q[4] == q[5] == 0 and q[6] == np.float32(3.0).view("<u4")


def test_a_store_manifest_records_its_build_environment(derived_store):
    env = json.loads((derived_store / "manifest.json").read_text())["environment"]
    assert {"python", "numpy", "pymatgen", "cpu", "cpu_isa"} <= set(env) and env["numpy"] == np.__version__

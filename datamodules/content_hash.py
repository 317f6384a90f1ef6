"""The content hash of a store: which data a run trained on, insensitive to floating-point noise.

Version 1 (stores without `content_hash_version` in their manifest) hashed the shards' bytes: a
float64 value within its last bits of a float32 rounding midpoint flipped a stored bit and the
hash (a different BLAS, FMA or CPU gives such last-bit differences in coordinates and spectra).
Version 2 hashes every stored array of every material, integers exactly and floats rounded to
`SIGNIFICANT_BITS` significant bits, magnitudes below `FLOOR` (Å, eV or eps) counting as 0: edge
vectors of symmetric structures are differences that cancel to 0 or to +-1e-14, depending on the
last bits of the coordinates. Noise far below that resolution changes the hash only for the rare
value lying within the noise of a rounding boundary; no rounding removes that last chance (see
docs/reproducibility.md).
"""

from __future__ import annotations

import hashlib

import numpy as np

from .store import blob_nbytes, unpack

HASH_VERSION = 2
SIGNIFICANT_BITS = 16  # of float32's 24: a relative resolution of 2**-16 = 1.5e-5
FLOOR = 2.0**-16  # |x| below this (1.5e-5 Å, eV or eps) is hashed as 0: cancellation residues


def quantize(values: np.ndarray) -> np.ndarray:
    """float32 bit patterns rounded to SIGNIFICANT_BITS significant bits (ties away from zero),
    magnitudes below FLOOR (and -0.0) as 0.

    IEEE floats are sign-magnitude: adding half a unit of the kept last bit to the pattern rounds
    the magnitude, a carry moving into the exponent as it should.
    """
    f = np.ascontiguousarray(values, dtype="<f4")
    f = np.where(np.abs(f) < FLOOR, np.float32(0), f)
    drop = 24 - SIGNIFICANT_BITS
    bits = f.view("<u4").astype(np.uint64)
    return (((bits + (1 << (drop - 1))) >> drop) << drop).astype("<u4")


def shard_values_sha256(data: bytes, materials: list[dict], points: int) -> str:
    """Hash of the arrays of the materials packed in a shard's `data` (see the module docstring)."""
    h = hashlib.sha256()
    for m in materials:
        n, e, offset = int(m["n_atoms"]), int(m["n_edges"]), int(m["offset"])
        record = unpack(data[offset : offset + blob_nbytes(n, e, points)], n, e, points)
        for name, arr in record.items():
            h.update(name.encode() + np.asarray(arr.shape, dtype="<i8").tobytes())
            h.update(quantize(arr).tobytes() if arr.dtype.kind == "f" else np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()

"""Plain summaries of a store and of one material (the data behind `optiscale data info|show`)."""

from __future__ import annotations

import numpy as np

from datamodules.graphs import THREEBODY_CUTOFF, triplets
from datamodules.store import SPLITS, GraphStore


def info(store_path: str) -> dict:
    """The manifest keys worth showing: counts, splits, grid, cutoffs, provenance, rejected records."""
    m = GraphStore(store_path).manifest
    keys = (
        "n_materials",
        "n_records",
        "splits",
        "grid",
        "cutoff",
        "threebody_cutoff",
        "split_seed",
        "split_method",
        "kind",
        "surrogate_version",
        "seed",
        "optics",
        "fidelity",
        "seconds_per_material",
        "cost_workers",
        "sources",
        "content_hash",
        "created",
        "rejected",
    )
    return {k: m[k] for k in keys if k in m}


def show(store_path: str, mat_id: str) -> dict:
    """One material: its split, graph sizes (atoms, edges, triplets), Drude frequency and spectra."""
    store = GraphStore(store_path)
    i = store.lookup(mat_id)
    rec = store.read(i)
    n_trip = triplets(rec["edge_index"].astype(np.int64), rec["edge_vec"], THREEBODY_CUTOFF).shape[1]
    return {
        "mat_id": mat_id,
        "formula": str(store.formulas()[i]),
        "split": SPLITS[int(store.split[i])],
        "n_atoms": int(store.n_atoms[i]),
        "n_edges": int(store.n_edges[i]),
        "n_triplets": int(n_trip),
        "drude": float(rec["drude"][0]),
        "omega": store.omega.tolist(),
        "eps_re": rec["eps"][:, 0].astype(float).tolist(),
        "eps_im": rec["eps"][:, 1].astype(float).tolist(),
    }

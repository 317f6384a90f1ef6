"""Fixtures of the model tests: a small store of the real sample records and a batch of it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sample_store(samples_dir, tmp_path_factory):
    from datamodules.importer import import_records

    out = tmp_path_factory.mktemp("model-stores") / "samples"
    import_records([str(samples_dir)], out, workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def sample_batch(sample_store):
    """Both real samples in one batch, with triplets."""
    from datamodules.datamodule import Collate
    from datamodules.store import GraphStore

    store = GraphStore(sample_store)
    return Collate(with_triplets=True)([store.read(i) | {"idx": i} for i in range(len(store))])

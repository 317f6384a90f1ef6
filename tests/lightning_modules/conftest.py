"""Fixtures of the model tests: a small store of the real sample records, a batch of it, and the
same tests' graphs from either source (the real sample records where present, and surrogate crystals)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sample_store(samples_dir, tmp_path_factory):
    from datamodules.importer import import_records

    out = tmp_path_factory.mktemp("model-stores") / "samples"
    import_records([str(samples_dir)], out, workers=1, progress=False)
    return out


def first_two(store_path):
    """A store's first two materials in one batch, with triplets."""
    from datamodules.datamodule import Collate
    from datamodules.store import GraphStore

    store = GraphStore(store_path)
    return Collate(with_triplets=True)([store.read(i) | {"idx": i} for i in range(2)])


@pytest.fixture(scope="session")
def sample_batch(sample_store):
    """Both real samples in one batch, with triplets."""
    return first_two(sample_store)


@pytest.fixture(scope="session", params=["samples", "surrogate"])
def graph_store(request):
    """The real sample records (skipped where they are absent), then surrogate crystals."""
    return request.getfixturevalue("sample_store" if request.param == "samples" else "surrogate_store")


@pytest.fixture(scope="session")
def graph_batch(graph_store):
    return first_two(graph_store)

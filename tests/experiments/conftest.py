"""Fixtures of the training tests: a 201-point store of the derived records and one trained run."""

from __future__ import annotations

import pytest


def tiny_config(store, workdir, **overrides) -> dict:
    """A grid point small enough for CPU tests: width 16, 2 epochs, batch 8."""
    return {
        "data": str(store),
        "model": "2b-tc",
        "width": 16,
        "seed": 1,
        "epochs": 2,
        "batch_size": 8,
        "warmup_epochs": 0.5,
        "workdir": str(workdir),
        **overrides,
    }


@pytest.fixture(scope="session", name="tiny_config")
def tiny_config_fixture():
    """The `tiny_config(store, workdir, **overrides)` function."""
    return tiny_config


@pytest.fixture(scope="session")
def store201(derived_dir, tmp_path_factory):
    """The 40 derived records on a 201-point grid (32 train, 5 val, 3 test)."""
    from datamodules.importer import import_records

    out = tmp_path_factory.mktemp("train-stores") / "derived201"
    import_records([str(derived_dir)], out, workers=1, chunk_size=16, progress=False, grid_points=201)
    return out


@pytest.fixture(scope="session")
def trained(store201, tmp_path_factory):
    """One finished 2-epoch run: (result of train, tracking URI, config)."""
    from experiments.train import train

    root = tmp_path_factory.mktemp("trained")
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    cfg = tiny_config(store201, root / "work")
    return train(cfg, tracking_uri=uri, experiment="tests"), uri, cfg

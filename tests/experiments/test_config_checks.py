"""A configuration out of range is refused by `optiscale train` before anything is created."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from experiments.cli import main

BAD = [
    (["--set", "precision=banana"], "precision: 'banana' is not one of"),
    (["--batch-size", "0"], "batch_size: 0 "),
    (["--batch-size", "1"], "batch_size: 1 gives fewer than 2 graphs"),
    (["--batch-size", "9", "--devices", "2"], "batch_size: 9 is not divisible by devices=2"),
    (["--set", "lr=-1"], "lr: -1.0 is not a positive number"),  # not the width rule's -29.25
    (["--set", "lr=nan"], "lr: nan is not a positive number"),
    (["--epochs", "0"], "epochs: 0 is below 1"),
    (["--set", "epochs=-3"], "epochs: -3 is below 1"),
    (["--set", "warmup_epochs=-1"], "warmup_epochs: -1.0 is not a finite number >= 0"),
    (["--set", "gradient_clip=-1"], "gradient_clip: -1.0 is not a finite number >= 0"),
    (["--set", "w_spectral=-1"], "w_spectral: -1.0 "),
    (["--set", "w_drude=-0.5"], "w_drude: -0.5 "),
    (["--set", "w_drude=0", "--set", "w_spectral=0"], "w_drude: 0.0 and w_spectral are both 0"),
    (["--devices", "0"], "devices: 0 is below 1"),
    (["--width", "0"], "width: 0 is below 1"),
    (["--D", "1"], "D: 1 is below 2"),
    (["--D", "33"], "D: 33 exceeds the 32 materials of the train split"),
    (["--seed", "-1"], "seed: -1 is outside"),
    (["--set", "threads=0"], "threads: '0' is not 'auto' or a count"),
]


def train_args(store, tmp_path, extra) -> list[str]:
    args = ["train", "--data", str(store), "--model", "2b-tc", "--width", "16", "--seed", "1", "--batch-size", "8"]
    args += ["--set", "epochs=1", "--workdir", str(tmp_path / "work")]  # 1 epoch: cheap where a check is missing
    args += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"]
    return args + extra  # later flags and --set win over the ones above


def assert_refused(capsys, tmp_path, args, message):
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("optiscale: error: ") and message in err, err
    assert err.count("\n") == 1  # one line
    # neither the work dir nor the MLflow store (nor a default runs/ or mlflow/ in the cwd) exists
    assert {p.name for p in tmp_path.iterdir()} <= {"store"}


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[" ".join(e) for e, _ in BAD])
def test_a_bad_value_is_refused_naming_its_key_before_any_run(store201, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    assert_refused(capsys, tmp_path, train_args(store201, tmp_path, extra), message)


def test_a_store_with_one_training_material_is_refused(store201, tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    shutil.copytree(store201, store)
    order = np.load(store / "index" / "train_order.npy")
    np.save(store / "index" / "train_order.npy", order[:1])  # a train split of one material
    monkeypatch.chdir(tmp_path)
    assert_refused(capsys, tmp_path, train_args(store, tmp_path, []), "has 1 training material(s)")

"""Transfer sweeps: the spec of axes P and T, their points, and the refusals of a bad transfer file."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from experiments.sweep.spec import Point, load_spec

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
TRANSFER = yaml.safe_load((CONFIGS / "sweeps" / "transfer.yaml").read_text())


def write(tmp_path: Path, doc: dict) -> str:
    path = tmp_path / "transfer.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_the_transfer_preset_trains_each_target_point_from_scratch_and_from_each_pretraining_run():
    spec = load_spec("transfer")
    assert spec.dataset_for("P").fidelity == "cheap" and spec.dataset_for("T").fidelity == "full"
    assert spec.dataset_for("P").store != spec.dataset_for("T").store
    pre = spec.points("P")
    assert [(p.D, p.seed) for p in pre] == [(800, 1), (800, 42), (1600, 1), (1600, 42), (3200, 1), (3200, 42)]
    assert all(p.pretrain_D == 0 for p in pre)
    target = spec.points("T")
    assert len(target) == 4 * 2 * 4  # D x seeds x (scratch, D_F = 800, 1,600, 3,200)
    assert Point("2b-tc", 32, 100, 1, 3200) in target and Point("2b-tc", 32, 100, 1) in target
    ids = [p.id for p in target]
    assert len(set(ids)) == len(ids)  # a fine-tuned point never shares its name with a scratch one
    assert "2b-tc|w32|D100|s1|F3200" in ids and "2b-tc|w32|D100|s1" in ids


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("pretrain"), "pretrain: axes P and T need a `pretrain` dataset"),
        (lambda d: d["axes"].pop("P"), "axes.T: needs an axis P"),
        (lambda d: d["axes"]["T"].update(widths=[32, 64]), "axes.T.widths: [64] have no pretraining run"),
        (lambda d: d["pretrain"].update(fidelity="rough"), "pretrain.fidelity: must be one of full, cheap"),
        (lambda d: d["recipe"].update(init_from="abc"), "recipe: keys ['init_from'] are set by the sweep itself"),
    ],
)
def test_a_bad_transfer_file_is_refused_in_one_line(tmp_path, change, message):
    doc = copy.deepcopy(TRANSFER)
    change(doc)
    path = write(tmp_path, doc)
    with pytest.raises(ValueError) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), str(err.value)


def test_a_tiny_transfer_sweep_pretrains_then_fine_tunes_each_target_point_from_its_source(tmp_path):
    """Axis T runs axis P first, then every target D from scratch and fine-tuned from the P run of the
    same seed (its run key as init_from); the report carries the transfer fit. Real MLflow, Optuna."""
    import json
    import os
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    repo = Path(__file__).resolve().parents[2]
    tiny = {"builtin": True, "n": 64, "seed": 3, "grid_points": 21}
    doc = {
        "name": "tt",
        "dataset": {"store": str(tmp_path / "full"), **tiny},
        "pretrain": {"store": str(tmp_path / "cheap"), **tiny, "fidelity": "cheap"},
        "recipe": {"epochs": 1, "batch_size": 8, "warmup_epochs": 0.5},
        "seeds": [1],
        "axes": {
            "P": {"models": ["2b-tc"], "widths": [8], "D": [32]},
            "T": {"models": ["2b-tc"], "widths": [8], "D": [8, 16, 32]},
        },
    }
    spec = write(tmp_path, doc)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "experiments.cli", "sweep", "--preset", spec, "--axis", "T", "--tracking-uri", uri]
    cmd += ["--storage", f"sqlite:///{tmp_path / 'optuna.db'}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    client = MlflowClient(uri)

    def finished(name):
        exp = client.get_experiment_by_name(name)
        runs = client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'")
        return [r for r in runs if "run_key" in r.data.tags]

    (source,) = finished("tt-P")
    assert source.data.params["D"] == "32"
    target = finished("tt-T")
    tuned = [r for r in target if r.data.params.get("init_from") not in (None, "None")]
    scratch = [r for r in target if r not in tuned]
    assert sorted(int(r.data.params["D"]) for r in scratch) == [8, 16, 32]
    assert sorted(int(r.data.params["D"]) for r in tuned) == [8, 16, 32]
    assert {r.data.params["init_from"] for r in tuned} == {source.data.tags["run_key"]}
    assert {r.data.params["pretrain_D"] for r in tuned} == {"32"}
    report = json.loads((tmp_path / "reports" / "tt-T" / "fits.json").read_text())
    (rec,) = report["transfer"]
    assert rec["model"] == "2b-tc" and len(rec["points"]) == 3

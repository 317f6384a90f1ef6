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
    assert [(p.D, p.seed, p.pretrain_D) for p in pre] == [(3200, 1, 0), (3200, 42, 0)]
    target = spec.points("T")
    assert len(target) == 6 * 2 * 2  # D x seeds x (scratch, D_F = 3200)
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

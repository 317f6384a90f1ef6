"""`optiscale bench gpu`: the paper's bill from rates, and the whole bench run small on a CPU."""

from __future__ import annotations

import json

import pytest

from experiments.bench.gpu import estimate, paper_runs
from experiments.cli import main


def test_the_published_study_is_420_runs_of_these_sizes():
    runs = paper_runs()
    assert len(runs) == 420
    assert sum(d for _, _, d in runs) == 17_452_500  # 9 x 317,500 + 63 x 20,000 + 42 x 317,500
    assert sum(1 for m, _, _ in runs if m == "2b-cgc") == 42  # no 2B-CGC in the grid


def test_device_hours_from_constant_rates_by_hand():
    single = [{"model": m, "width": w, "graphs_per_s": 1e4, "eval_graphs_per_s": 1e4}
              for m in ("2b-cgc", "2b-tc", "3b-tc") for w in (16, 1024)]  # fmt: skip
    # 500 epochs x (17,452,500 training + 420 x 20,179 validation graphs) / 10^4 graphs/s / 3600 s
    hours = 500 * (17_452_500 + 420 * 20_179) / 1e4 / 3600
    packed = [{"model": m, "width": 256, "gain": 2.0} for m in ("2b-cgc", "2b-tc", "3b-tc")]
    compiled = [{"model": "2b-tc", "speedup": 4.0}]
    got = estimate(single, packed, compiled)["device_hours"]
    assert got["single"] == pytest.approx(hours, abs=0.1)
    assert got["packed"] == pytest.approx(hours / 2, abs=0.1)
    tc_share = 500 * sum(d + 20_179 for m, _, d in paper_runs() if m == "2b-tc") / 1e4 / 3600
    assert got["packed_compiled"] == pytest.approx(hours / 2 - tc_share / 2 * (1 - 1 / 4), abs=0.1)
    assert estimate(single[:2], [], [])["device_hours"] is None  # a model without rates: no bill


@pytest.mark.slow
def test_bench_gpu_runs_small_on_a_cpu(tmp_path, capsys):
    from datamodules.surrogate.generate import generate

    store = tmp_path / "store"
    generate(n=80, seed=0, out=store, grid_points=51)
    out = tmp_path / "bench.json"
    assert main(["bench", "gpu", "--data", str(store), "--json", str(out), "--widths", "8,16"]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and len(report["data_hash"]) >= 16
    assert {(r["model"], r["width"]) for r in report["single"]} == {
        (m, w) for m in ("2b-cgc", "2b-tc", "3b-tc") for w in (8, 16)
    }
    assert all(r["graphs_per_s"] > 0 and r["eval_graphs_per_s"] > 0 for r in report["single"])
    assert sorted({r["K"] for r in report["packed"]}) == [1, 2]
    assert all(r["processes_measured"] == r["K"] for r in report["packed"])
    assert {r["model"] for r in report["compiled"]} == {"2b-cgc", "2b-tc", "3b-tc"}
    assert report["loading"]["collate_ms_3b"] > 0
    assert report["estimate"]["runs"] == 420 and report["estimate"]["device_hours"]["single"] > 0
    assert "device-hours" in capsys.readouterr().out

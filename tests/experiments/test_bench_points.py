"""`optiscale bench points` on CPU: every mode trains its points, then skips them; figures in JSON."""

from __future__ import annotations

import json

from experiments.cli import main


def test_bench_points_times_each_mode_and_skips_the_second_pass(surrogate_store, tmp_path, capsys):
    out = tmp_path / "points.json"
    argv = ["bench", "points", "--data", str(surrogate_store), "--json", str(out), "--points", "2", "--D", "16"]
    assert main(argv + ["--threads", "1", "--modes", "forked,resident"]) == 0
    report = json.loads(out.read_text())
    assert set(report["modes"]) == {"forked", "resident"} and report["data_hash"]
    for row in report["modes"].values():
        assert row["first_s"] > 0 and row["next_s"] > 0 and 0 < row["skip_s"] < row["next_s"]
    assert report["modes"]["forked"]["server_start_s"] > 0
    assert main(argv + ["--modes", "threads"]) != 0 and "unknown mode 'threads'" in capsys.readouterr().err

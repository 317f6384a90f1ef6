"""`optiscale bench train` and `optiscale model summary`: they run and report what they measured."""

import json

import pytest

from experiments.bench.train import default_structures, graph_records, graph_sizes, load_structures, run
from experiments.cli import main


def test_default_structures_are_reproducible_four_atom_cells():
    a, b = default_structures(8), default_structures(8)
    assert [s.as_dict() for s in a] == [s.as_dict() for s in b]
    sizes = graph_sizes(graph_records(a, points=11))
    assert sizes["mean_atoms"] == 4 and 100 < sizes["mean_edges"] < 260 and sizes["mean_triplets"] > 300


def test_bad_structure_files_name_the_file_and_entry(tmp_path):
    bad = tmp_path / "cells.json"
    bad.write_text(json.dumps([default_structures(1)[0].as_dict(), {"lattice": 3}]))
    with pytest.raises(ValueError, match=r"cells.json: entry 1 is not a pymatgen Structure"):
        load_structures(str(bad))
    bad.write_text("{")
    with pytest.raises(ValueError, match="cannot read"):
        load_structures(str(bad))


@pytest.mark.slow  # a fresh worker process: ~20 s on the shared 2 cores
def test_bench_train_writes_figures_for_given_structures(tmp_path):
    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps([s.as_dict() for s in default_structures(4)]))
    out = tmp_path / "bench.json"
    run(
        str(out),
        structures=str(cells),
        models=["2b-tc"],
        widths=[16],
        batch_size=2,
        seconds=0.2,
        lightning=False,
        cpu_bf16=False,
    )
    figures = json.loads(out.read_text())
    (row,) = figures["cpu"]
    assert row["model"] == "2b-tc" and row["width"] == 16 and row["parameters"] == 278_275
    assert row["graphs_per_s_best"] > 0 and row["peak_rss_mb"] > row["rss_growth_mb"] > 0
    assert figures["graphs"]["structures"] == 4


def test_model_summary_json_and_table(capsys):
    assert main(["model", "summary", "--model", "3b-tc", "--width", "64", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["parameters"] == 1_490_147 and sum(d["blocks"].values()) == d["parameters"]
    assert main(["model", "summary", "--model", "2b-cgc", "--width", "16"]) == 0
    assert "278,627" in capsys.readouterr().out

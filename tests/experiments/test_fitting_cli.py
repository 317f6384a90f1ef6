"""`optiscale fit` end to end: CSV and MLflow in, JSON / Markdown / figures out."""

from __future__ import annotations

import csv
import json

from experiments.cli import main

SCHEMA = {"model", "axis", "form", "method", "params", "stderr", "ci95", "aicc", "n_points", "status", "at_bound"}


def test_fit_csv_writes_json_markdown_and_figures(tmp_path, draw_runs, capsys):
    runs = draw_runs("hoffmann", (0.1, 0.3, 0.2, 0.7, 1e5, 2e4), rng_seed=4)
    keep, keep_D = {278275, 80521123}, {2500, 10000, 40000, 160000}  # a 2 x 4 (N, D) grid keeps it short
    path = tmp_path / "runs.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["model", "D", "N", "seed", "val_loss", "note"])
        w.writeheader()
        for r in runs:
            if r["N"] in keep and r["D"] in keep_D:
                w.writerow({**r, "note": "x"})
    out = tmp_path / "out"
    rc = main(
        [
            "fit",
            "--csv",
            str(path),
            "--method",
            "both",
            "--bootstrap",
            "5",
            "--starts",
            "3",
            "--json",
            str(out / "fits.json"),
        ]
        + [
            "--markdown",
            str(out / "fits.md"),
            "--plots",
            str(out / "fig"),
            "--forms",
            "power,broken_amp,hoffmann,kaplan",
        ]
    )
    assert rc == 0
    fits = json.loads((out / "fits.json").read_text())
    assert all(SCHEMA <= set(f) for f in fits)
    assert {f["axis"] for f in fits} == {"D", "N", "ND"} and {f["method"] for f in fits} == {"paper", "robust"}
    assert {f["form"] for f in fits if f["axis"] == "ND"} == {"hoffmann", "kaplan"}
    assert all(f["ci95"] is None for f in fits if f["method"] == "paper")
    assert all(f["ci95"] for f in fits if f["method"] == "robust" and f["params"])
    along_D = [f for f in fits if f["axis"] == "D"]
    assert {f["fixed"]["N"] for f in along_D} == keep and all(f["n_points"] in (4, 12) for f in along_D)
    md = (out / "fits.md").read_text()
    assert md.count("\n| m |") == len(fits)
    figs = sorted(p.name for p in (out / "fig").iterdir())
    assert len(figs) == 2 + 4 + 2 and "m_ND_robust.png" in figs  # 2 N along D, 4 D along N, 2 maps
    assert "best form per series and method" in capsys.readouterr().out


def test_fit_experiment_prints_skipped_runs(tmp_path, capsys, mlflow_store):
    uri = mlflow_store["uri"]
    rc = main(
        [
            "fit",
            "--experiment",
            "small",
            "--tracking-uri",
            uri,
            "--method",
            "paper",
            "--axis",
            "D",
            "--json",
            str(tmp_path / "f.json"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "8 runs, 1 skipped" in out and "status KILLED, not FINISHED" in out
    fits = json.loads((tmp_path / "f.json").read_text())
    power = next(f for f in fits if f["form"] == "power")
    assert abs(power["params"]["alpha"] - 0.3) < 1e-6 and power["status"] == "ok"


def test_fit_bad_csv_is_a_clear_error(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text("model,D,N,seed\nm,1,2,3\n")
    assert main(["fit", "--csv", str(p)]) == 1
    assert f"optiscale: error: {p}: missing column(s) val_loss" in capsys.readouterr().err


def test_fit_experiment_reads_the_store_of_optiscale_tracking_uri(tmp_path, capsys, mlflow_store, monkeypatch):
    monkeypatch.setenv("OPTISCALE_TRACKING_URI", mlflow_store["uri"])
    monkeypatch.chdir(tmp_path)  # no mlflow/ here: the cwd must not matter
    assert main(["fit", "--experiment", "small", "--method", "paper", "--axis", "D", "--bootstrap", "0"]) == 0
    assert "MLflow experiment 'small': 8 runs, 1 skipped" in capsys.readouterr().out
    assert not (tmp_path / "mlflow").exists()


def test_fit_experiment_without_a_store_is_a_clear_error_and_creates_none(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPTISCALE_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--experiment", "sweep"]) == 1
    assert "no tracking store at sqlite:///" in capsys.readouterr().err
    assert not (tmp_path / "mlflow").exists()

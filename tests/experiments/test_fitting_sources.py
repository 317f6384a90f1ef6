"""Runs from CSV files (bad input named by file, row and column) and from a real MLflow store."""

from __future__ import annotations

import pytest

from experiments.fitting import read_csv, read_mlflow
from experiments.fitting.sources import from_records


def _write(path, text):
    path.write_text(text)
    return path


def test_csv_reads_runs_and_ignores_extra_columns(tmp_path):
    p = _write(
        tmp_path / "runs.csv",
        "seed,model,D,N,val_loss,width\n1,2b-tc,2500,278275,0.91,16\n42,2b-tc,2.5e3,278275,0.93,16\n",
    )
    runs = read_csv(p)
    assert runs == [
        {"model": "2b-tc", "D": 2500, "N": 278275, "seed": "1", "val_loss": 0.91},
        {"model": "2b-tc", "D": 2500, "N": 278275, "seed": "42", "val_loss": 0.93},
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("model,D,seed,val_loss\nm,1,1,1\n", "missing column(s) N"),
        ("model,D,N,seed,val_loss\nm,2500,10,1,abc\n", "row 2: column 'val_loss': not a number: 'abc'"),
        (
            "model,D,N,seed,val_loss\nm,2500,10,1,0.5\nm,-5,10,1,0.5\n",
            "row 3: column 'D': D must be a positive whole number",
        ),
        ("model,D,N,seed,val_loss\nm,2500,10.5,1,0.5\n", "row 2: column 'N'"),
        ("model,D,N,seed,val_loss\nm,2500,10,1,0\n", "row 2: column 'val_loss': val_loss must be a positive finite"),
        ("model,D,N,seed,val_loss\nm,2500,10,1,nan\n", "row 2: column 'val_loss'"),
        ("model,D,N,seed,val_loss\nm,2500,10,,0.5\n", "row 2: column 'seed': empty"),
        ("model,D,N,seed,val_loss\nm,2500,10,1,0.5\nm,2500,10,1,0.6\n", "row 3 repeats row 2"),
        ("model,D,N,seed,val_loss\n", "no runs"),
    ],
)
def test_csv_errors_name_file_row_and_column(tmp_path, text, message):
    p = _write(tmp_path / "bad.csv", text)
    with pytest.raises(ValueError) as err:
        read_csv(p)
    assert str(p) in str(err.value) and message in str(err.value), str(err.value)


def test_a_dataframe_is_accepted(draw_runs):
    from experiments.fitting import fit_runs

    pd = pytest.importorskip("pandas")  # installed with mlflow

    runs = draw_runs("power", (1e4, 0.3), noise=0.0)
    (fit,) = fit_runs(pd.DataFrame(runs).assign(extra=1), axes="D", forms=["power"])
    assert fit["params"]["alpha"] == pytest.approx(0.3, abs=1e-9) and fit["fixed"] == {"N": 1288483}


def test_records_errors_name_the_record():
    with pytest.raises(ValueError, match=r"record 1: missing val_loss"):
        from_records(
            [{"model": "m", "D": 1, "N": 1, "seed": 1, "val_loss": 1.0}, {"model": "m", "D": 1, "N": 1, "seed": 2}]
        )


def test_mlflow_reader_takes_finished_runs_and_reports_the_rest(mlflow_store):
    uri, ids = mlflow_store["uri"], mlflow_store["sweep"]
    runs, skipped = read_mlflow("sweep", uri)
    assert len(runs) == 21
    assert {r["D"] for r in runs} == {2500, 5000, 10000, 20000, 40000, 80000, 160000}
    assert {r["N"] for r in runs} == {1288483} and {r["seed"] for r in runs} == {"1", "42", "137"}
    reasons = {s["run_id"]: s["reason"] for s in skipped}
    assert reasons[ids[21]] == "status RUNNING, not FINISHED"
    assert reasons[ids[22]] == "status FAILED, not FINISHED"
    assert reasons[ids[23]] == "missing metric best_val_loss"
    assert reasons[ids[24]] == "missing n_parameters"
    assert "param 'D': not a number: 'abc'" in reasons[ids[25]]
    with pytest.raises(ValueError, match="experiment 'nope' not found"):
        read_mlflow("nope", uri)


def test_the_report_run_of_a_sweep_is_left_out_by_its_tag(mlflow_store):
    from mlflow.tracking import MlflowClient

    from experiments.stores.tracking import KIND_TAG

    uri = mlflow_store["uri"]
    client = MlflowClient(uri)
    exp_id = client.create_experiment("with-report")
    for d in (2500, 10000):
        run_id = client.create_run(exp_id).info.run_id
        for k, v in {"model": "2b-tc", "n_parameters": 1288483, "D": d, "seed": 1}.items():
            client.log_param(run_id, k, v)
        client.log_metric(run_id, "best_val_loss", (1e4 / d) ** 0.3)
        client.set_terminated(run_id, "FINISHED")
    report = client.create_run(exp_id, tags={KIND_TAG: "report"}).info.run_id
    client.log_metric(report, "2b-tc.paper.power.alpha", 0.3)
    client.set_terminated(report, "FINISHED")
    runs, skipped = read_mlflow("with-report", uri)
    assert len(runs) == 2 and skipped == []

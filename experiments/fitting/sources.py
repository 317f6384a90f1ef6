"""Where runs come from: a CSV file, an MLflow experiment, or records in memory.

A run is a dict {"model": str, "D": int, "N": int, "seed": str, "val_loss": float}. Bad input raises
ValueError naming the file (or record), the row and the column; MLflow runs that cannot be used are
returned as `skipped` with the reason.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

COLUMNS = ("model", "D", "N", "seed", "val_loss")


def _count(value, what: str) -> int:
    v = float(value)
    if not math.isfinite(v) or v <= 0 or v != int(v):
        raise ValueError(f"{what} must be a positive whole number, got {value!r}")
    return int(v)


def _loss(value) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"val_loss must be a positive finite number, got {value!r}")
    return v


def make_run(model, D, N, seed, val_loss) -> dict:
    """One validated run; raises ValueError("column: why")."""
    if model is None or str(model).strip() == "":
        raise ValueError("model: empty")
    run: dict = {"model": str(model).strip()}
    for col, fn in (("D", lambda v: _count(v, "D")), ("N", lambda v: _count(v, "N")), ("val_loss", _loss)):
        raw = {"D": D, "N": N, "val_loss": val_loss}[col]
        try:
            run[col] = fn(raw)
        except (TypeError, ValueError) as err:
            msg = str(err) if "must be" in str(err) else f"not a number: {raw!r}"
            raise ValueError(f"column {col!r}: {msg}") from None
    if seed is None or str(seed).strip() == "":
        raise ValueError("column 'seed': empty")
    seed = str(seed).strip()
    run["seed"] = seed[:-2] if seed.endswith(".0") else seed
    return run


def _check_duplicates(runs: list[dict], where: list[str], source: str) -> None:
    seen: dict[tuple, str] = {}
    for run, w in zip(runs, where, strict=True):
        key = (run["model"], run["D"], run["N"], run["seed"], run.get("D_F", 0))  # fine-tuned != scratch
        if key in seen:
            raise ValueError(f"{source}: {w} repeats {seen[key]} (model, D, N, seed = {key})")
        seen[key] = w


def read_csv(path: str | Path) -> list[dict]:
    """Runs from a CSV with columns model,D,N,seed,val_loss (extra columns ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (header: {','.join(header) or 'empty'})")
        runs, where = [], []
        for i, row in enumerate(reader, start=2):  # row 1 is the header
            row = {(k or "").strip(): v for k, v in row.items()}
            try:
                runs.append(make_run(*(row[c] for c in COLUMNS)))
            except ValueError as err:
                raise ValueError(f"{path}: row {i}: {err}") from None
            where.append(f"row {i}")
    if not runs:
        raise ValueError(f"{path}: no runs (only a header)")
    _check_duplicates(runs, where, str(path))
    return runs


def is_fine_tuned(record) -> bool:
    """A run fine-tuned from a pretrained one (D_F > 0): part of a transfer fit, of no scaling series."""
    return str(record.get("D_F") or "").strip() not in ("", "0", "0.0", "None", "nan")


def from_records(records) -> list[dict]:
    """Runs from a pandas DataFrame or an iterable of mappings with the CSV's columns."""
    if hasattr(records, "to_dict"):
        records = records.to_dict("records")
    runs, where = [], []
    for i, rec in enumerate(records):
        missing = [c for c in COLUMNS if c not in rec]
        if missing:
            raise ValueError(f"record {i}: missing {', '.join(missing)}")
        try:
            runs.append(make_run(*(rec[c] for c in COLUMNS)))
        except ValueError as err:
            raise ValueError(f"record {i}: {err}") from None
        where.append(f"record {i}")
    _check_duplicates(runs, where, "records")
    return runs


def _mlflow_names(msg: str) -> str:
    """A run error in MLflow's names: param 'n_parameters', metric 'best_val_loss', ..."""
    msg = msg.replace("column 'val_loss'", "metric 'best_val_loss'").replace("column 'N'", "param 'n_parameters'")
    return msg.replace("column ", "param ")


def read_mlflow(experiment: str, tracking_uri: str | None = None) -> tuple[list[dict], list[dict]]:
    """FINISHED runs of an MLflow experiment -> (runs, skipped).

    Uses params model, D, n_parameters (-> N), seed and metric best_val_loss (-> val_loss). Runs that
    are not FINISHED, lack one of these or hold a bad value are skipped with the reason. Of several
    finished runs of one (model, D, N, seed), the latest is kept and the others are skipped. Runs
    tagged `optiscale.kind` (a sweep's or study's own report run) are not grid points: left out.
    `tracking_uri` defaults to `experiments.stores.tracking.default_tracking_uri()`.
    """
    from experiments.stores import sqlite_store, tracking

    uri = tracking_uri or tracking.default_tracking_uri()
    db = sqlite_store.db_path(uri)
    if db is not None and not db.is_file():
        raise ValueError(f"MLflow experiment {experiment!r} not found: no tracking store at {uri}")
    client = tracking.client_for(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ValueError(f"MLflow experiment {experiment!r} not found at {uri}")
    found, skipped, token = [], [], None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        for r in page:
            rid, p, m = r.info.run_id, r.data.params, r.data.metrics
            if tracking.KIND_TAG in r.data.tags:
                continue
            if r.info.status != "FINISHED":
                skipped.append({"run_id": rid, "reason": f"status {r.info.status}, not FINISHED"})
                continue
            need = [k for k in ("model", "D", "n_parameters", "seed") if k not in p]
            need += ["metric best_val_loss"] if "best_val_loss" not in m else []
            if need:
                skipped.append({"run_id": rid, "reason": f"missing {', '.join(need)}"})
                continue
            try:
                run = make_run(p["model"], p["D"], p["n_parameters"], p["seed"], m["best_val_loss"])
                if str(p.get("pretrain_D", "")).strip() not in ("", "0", "None"):  # fine-tuned: see fitting.transfer
                    try:
                        run["D_F"] = _count(p["pretrain_D"], "pretrain_D")
                    except ValueError as err:
                        raise ValueError(f"param 'pretrain_D': {err}") from None
            except ValueError as err:
                skipped.append({"run_id": rid, "reason": _mlflow_names(str(err))})
                continue
            found.append((r.info.end_time or 0, rid, run))
        token = page.token
        if not token:
            break
    latest: dict[tuple, tuple] = {}
    for _end, rid, run in sorted(found, key=lambda t: (t[0], t[1])):
        key = (run["model"], run["D"], run["N"], run["seed"], run.get("D_F", 0))  # fine-tuned != scratch
        if key in latest:
            skipped.append({"run_id": latest[key][0], "reason": f"superseded by later run {rid} of the same {key}"})
        latest[key] = (rid, run)
    return [dict(run, run_id=rid) for rid, run in latest.values()], skipped

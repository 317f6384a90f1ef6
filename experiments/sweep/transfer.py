"""Transfer sweeps: pretrain on cheap labels (axis `P`), fine-tune on expensive ones (axis `T`).

Axis `P` is an ordinary sweep on the `pretrain` dataset: its `D` are the pretraining sizes D_F.
Axis `T` trains every (model, width, D, seed) of the target dataset from scratch and, as well,
fine-tuned from the `P` run of the same model, width and seed at each D_F (`init_from` = that run's
key, so the two never share a run key). The report fits the scratch law along D and the effective
data transferred D_T(D_F, D) (experiments/fitting/transfer.py).
"""

from __future__ import annotations

from .spec import Point, SweepSpec


def source_runs(spec: SweepSpec, tracking_uri: str):
    """`per_point` of the `T` axis: the recipe keys of a point (`init_from` = run key of its `P` run;
    none for a scratch point). The `P` runs are read from MLflow once, on the first fine-tuned point."""
    keys: dict[tuple, str] = {}

    def per_point(point: Point) -> dict:
        if not point.pretrain_D:
            return {}
        if not keys:
            keys.update(pretrain_run_keys(spec, tracking_uri))
        key = keys.get((point.model, point.width, point.pretrain_D, point.seed))
        if key is None:
            raise RuntimeError(
                f"{point.id}: no finished pretraining run {point.model}|w{point.width}|D{point.pretrain_D}|"
                f"s{point.seed} in experiment {spec.experiment('P')!r}: run axis P first"
            )
        return {"init_from": key}

    return per_point


def pretrain_run_keys(spec: SweepSpec, tracking_uri: str) -> dict[tuple, str]:
    """(model, width, D_F, seed) -> run key of the finished `P` runs."""
    import mlflow
    from experiments.stores.tracking import RUN_KEY_TAG

    client = mlflow.MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(spec.experiment("P"))
    if exp is None:
        return {}
    out = {}
    for r in client.search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=50000):
        p, key = r.data.params, r.data.tags.get(RUN_KEY_TAG)
        if key and p.get("model") and p.get("width") and p.get("D") and p.get("seed"):
            out[(p["model"], int(p["width"]), int(p["D"]), int(p["seed"]))] = key
    return out

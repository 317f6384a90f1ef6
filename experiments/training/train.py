"""Train one grid point (model, width, D, seed) end to end, tracked in MLflow, resumable.

A grid point has a deterministic `run_key` (experiments.training.config). Its local work dir (default
`runs/<experiment>/<run_key>/`) holds `best.ckpt`, `last.ckpt`, `config.yaml` and `state.json`
(the MLflow run id, written atomically). On a call of `train`:

- a FINISHED MLflow run with this key exists: nothing is trained, its results are returned;
- `state.json` names a live (unfinished) run of this key and `last.ckpt` exists: training resumes
  from `last.ckpt` into that same run;
- otherwise any unfinished run of this key is deleted and a fresh run starts (one run per key).

Under DDP only rank 0 talks to MLflow; the other ranks (re-launched copies of the same command)
follow the same files: they resume from `last.ckpt` exactly when rank 0 does.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only

from datamodules.atomic import atomic_write_json, atomic_write_text
from datamodules.datamodule import GraphDataModule
from datamodules.environment import training_environment
from experiments.stores import tracking
from lightning_modules.module import SpectraModule

from . import finetune
from .callbacks import EpochPrinter, LogBeforeCheckpoint, checkpoint_callbacks, early_stopping
from .config import TrainConfig, dump, load_config, on_gpu, resolve
from .monitor import ThroughputMonitor

PARAM_LIMIT = 500  # characters of an MLflow param value
# the work dir also holds config.yaml and state.json: not a sign of a stale checkpoint directory
warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")


@contextlib.contextmanager
def torch_threads(n: int):
    """Train with exactly `n` torch CPU threads (the recorded count: CPU sums are split over threads);
    the previous count is restored, since sweeps and tests train several points in one process."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _lock(workdir: Path):
    """Exclusive lock of a grid point's work dir for this process (released when it exits)."""
    fh = open(workdir / ".lock", "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise RuntimeError(f"{workdir} is being trained by another process (lock {workdir / '.lock'})") from None
    return fh


def _result(client, run, status: str) -> dict:
    data = run.data
    return {
        "run_id": run.info.run_id,
        "run_key": data.tags.get(tracking.RUN_KEY_TAG),
        "status": status,
        "best_val_loss": data.metrics.get("best_val_loss"),
        "best_epoch": int(data.metrics["best_epoch"]) if "best_epoch" in data.metrics else None,
        "n_parameters": int(data.params["n_parameters"]),
        "test": {k: v for k, v in data.metrics.items() if k.startswith("test_")},
        "best_checkpoint": _local(f"{run.info.artifact_uri}/checkpoints/best.ckpt"),
    }


def _local(uri: str) -> str:
    """A file:// URI as a path; other URIs unchanged."""
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def _params(resolved: dict) -> dict[str, str]:
    return {k: str(v)[:PARAM_LIMIT] for k, v in resolved.items() if k != "run_key"}


def _start_run(client, exp_id: str, resolved: dict, tags: dict | None):
    from mlflow.entities import Param

    r = resolved
    name = f"{r['model']}-w{r['width']}-D{r['D']}-s{r['seed']}"
    all_tags = {"mlflow.runName": name, tracking.RUN_KEY_TAG: r["run_key"], tracking.STATUS_TAG: "running"}
    all_tags.update({k: str(v) for k, v in (tags or {}).items()})
    run = client.create_run(exp_id, tags=all_tags, run_name=name)
    params = [Param(k, v) for k, v in _params(resolved).items()]
    for i in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[i : i + 100])
    return run.info.run_id


def _run_environment(resolved: dict, gpu: bool) -> dict[str, str]:
    """`env.*` tags: what determines the numbers besides the configuration (docs/reproducibility.md)."""
    env = training_environment(gpu)
    env["torch_threads"] = str(resolved["threads"])  # the count the run trains with (train applies it)
    return {f"env.{k}": v for k, v in env.items()}


def _prepare_rank0(client, exp_id: str, resolved: dict, workdir: Path, tags: dict | None, tracking_uri: str, env):
    """Decide between resume and fresh start; returns (run_id, ckpt_path or None, resumed)."""
    key = resolved["run_key"]
    live = {r.info.run_id: r for r in tracking.runs_with_key(client, exp_id, key)}
    state_file, last = workdir / "state.json", workdir / "last.ckpt"
    state = _read_json(state_file)
    run_id = state.get("run_id")
    theirs = (state.get("tracking_uri", tracking_uri), state.get("run_key", key))
    if last.exists() and "status" not in state and theirs != (tracking_uri, key):
        raise ValueError(
            f"{workdir} holds an unfinished run of grid point {theirs[1]} in tracking store {theirs[0]}: "
            f"resume it with the same arguments, or train into another --workdir"
        )
    if run_id in live and last.exists():
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, tracking.STATUS_TAG, "running")
        tracking.note_environment_change(client, str(run_id), env)
        return run_id, str(last), True
    for orphan in live:  # unfinished runs without a checkpoint to continue from: nothing to keep
        client.delete_run(orphan)
    for stale in workdir.glob("*.ckpt"):
        stale.unlink()
    run_id = _start_run(client, exp_id, resolved, {**env, **(tags or {})})
    atomic_write_json(
        state_file, {"run_id": run_id, "run_key": key, "experiment_id": exp_id, "tracking_uri": tracking_uri}
    )
    return run_id, None, False


def _write_test_table(table: dict, store_path: str, workdir: Path) -> Path:
    """`test_materials.csv`: mat_id, formula and every test metric, one row per test material."""
    from datamodules.store import GraphStore

    store = GraphStore(store_path)
    ids, formulas = store.mat_ids(), store.formulas()
    names = [k for k in table if k != "idx"]
    lines = [",".join(["mat_id", "formula", *names])]
    for row, i in enumerate(table["idx"]):
        lines.append(",".join([ids[i], formulas[i], *(f"{table[k][row]:.8g}" for k in names)]))
    path = workdir / "test_materials.csv"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def train(
    config: dict | TrainConfig,
    extra_callbacks=(),
    tracking_uri: str | None = None,
    experiment: str = "optiscale",
    tags: dict | None = None,
    resolved: dict | None = None,
) -> dict:
    """Train one grid point; returns {"run_id", "run_key", "status", "best_val_loss", "best_epoch",
    "n_parameters", "test": {test_*: value}, "best_checkpoint"} with status "finished", "resumed"
    (finished after continuing an interrupted run) or "skipped" (a FINISHED run of this key already
    existed; its checkpoint is then the MLflow artifact). `config`: a dict of overrides of
    configs/train.yaml (at least data, model, width, seed) or a TrainConfig. On DDP ranks other
    than 0 the dict holds only "run_key" and status "worker". `resolved`: `resolve(config)` when the
    caller already has it (a study trial), so the store is read and the model counted once."""
    cfg = config if isinstance(config, TrainConfig) else load_config(dict(config))
    resolved = dict(resolved) if resolved is not None else resolve(cfg)
    key = resolved["run_key"]
    workdir = Path(cfg.workdir or Path("runs") / experiment / key).resolve()
    resolved["workdir"] = str(workdir)  # not part of the key
    uri = tracking_uri or tracking.default_tracking_uri()
    world = int(cfg.devices)  # batch_size divides by it: checked by load_config/resolve
    rank0 = getattr(rank_zero_only, "rank", 0) == 0  # set by Lightning at import

    lock, logger, run_id, ckpt, resumed, client = None, False, None, None, False, None
    if rank0:
        client = tracking.client_for(uri)
        exp_id = tracking.experiment_id(client, experiment, uri)
        if cfg.init_from is not None:  # refused here (model, width) before any run of this key exists
            tags = {**(tags or {}), **finetune.prepare(resolved, cfg, client)}
        finished = [r for r in tracking.runs_with_key(client, exp_id, key) if r.info.status == "FINISHED"]
        if finished:
            return _result(client, finished[0], "skipped")
        workdir.mkdir(parents=True, exist_ok=True)
        lock = _lock(workdir)
        env = _run_environment(resolved, on_gpu(cfg.accelerator))
        run_id, ckpt, resumed = _prepare_rank0(client, exp_id, resolved, workdir, tags, uri, env)
        tracking.log_training_input(client, run_id, resolved)  # the UI's Dataset column
        atomic_write_text(workdir / "config.yaml", dump(resolved))
        logger = tracking.RunLogger(
            experiment_name=experiment,
            tracking_uri=uri,
            run_id=run_id,
            seen=tracking.seen_steps(client, run_id) if resumed else (),
        )
    else:
        last = workdir / "last.ckpt"
        ckpt = str(last) if last.exists() else None

    try:
        with torch_threads(resolved["threads"]):
            return _fit_and_test(cfg, resolved, workdir, logger, ckpt, extra_callbacks, world, client, run_id, resumed)
    except BaseException as err:
        if (
            rank0 and client is not None
        ):  # a pruned trial (a callback raised optuna.TrialPruned) is a deliberate, final stop
            pruned = _is_pruned(err)
            client.set_tag(run_id, tracking.STATUS_TAG, "pruned" if pruned else "interrupted")
            client.set_terminated(run_id, "KILLED" if pruned else "FAILED")
        raise
    finally:
        if lock is not None:
            lock.close()


def _is_pruned(err: BaseException) -> bool:
    """optuna.TrialPruned (optuna is not imported here unless a caller already did)."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(err, optuna.TrialPruned)


def _fit_and_test(cfg, resolved, workdir, logger, ckpt, extra_callbacks, world, client, run_id, resumed) -> dict:
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = SpectraModule(resolved)
    if cfg.init_from is not None:  # source weights only on a fresh start: a resume has its own last.ckpt
        finetune.setup_module(
            module, resolved, cfg.freeze, load=ckpt is None and client is not None, client=client, run_id=run_id
        )
    dm = GraphDataModule(
        cfg.data,
        D=resolved["D"],
        batch_size=cfg.batch_size // world,
        num_workers=resolved["num_workers"],
        triplets=module.needs_triplets,
        seed=cfg.seed,
        pin_memory=on_gpu(cfg.accelerator),
    )
    checkpoint, last = checkpoint_callbacks(workdir)
    trainer = L.Trainer(
        max_epochs=resolved["epochs"],  # with max_steps: the epochs that hold them (config.epochs_for_steps)
        max_steps=-1 if cfg.max_steps is None else cfg.max_steps,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=resolved["precision"],
        # clipping: SpectraModule.configure_gradient_clipping (the fused optimiser under bf16-mixed)
        use_distributed_sampler=False,
        logger=logger,
        callbacks=[
            LogBeforeCheckpoint(),
            checkpoint,
            last,
            EpochPrinter(),
            ThroughputMonitor(),
            *early_stopping(cfg.early_stop_patience),
            *extra_callbacks,
        ],
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=workdir,
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
    for callback in extra_callbacks:  # a stop decided under DDP surfaces after fit (Optuna pruning)
        if hasattr(callback, "check_pruned"):
            callback.check_pruned()
    best_path = checkpoint.best_model_path
    tested = trainer.test(module, datamodule=dm, ckpt_path=best_path, verbose=False)[0]
    if trainer.global_rank != 0:
        return {"run_key": resolved["run_key"], "status": "worker"}
    best_epoch = int(torch.load(best_path, map_location="cpu", weights_only=False, mmap=True)["epoch"])
    best = float(checkpoint.best_model_score)  # type: ignore[arg-type]  # set: best.ckpt exists
    client.log_metric(run_id, "best_val_loss", best, step=best_epoch)
    client.log_metric(run_id, "best_epoch", best_epoch, step=best_epoch)
    client.log_artifact(run_id, str(workdir / "config.yaml"))
    client.log_artifact(run_id, best_path, artifact_path="checkpoints")
    client.log_artifact(run_id, str(_write_test_table(module.test_table, cfg.data, workdir)))
    client.set_tag(run_id, tracking.STATUS_TAG, "finished")
    client.set_terminated(run_id, "FINISHED")
    atomic_write_json(workdir / "state.json", {**_read_json(workdir / "state.json"), "status": "finished"})
    result = _result(client, client.get_run(run_id), "resumed" if resumed else "finished")
    result["test"] = {k: float(v) for k, v in tested.items()}
    result["best_checkpoint"] = best_path
    return result

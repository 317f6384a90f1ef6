"""`optiscale study`: an Optuna study sizing a model (width, depth, heads, lr, weight decay) at a fixed D."""

from __future__ import annotations

from lightning_modules.registry import model_help


def register(cli) -> None:
    p = cli.command(
        "study",
        "Optuna study of model capacity at a fixed D (persistent, resumable, pruned; one MLflow run per trial)",
    )
    p.add_argument("--config", default=None, help="study YAML (default experiments/configs/studies/default.yaml)")
    p.add_argument("--data", default=None, help="store directory")
    p.add_argument("--D", type=int, default=None, help="training materials of every trial")
    p.add_argument("--model", default=None, help=model_help())
    p.add_argument("--seed", type=int, default=None, help="training seed of every trial")
    p.add_argument("--n-trials", type=int, default=None, help="trials to add in this run (rejected ones count)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of every trial")
    p.add_argument("--budget", type=float, default=None, metavar="MAX_PARAMETERS", help="parameter budget")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///<cwd>/mlflow/optuna.db)")
    p.add_argument("--study-name", default=None, help="Optuna study name (a rerun continues it)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default that of optiscale train)")
    p.add_argument("--experiment", default=None, help="MLflow experiment of the trials")
    p.add_argument("--runs", default=None, help="root of the trials' work dirs (default runs/<experiment>/)")
    p.add_argument("--report-dir", default="reports/studies", help="where the JSON and Markdown reports go")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a training recipe key")
    p.add_argument("--json", default=None, metavar="OUT", help="write the study report (JSON) here")
    p.set_defaults(func=cmd_study)


def cmd_study(args) -> int:
    from datamodules.atomic import atomic_write_json
    from experiments.study.run import run_capacity, run_study
    from experiments.study.spec import load_spec
    from experiments.training.config import parse_assignments

    overrides = dict(
        data=args.data,
        D=args.D,
        model=args.model,
        seed=args.seed,
        n_trials=args.n_trials,
        epochs=args.epochs,
        budget=None if args.budget is None else int(args.budget),
        storage=args.storage,
        name=args.study_name,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        runs=args.runs,
    )
    spec = load_spec(args.config, overrides, recipe=parse_assignments(args.set))
    result = run_capacity(spec, args.report_dir) if spec.capacity else run_study(spec, args.report_dir)
    if args.json:
        atomic_write_json(args.json, result)
    best = result.get("best")
    if best is not None:  # one line; the whole report is in --json OUT and --report-dir
        params = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in best["params"].items())
        size = f", {best['n_parameters']:,} parameters" if best.get("n_parameters") else ""
        print(f"[study] best trial {best['number']}: val_loss {best['value']:.5g} ({params}{size})")
    return 0

"""`optiscale train` (one grid point, tracked in MLflow) and `optiscale predict` (spectra of structures)."""

from __future__ import annotations

from lightning_modules.registry import model_help


def register(cli) -> None:
    p = cli.command("train", "train one grid point (model, width, D, seed); logs to MLflow; resumes if interrupted")
    p.add_argument("--data", required=True, help="store directory (optiscale data import)")
    p.add_argument("--model", required=True, help=model_help())
    p.add_argument("--width", required=True, type=int, help="hidden width h")
    p.add_argument("--D", type=int, default=None, help="training materials: the first D of the train split (all)")
    p.add_argument("--seed", required=True, type=int)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size (split over DDP ranks)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default $OPTISCALE_TRACKING_URI or mlflow/)")
    p.add_argument("--experiment", default="optiscale", help="MLflow experiment name")
    p.add_argument("--accelerator", default=None, help="auto, cpu, gpu")
    p.add_argument("--devices", type=int, default=None, help="processes/GPUs (with --strategy ddp)")
    p.add_argument("--strategy", default=None, help="auto or ddp")
    p.add_argument("--workdir", default=None, help="checkpoints and state (default runs/<experiment>/<run_key>)")
    p.add_argument(
        "--init-from", default=None, metavar="RUN_KEY|CKPT", help="fine-tune from a finished run or checkpoint"
    )
    p.add_argument("--config", default=None, help="recipe YAML (default experiments/configs/train.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the result dict to this file")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="an MLflow tag of the run")
    p.set_defaults(func=cmd_train)

    p = cli.command("predict", "eps(w), Drude frequency and reflectance of CIF/POSCAR structures from a checkpoint")
    p.add_argument("files", nargs="+", metavar="FILE", help="CIF or POSCAR files")
    p.add_argument("--ckpt", required=True, help="a checkpoint written by optiscale train (best.ckpt)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG figures")
    p.set_defaults(func=cmd_predict)

    from experiments.cli.data import BENCH

    p = cli.command(
        "gpu", "GPU figures: per-process and packed training rates, compile, loading, the paper's hours", BENCH
    )
    p.add_argument("--data", required=True, help="a store whose training graphs are timed")
    p.add_argument("--json", required=True, metavar="OUT", help="where to write the figures")
    p.add_argument("--small", action="store_true", help="the small CPU set also on a GPU (a smoke test)")
    p.add_argument("--max-seconds", type=float, default=900.0, help="stop waiting for compilation after this")
    p.add_argument("--widths", default=None, help="comma-separated widths (default: the paper's 16 ... 1024)")
    p.add_argument("--packs", default=None, help="comma-separated K of the packed runs (default 1,2,4,8)")
    p.set_defaults(func=cmd_bench_gpu)

    p = cli.command("points", "fixed cost per sweep point: subprocess, forked, resident; skip times", BENCH)
    p.add_argument("--data", required=True, help="a store to train the tiny points on")
    p.add_argument("--json", required=True, metavar="OUT", help="where to write the figures")
    p.add_argument("--points", type=int, default=4, help="points per mode (each then skipped once)")
    p.add_argument("--D", type=int, default=64, help="training materials per point")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per point")
    p.add_argument("--modes", default="subprocess,forked,resident", help="comma-separated subset")
    p.set_defaults(func=cmd_bench_points)


def cmd_bench_points(args) -> int:
    from experiments.bench.points import run

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    run(args.data, args.json, args.points, args.D, args.threads, modes)
    print(f"[bench points] figures in {args.json}")
    return 0


def cmd_bench_gpu(args) -> int:
    from experiments.bench.gpu import bench_gpu

    ints = lambda text: [int(x) for x in text.split(",")] if text else None  # noqa: E731
    report = bench_gpu(
        args.data, args.json, True if args.small else None, args.max_seconds, ints(args.widths), ints(args.packs)
    )
    hours = report["estimate"]["device_hours"] or report["estimate"]["why"]
    print(f"[bench gpu] the paper's {report['estimate']['runs']} runs: {hours} device-hours; figures in {args.json}")
    return 0


def cmd_train(args) -> int:
    from lightning.pytorch.utilities import rank_zero_only

    from datamodules.atomic import atomic_write_json
    from experiments.training.config import load_config, parse_assignments
    from experiments.training.train import train

    overrides = parse_assignments(args.set)
    flags = dict(
        data=args.data,
        model=args.model,
        width=args.width,
        D=args.D,
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        workdir=args.workdir,
        init_from=args.init_from,
    )
    overrides.update({k: v for k, v in flags.items() if v is not None})  # a flag left out keeps its --set
    cfg = load_config(overrides, args.config)
    tags = parse_assignments(args.tag)
    result = train(cfg, tracking_uri=args.tracking_uri, experiment=args.experiment, tags=tags)
    if getattr(rank_zero_only, "rank", 0) != 0:
        return 0
    if result["status"] == "skipped":
        print(f"grid point {result['run_key']} already finished in MLflow run {result['run_id']}: skipped")
    print(train_summary(cfg, result), flush=True)
    if args.json:
        atomic_write_json(args.json, result)
    return 0


def train_summary(cfg, result: dict) -> str:
    """One line for a finished point; the full result goes to --json OUT."""
    test = result.get("test") or {}
    parts = []
    if result.get("best_val_loss") is not None:  # best_epoch counts from 0, the epoch lines from 1
        epoch = "" if result.get("best_epoch") is None else f" (epoch {result['best_epoch'] + 1})"
        parts.append(f"best val_loss {result['best_val_loss']:.5g}{epoch}")
    if "test_loss" in test:
        parts.append(f"test_loss {test['test_loss']:.5g}")
    if result.get("n_parameters"):
        parts.append(f"{result['n_parameters']:,} parameters")
    point = f"{cfg.model} w{cfg.width} D{cfg.D if cfg.D is not None else 'all'} s{cfg.seed}"
    return f"[train] {point} {result['status']}: {', '.join(parts)}; MLflow run {result['run_id']}"


def cmd_predict(args) -> int:
    from experiments.training.predict import predict

    summary = predict(args.ckpt, args.files, args.out, plot=not args.no_plot)
    print(f"predicted {len(summary['predicted'])} of {len(args.files)} structures into {args.out}")
    for f in summary["failed"]:
        print(f"  failed {f['file']}: {f['reason']}")
    return 1 if summary["failed"] else 0

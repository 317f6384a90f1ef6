"""`optiscale model summary` and `optiscale bench train`."""

from __future__ import annotations

import json

from experiments.cli.data import BENCH
from lightning_modules.registry import model_names

MODEL = ("model", "inspect the OptiMetal models")
NAMES = model_names()  # the registry imports no torch: --help stays fast


def register(cli) -> None:
    p = cli.command("summary", "parameter counts of a model, per block", MODEL)
    p.add_argument("--model", required=True, choices=NAMES)
    p.add_argument("--width", type=int, required=True, help="width h (spectra head 4h)")
    p.add_argument("--points", type=int, default=2001, help="frequency points of the predicted spectra")
    p.add_argument("--json", action="store_true", help="print the JSON object")
    p.set_defaults(func=cmd_summary)

    p = cli.command("train", "training throughput and peak memory of the models; Lightning overhead", BENCH)
    p.add_argument("--json", required=True, metavar="OUT", help="where to write the figures")
    p.add_argument("--structures", default=None, help="JSON list of pymatgen Structure dicts (default: built-in)")
    p.add_argument("--models", default=",".join(NAMES), help="comma-separated model names")
    p.add_argument("--widths", default="64,256", help="comma-separated widths")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--seconds", type=float, default=8.0, help="time budget of each throughput measurement")
    p.add_argument("--no-lightning", action="store_true", help="skip the Lightning-loop overhead measurement")
    p.add_argument("--no-cpu-bf16", action="store_true", help="skip the extra CPU rows in bf16 autocast")
    p.set_defaults(func=cmd_bench_train)


def cmd_summary(args) -> int:
    from lightning_modules.summary import summary

    d = summary(args.model, args.width, args.points)
    if args.json:
        print(json.dumps(d, indent=1))
        return 0
    print(f"{d['model']}  width {d['width']}  points {d['points']}")
    for k, n in d["blocks"].items():
        print(f"  {k:14s} {n:>14,}")
    print(f"  {'total':14s} {d['parameters']:>14,}")
    return 0


def cmd_bench_train(args) -> int:
    from experiments.bench.train import run

    run(
        args.json,
        structures=args.structures,
        models=args.models.split(","),
        widths=[int(w) for w in args.widths.split(",")],
        batch_size=args.batch_size,
        threads=args.threads,
        seconds=args.seconds,
        lightning=not args.no_lightning,
        cpu_bf16=not args.no_cpu_bf16,
    )
    return 0

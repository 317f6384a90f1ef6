"""`optiscale fit`: scaling laws fitted to the runs of an MLflow experiment or a CSV."""

from __future__ import annotations

import sys
from pathlib import Path

from experiments.cli.data import BENCH


def register(cli) -> None:
    p = cli.command("fit", "fit scaling laws (power, floor, broken, BNSL, 2-D) to validation losses; AICc table")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--experiment",
        metavar="NAME",
        action="append",
        help="MLflow experiment whose FINISHED runs are read; repeat it to fit several side by side",
    )
    src.add_argument("--csv", metavar="FILE", help="CSV with columns model,D,N,seed,val_loss (extra ignored)")
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default $OPTISCALE_TRACKING_URI, else sqlite:///<cwd>/mlflow/mlflow.db)",
    )
    p.add_argument("--method", choices=("paper", "robust", "both"), default="both")
    p.add_argument("--axis", choices=("D", "N", "ND", "all"), default="all", help="fits along D, N, over (N, D)")
    p.add_argument("--forms", default=None, help="comma-separated subset of the forms (default: all)")
    p.add_argument("--json", metavar="OUT", help="write the list of fits as JSON")
    p.add_argument("--markdown", metavar="OUT", help="write the AICc table as Markdown")
    p.add_argument("--plots", metavar="DIR", help="write the figures (PNG) into DIR")
    p.add_argument("--bootstrap", type=int, default=200, metavar="K", help="bootstrap replicates (robust)")
    p.add_argument("--starts", type=int, default=32, metavar="K", help="starting points (robust)")
    p.add_argument("--seed", type=int, default=0, help="seed of the robust starts and the bootstrap")
    p.set_defaults(func=cmd_fit)

    p = cli.command("plan", "D (or N) needed for a target loss, data- or model-limited, and the cost")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--experiment",
        metavar="NAME",
        action="append",
        help="MLflow experiment whose FINISHED runs are read; repeat it to plan from the D and the N sweep"
        " of one recipe together (a point in both is used once)",
    )
    src.add_argument("--csv", metavar="FILE", help="CSV as for fit (optional columns graphs_per_s, epochs)")
    p.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default as for fit)")
    p.add_argument("--target-loss", type=float, required=True, metavar="L", help="the validation loss to reach")
    p.add_argument("--json", required=True, metavar="OUT", help="write the plan (a list of entries) as JSON")
    p.add_argument("--md", metavar="OUT.md", help="write the plan as Markdown")
    p.add_argument("--plot", metavar="OUT.png", help="plot the laws, their bands, the target and the x needed")
    p.add_argument(
        "--cost-per-material",
        type=float,
        metavar="H",
        help="DFT core-hours per material (default: from the store: the records' timing or the surrogate's)",
    )
    p.add_argument("--data", metavar="STORE", help="the sweep's store (default: the `data` param of its runs)")
    p.add_argument(
        "--transfer-experiment",
        metavar="NAME",
        help="MLflow experiment with fine-tuned runs (default: those of --experiment, if any): their transfer"
        " law gives the expensive materials needed after cheap pretraining",
    )
    p.add_argument(
        "--pretrain-D",
        metavar="N[,N]",
        default="",
        help="pretraining sizes D_F to plan for, besides the fitted ones (outside them: extrapolated)",
    )
    p.add_argument("--cheap-data", metavar="STORE", help="the store of the cheap labels (cost per cheap material)")
    p.add_argument("--cost-per-cheap-material", type=float, metavar="H", help="core-hours per cheap material")
    p.add_argument("--forms", default=None, help="comma-separated subset of the forms (default: all)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="K", help="bootstrap replicates")
    p.add_argument("--starts", type=int, default=32, metavar="K", help="starting points")
    p.add_argument("--seed", type=int, default=0, help="seed of the starts and the bootstrap")
    p.set_defaults(func=cmd_plan)

    p = cli.command("fit", "cost of the fitting methods and calibration of their stated errors", BENCH)
    p.add_argument("--json", required=True, metavar="OUT", help="where to write the figures")
    p.add_argument("--draws", type=int, default=30, help="noise draws per law")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from datamodules.atomic import atomic_write_json
    from experiments.bench.fitting import run_bench

    result = run_bench(draws=args.draws, seed=args.seed)
    atomic_write_json(args.json, result)
    print(f"wrote {args.json}")
    return 0


def cmd_fit(args) -> int:
    from experiments.fitting import (
        AXES,
        best_fits,
        fit_runs,
        plot_fits,
        read_csv,
        read_mlflow,
        select,
        write_json,
        write_markdown,
    )
    from experiments.fitting.compare import label_runs, tag_experiments
    from experiments.fitting.report import markdown_table

    if args.bootstrap < 0 or args.starts < 1:
        raise ValueError("--bootstrap must be >= 0 and --starts >= 1")
    if args.csv:
        runs, skipped_runs, source = read_csv(args.csv), [], args.csv
    elif len(args.experiment) == 1:
        runs, skipped_runs = read_mlflow(args.experiment[0], args.tracking_uri)
        source = f"MLflow experiment {args.experiment[0]!r}"
    else:
        if len(set(args.experiment)) < len(args.experiment):
            raise ValueError(f"--experiment: an experiment is named twice in {args.experiment}")
        runs, skipped_runs = [], []
        for name in args.experiment:
            got, skipped = read_mlflow(name, args.tracking_uri)
            runs += label_runs(got, name)
            skipped_runs += skipped
        source = "MLflow experiments " + ", ".join(repr(n) for n in args.experiment)
    print(f"{source}: {len(runs)} runs" + (f", {len(skipped_runs)} skipped" if skipped_runs else ""))
    for s in skipped_runs:
        print(f"  skipped run {s['run_id']}: {s['reason']}")
    if not runs:
        raise ValueError(f"{source}: no usable runs")
    axes = AXES if args.axis == "all" else (args.axis,)
    forms = [f.strip() for f in args.forms.split(",")] if args.forms else None
    skipped_groups: list[dict] = []
    transfer: list[dict] = []
    fits = fit_runs(
        runs,
        axes=axes,
        method=args.method,
        forms=forms,
        starts=args.starts,
        bootstrap=args.bootstrap,
        seed=args.seed,
        skipped=skipped_groups,
        transfer=transfer,
    )
    for rec in transfer:  # fine-tuned runs (param pretrain_D): the effective data transferred
        law = rec.get("law")
        line = f"a={law['a']:.3g}, b={law['b']:.3g}, k={law['k']:.3g}" if law else rec["status"]
        print(f"  transfer {rec['model']}: {len(rec['points'])} fine-tuned cells; D_T = k D_F^a D^b: {line}")
    for g in skipped_groups:
        fixed = ", ".join(f"{k}={v}" for k, v in g["fixed"].items())
        print(f"  no series: {g['model']} along {g['axis']}" + (f" ({fixed})" if fixed else "") + f": {g['reason']}")
    tag_experiments(fits)
    failed = [f for f in fits if f["status"] != "ok"]
    print(f"{len(fits)} fits, {len(fits) - len(failed)} ok; best form per series and method:")
    for f in best_fits(fits):
        fixed = ", ".join(f"{k}={v}" for k, v in f["fixed"].items())
        same = [g for g in fits if select.group_key(g) == select.group_key(f) and g.get("break_in_range")]
        loc = "D_c" if f["axis"] == "ND" else "xc"
        brk = "".join(f"; break claimed by {g['form']} at {loc}={g['params'][loc]:.4g}" for g in same)
        print(f"  {f['model']} {f['axis']}{' (' + fixed + ')' if fixed else ''} {f['method']}: {f['form']}{brk}")
    if args.json:
        print(f"wrote {write_json(fits, args.json, transfer=transfer)}")
    if args.markdown:
        print(f"wrote {write_markdown(fits, args.markdown, transfer=transfer)}")
    if args.plots:
        paths = plot_fits(fits, runs, args.plots)
        print(f"wrote {len(paths)} figures into {args.plots}")
    if not (args.json or args.markdown or args.plots):
        sys.stdout.write(markdown_table(fits))
    return 0


def cmd_plan(args) -> int:
    from datamodules.atomic import atomic_write_json
    from experiments.fitting import fit_runs, read_csv, read_mlflow
    from experiments.fitting.costs import material_cost, mlflow_store
    from experiments.fitting.plan import choose_law, series_groups
    from experiments.fitting.plan_report import plot_plan, summary_line, write_plan_markdown
    from experiments.fitting.planner import plan_fits, read_csv_throughput, read_mlflow_throughput
    from experiments.fitting.transfer import fit_transfer, rows_from_records

    if args.bootstrap < 2 or args.starts < 1:
        raise ValueError("--bootstrap must be >= 2 and --starts >= 1")
    if args.cost_per_material is not None and not args.cost_per_material >= 0:
        raise ValueError(f"--cost-per-material must be >= 0, got {args.cost_per_material!r}")
    if args.data and not (Path(args.data) / "manifest.json").is_file():
        raise ValueError(f"--data {args.data}: not an optiscale store (no manifest.json)")
    if args.csv:
        runs, source, rates = read_csv(args.csv), args.csv, read_csv_throughput(args.csv)
        store = args.data
    else:
        if len(set(args.experiment)) < len(args.experiment):
            raise ValueError(f"--experiment: an experiment is named twice in {args.experiment}")
        runs, rates = [], []
        seen: dict[tuple, str] = {}
        for name in args.experiment:
            got, _skipped = read_mlflow(name, args.tracking_uri)
            for run in got:
                key = (run["model"], run["D"], run["N"], run["seed"], run.get("D_F", 0))
                if key in seen:
                    print(f"  {name}: run {run['run_id']} repeats a point of {seen[key]}: the first is used")
                    continue
                seen[key] = name
                runs.append(run)
            rates += read_mlflow_throughput(name, args.tracking_uri)
        source = "MLflow experiment" + ("s " if len(args.experiment) > 1 else " ")
        source += ", ".join(repr(n) for n in args.experiment)
        store = args.data or mlflow_store(args.experiment[0], args.tracking_uri)
    if not runs:
        raise ValueError(f"{source}: no usable runs")
    cost = material_cost(store, args.cost_per_material)
    forms = [f.strip() for f in args.forms.split(",")] if args.forms else None
    pretrain_D = _counts(args.pretrain_D, "--pretrain-D")
    transfer: list[dict] = []
    if args.transfer_experiment:
        tuned, _ = read_mlflow(args.transfer_experiment, args.tracking_uri)
        transfer = fit_transfer(rows_from_records(tuned), bootstrap=args.bootstrap, starts=args.starts, seed=args.seed)
    fits = fit_runs(
        runs,
        "all",
        "robust",
        forms,
        starts=args.starts,
        bootstrap=args.bootstrap,
        seed=args.seed,
        transfer=None if args.transfer_experiment else transfer,
    )
    cheap = material_cost(args.cheap_data, args.cost_per_cheap_material) if transfer else None
    entries = plan_fits(
        fits, args.target_loss, rates, cost=cost, transfer=transfer, pretrain_D=pretrain_D, cheap_cost=cheap
    )
    print(f"{source}: {len(runs)} runs; {len(entries)} laws; target loss {args.target_loss:.4g}")
    print(f"  cost per material: {cost['cost_per_material_core_hours']} core-hours (source: {cost['cost_source']})")
    for rec in transfer:
        print(f"  transfer {rec['model']}: " + ("law D_T = k D_F^a D^b" if rec.get("law") else rec["status"]))
    if cheap is not None:
        print(f"  cost per cheap material: {cheap['cost_per_material_core_hours']} core-hours ({cheap['cost_source']})")
    for e in entries:
        print("  " + summary_line(e))
    atomic_write_json(args.json, entries)
    print(f"wrote {args.json}")
    if args.md:
        print(f"wrote {write_plan_markdown(entries, args.md)}")
    if args.plot:
        laws = {k: choose_law(g) for k, g in series_groups(fits).items()}
        print(f"wrote {plot_plan([e for e in entries if e['axis'] != 'ND'], laws, runs, args.plot)}")
    return 0


def _counts(text: str, flag: str) -> list[int]:
    """Positive whole numbers from "a,b,c" (empty: none); one clear line otherwise."""
    out = []
    for part in filter(None, (t.strip() for t in text.split(","))):
        if not part.isdigit() or int(part) < 1:
            raise ValueError(f"{flag}: {part!r} is not a positive whole number")
        out.append(int(part))
    return out

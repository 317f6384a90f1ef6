"""`optiscale sweep`: run one axis of a sweep (preset or YAML file), resumably, with K workers."""

from __future__ import annotations


def register(cli) -> None:
    p = cli.command("sweep", "train every grid point of a sweep axis (resumable, shareable), then fit")
    p.add_argument("--preset", default="quick", help="preset name (quick, paper) or a sweep YAML file")
    p.add_argument(
        "--axis",
        required=True,
        choices=("D", "N", "ND", "P", "T"),
        help="D, N, ND: data, parameter, 2-D scaling; P, T: pretraining, transfer",
    )
    p.add_argument("--workers", type=int, default=None, help="local worker processes in all (overrides --pack)")
    p.add_argument(
        "--pack", default="auto", help="grid points trained at once per device (auto: by width and memory; 1 on CPU)"
    )
    p.add_argument("--storage", default=None, help="Optuna RDB URL shared by the workers (default: SQLite in mlflow/)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: SQLite in mlflow/)")
    p.add_argument("--devices", default=None, help="devices per grid point (passed to `optiscale train`)")
    p.add_argument("--strategy", default=None, help="e.g. ddp (passed to `optiscale train`)")
    p.add_argument("--no-fit", action="store_true", help="train only; do not fit or report")
    p.add_argument("--worker-only", action="store_true", help="be one worker: train, then exit without fitting")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per training (default: torch's)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the summary as JSON")
    s = p.add_argument_group("SLURM (--launcher slurm: the workers as one job array; docs/cluster.md)")
    s.add_argument("--launcher", default="local", choices=("local", "slurm"), help="where the workers run")
    s.add_argument(
        "--array-parallelism", type=int, default=None, metavar="K", help="array tasks (workers) (default: up to 4)"
    )
    s.add_argument("--partition", default=None, help="SLURM partition (default: the cluster's)")
    s.add_argument("--time", type=int, default=None, metavar="MIN", help="time limit per task; requeued when hit")
    s.add_argument("--gpus-per-task", type=int, default=None, metavar="G", help="GPUs per array task")
    s.add_argument("--cpus-per-task", type=int, default=None, metavar="C", help="CPUs per array task (its threads)")
    s.add_argument("--mem-gb", type=float, default=None, help="memory per array task")
    s.add_argument("--slurm-folder", default="runs/slurm", help="submitit's job files and logs")
    s.add_argument("--max-requeues", type=int, default=10, help="requeues of a task after timeouts")
    s.add_argument("--wait", action="store_true", help="wait for the array, then check and fit")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    from experiments.cli.progress import progress_printer
    from experiments.sweep.run import default_storage, ensure_dataset, run_sweep, run_worker
    from experiments.sweep.spec import load_spec

    spec = load_spec(args.preset)
    extra = []
    if args.devices:
        extra += ["--devices", str(args.devices)]
    if args.strategy:
        extra += ["--strategy", args.strategy]
    if args.worker_only:
        from experiments.stores.tracking import default_tracking_uri

        store = ensure_dataset(spec, axis=args.axis)
        report = run_worker(
            spec,
            args.axis,
            store,
            args.storage or default_storage(),
            args.tracking_uri or default_tracking_uri(),
            extra,
            threads=args.threads,
        )
        print(f"[sweep] worker done: trained {len(report.trained)}, failed {len(report.failed)}")
        for pid, why in report.failed.items():
            print(f"  failed {pid}: {why}")
        return 1 if report.failed else 0
    slurm = None
    if args.launcher == "slurm":
        slurm = {
            "wait": args.wait,
            "partition": args.partition,
            "time_min": args.time,
            "gpus_per_task": args.gpus_per_task,
            "cpus_per_task": args.cpus_per_task,
            "mem_gb": args.mem_gb,
            "folder": args.slurm_folder,
            "max_requeues": args.max_requeues,
        }
        if args.array_parallelism is not None:
            slurm["tasks"] = args.array_parallelism
    summary = run_sweep(
        spec,
        args.axis,
        args.workers,
        args.storage,
        args.tracking_uri,
        extra,
        fit=not args.no_fit,
        pack=args.pack,
        slurm=slurm,
        progress=progress_printer(),
    )
    if "job" in summary:
        print(f"[sweep] SLURM job {summary['job']} submitted: rerun this command (or add --wait) to check and fit")
        if args.json:
            from datamodules.atomic import atomic_write_json

            atomic_write_json(args.json, summary)
        return 0
    print(
        f"[sweep] {summary['experiment']}: {summary['finished']}/{summary['points']} points finished"
        + (f", duplicated {summary['duplicated']}" if summary["duplicated"] else "")
    )
    for pid in summary["missing"]:
        print(f"  missing {pid}: {summary['failed'].get(pid, 'not trained (rerun the sweep to continue)')}")
    if "report" in summary:
        print(f"[sweep] report: {summary['report']['dir']}")
    if args.json:
        from datamodules.atomic import atomic_write_json

        atomic_write_json(args.json, summary)
    return 0 if not summary["missing"] else 1

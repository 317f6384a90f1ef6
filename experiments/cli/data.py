"""`optiscale data ...`, `optiscale bench data|surrogate`: import, generate, label and inspect stores."""

from __future__ import annotations

import json
import sys

DATA = ("data", "build and inspect graph stores")
BENCH = ("bench", "benchmarks that write their figures to a JSON file")


def register(cli) -> None:
    p = cli.command("import", "import published records (JSON, JSON.gz, HDF5 release) into a store", DATA)
    p.add_argument("sources", nargs="+", metavar="SRC", help="files, directories or globs")
    p.add_argument("--out", required=True, help="store directory")
    _store_options(p)
    p.set_defaults(func=cmd_import)

    p = cli.command("info", "summary of a store: counts, splits, grid, cutoffs, rejected records", DATA)
    p.add_argument("store")
    p.add_argument("--json", action="store_true", help="print the JSON object")
    p.set_defaults(func=cmd_info)

    p = cli.command("verify", "check every shard's sha256 and every record of a store; list what is wrong", DATA)
    p.add_argument("store")
    p.set_defaults(func=cmd_verify)

    p = cli.command("ls", "material ids of a store, one per line", DATA)
    p.add_argument("store")
    p.add_argument("--split", choices=("train", "val", "test"))
    p.set_defaults(func=cmd_ls)

    p = cli.command("show", "one material: graph sizes and targets", DATA)
    p.add_argument("store")
    p.add_argument("mat_id")
    p.add_argument("--json", action="store_true", help="print the JSON object (with the spectra)")
    p.set_defaults(func=cmd_show)

    p = cli.command("generate", "the built-in dataset: N tight-binding surrogate materials into a store", DATA)
    p.add_argument("--n", type=int, required=True, help="number of distinct materials")
    p.add_argument("--seed", type=int, default=0, help="seed of the structure stream")
    p.add_argument("--out", required=True, help="store directory")
    _optics_options(p)
    _store_options(p, chunk_size=64)
    p.set_defaults(func=cmd_generate)

    p = cli.command("label", "surrogate spectra of CIF/POSCAR structures into a store (id = file stem)", DATA)
    p.add_argument("files", nargs="+", metavar="FILE", help="CIF or POSCAR files, or store directories")
    p.add_argument("--out", required=True, help="store directory")
    _optics_options(p)
    _store_options(p, chunk_size=64)
    p.set_defaults(func=cmd_label)

    p = cli.command("surrogate", "surrogate speed, k-grid convergence, sum rule, realism vs samples", BENCH)
    p.add_argument("--json", required=True, metavar="OUT", help="where to write the figures")
    p.add_argument("--n", type=int, default=400, help="materials of the speed test")
    p.add_argument("--n-convergence", type=int, default=24, help="materials of the k-grid convergence test")
    p.add_argument("--plots", default=None, metavar="DIR", help="write PNG comparisons with the samples here")
    p.set_defaults(func=cmd_bench_surrogate)

    p = cli.command("data", "graph building, loader throughput, bytes/material, streaming memory", BENCH)
    p.add_argument("--json", required=True, metavar="OUT", help="where to write the figures")
    p.add_argument("--sizes", default="1000,20000", help="store sizes for the streaming test")
    p.add_argument("--workdir", default=None, help="scratch directory (default: a temporary one)")
    p.set_defaults(func=cmd_bench)


def _optics_options(p) -> None:
    p.add_argument("--fidelity", choices=("full", "cheap"), default="full",
                   help="surrogate fidelity (docs/surrogate.md); the options below override it")  # fmt: skip
    p.add_argument("--k-spacing", type=float, default=None, help="k-grid spacing in 1/Å (2 pi included)")
    p.add_argument("--k-spacing-sp", type=float, default=None, help="the same for cells without d orbitals")
    p.add_argument("--broadening", type=float, default=None, help="Gaussian sigma of transitions, eV")
    p.add_argument("--smearing", type=float, default=None, help="Fermi-Dirac kT, eV")


def optics_settings(args):
    from datamodules.surrogate.fidelity import settings_for

    return settings_for(args.fidelity, broadening=args.broadening, smearing=args.smearing, k_spacing=args.k_spacing,
                        k_spacing_sp=args.k_spacing_sp)  # fmt: skip


def _store_options(p, chunk_size: int = 512) -> None:
    p.add_argument("--grid-points", type=int, default=2001, help="resample 0-20 eV onto this many points")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the composition split and subset order")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--chunk-size", type=int, default=chunk_size, help="records per shard")
    p.add_argument("--force", action="store_true", help="discard an existing store at --out and rebuild")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def store_kwargs(args) -> dict:
    return dict(
        grid_points=args.grid_points,
        split_seed=args.split_seed,
        workers=args.workers,
        chunk_size=args.chunk_size,
        force=args.force,
        progress=not args.quiet,
    )


def print_summary(manifest: dict, out: str) -> None:
    rej = manifest["rejected"]
    s = manifest["splits"]
    print(
        f"{out}: {manifest['n_materials']} materials imported from {manifest['n_records']} records "
        f"(train {s['train']}, val {s['val']}, test {s['test']}), {len(rej)} rejected"
    )
    for r in rej[:20]:
        print(f"  rejected {r['source']}: {r['reason']}")
    if len(rej) > 20:
        print(f"  ... and {len(rej) - 20} more: optiscale data info {out} --json")


def cmd_import(args) -> int:
    from datamodules.importer import import_records

    manifest = import_records(args.sources, args.out, **store_kwargs(args))
    print_summary(manifest, args.out)
    return 0


def cmd_generate(args) -> int:
    from datamodules.surrogate.generate import generate

    manifest = generate(args.n, args.seed, args.out, optics_settings(args), **store_kwargs(args))
    print_summary(manifest, args.out)
    return 0


def cmd_label(args) -> int:
    from datamodules.surrogate.label import label

    manifest = label(args.files, args.out, optics_settings(args), **store_kwargs(args))
    print_summary(manifest, args.out)
    return 0


def cmd_bench_surrogate(args) -> int:
    from experiments.bench.surrogate import run

    run(args.json, n=args.n, n_convergence=args.n_convergence, plots=args.plots)
    return 0


def cmd_info(args) -> int:
    from datamodules.describe import info

    d = info(args.store)
    if args.json:
        print(json.dumps(d, indent=1))
        return 0
    g = d["grid"]
    print(f"store        {args.store}")
    print(f"materials    {d['n_materials']} of {d['n_records']} records ({len(d['rejected'])} rejected)")
    print("splits       " + ", ".join(f"{k} {v}" for k, v in d["splits"].items()) + f"  ({d['split_method']})")
    print(f"grid         {g['start']}-{g['stop']} eV, {g['points']} points")
    print(f"cutoffs      {d['cutoff']} Å (two-body), {d['threebody_cutoff']} Å (three-body)")
    print(f"content hash {d['content_hash']}")
    return 0


def cmd_verify(args) -> int:
    from datamodules.integrity import verify_store

    problems, n_shards, n_materials = verify_store(args.store)
    for line in problems:
        print(line)
    if problems:
        print(f"optiscale: error: {args.store}: {len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.store}: {n_shards} shards, {n_materials} materials: ok")
    return 0


def cmd_ls(args) -> int:
    from datamodules.store import SPLIT_CODE, GraphStore

    store = GraphStore(args.store)
    ids = store.mat_ids()
    if args.split:
        ids = ids[store.split[:] == SPLIT_CODE[args.split]]
    sys.stdout.write("".join(f"{i}\n" for i in ids))
    return 0


def cmd_show(args) -> int:
    from datamodules.describe import show

    d = show(args.store, args.mat_id)
    if args.json:
        print(json.dumps(d))
        return 0
    for k in ("mat_id", "formula", "split", "n_atoms", "n_edges", "n_triplets", "drude"):
        print(f"{k:11s} {d[k]}")
    print(f"eps(0)      {d['eps_re'][0]:.4g} + {d['eps_im'][0]:.4g}i  ({len(d['eps_re'])} grid points)")
    return 0


def cmd_bench(args) -> int:
    from experiments.bench.data import run

    run(args.json, sizes=[int(s) for s in args.sizes.split(",")], workdir=args.workdir)
    return 0

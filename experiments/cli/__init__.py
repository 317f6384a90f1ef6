"""The `optiscale` console entry point.

All argparse code lives in this package: one module per command group registers its commands
(`register(cli)`) and calls plain functions of datamodules/, lightning_modules/ and experiments/. Heavy
imports happen inside the command functions, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from experiments.training.allocator import tune_malloc
from experiments.training.errors import error_line
from experiments.training.quiet import quiet

COMMAND_MODULES = (
    "experiments.cli.data",
    "experiments.cli.model",
    "experiments.cli.train",
    "experiments.cli.fit",
    "experiments.cli.sweep",
    "experiments.cli.study",
)


class CLI:
    """The argument parser and its command groups (`data`, `bench`, ...), created on demand."""

    def __init__(self):
        self.parser = argparse.ArgumentParser(
            prog="optiscale", description="Neural scaling laws for GNNs of the dielectric function of metals."
        )
        self.top = self.parser.add_subparsers(dest="command", metavar="COMMAND")
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def group(self, name: str, help: str) -> argparse._SubParsersAction:
        if name not in self._groups:
            p = self.top.add_parser(name, help=help, description=help)
            self._groups[name] = p.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        return self._groups[name]

    def command(self, name: str, help: str, group: tuple[str, str] | None = None) -> argparse.ArgumentParser:
        sub = self.group(*group) if group else self.top
        return sub.add_parser(name, help=help, description=help)


def build_parser() -> argparse.ArgumentParser:
    cli = CLI()
    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(cli)
    return cli.parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    tune_malloc()
    quiet()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        print(f"optiscale: error: {error_line(err)}", file=sys.stderr)
        return 1

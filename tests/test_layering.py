"""Imports point downward only: experiments -> lightning_modules -> datamodules."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HIGHER = {"datamodules": ("lightning_modules", "experiments"), "lightning_modules": ("experiments",)}


def upward_imports(package: str) -> list[str]:
    """`file:line module` of every import (top-level or inside a function) of a higher package."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] in HIGHER[package]:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


@pytest.mark.parametrize("package", sorted(HIGHER))
def test_no_upward_imports(package):
    assert upward_imports(package) == []


def test_the_scan_finds_an_upward_import(tmp_path, monkeypatch):
    (tmp_path / "datamodules").mkdir()
    (tmp_path / "datamodules" / "x.py").write_text("def f():\n    from experiments.cli import main\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert upward_imports("datamodules") == ["datamodules/x.py:2 experiments.cli"]

"""The docs: a short README, links that resolve, commands that exist, nothing cited outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from experiments.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SKIPPED_DIRS = {".git", ".venv", "data", "runs", "reports", "mlflow", "build", "node_modules"}
# files allowed to name the sample records' folder outside the repository
OUTSIDE_OK = {"tests/conftest.py", "tests/test_docs.py", "Makefile", ".ci/run"}
OUTSIDE = ("REFERENCE" + ".md", ".." + "/shared")  # split so this file does not match itself


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if m := re.match(r"#{1,6} (.+)", line):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def repo_files(suffixes: tuple[str, ...]) -> list[str]:
    """Tracked and untracked, not ignored, files of the repository (a walk where git is absent)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        out = [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(REPO).parts)
        ]
    return [f for f in out if f.endswith(suffixes) and (REPO / f).is_file()]


def test_readme_is_short_with_short_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200
    long = [i for i, line in enumerate(lines, 1) if len(line) > 120]
    assert not long, f"README lines over 120 characters: {long}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_to_an_existing_file(page):
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(REPO)}: broken links {broken}"


def test_no_file_cites_anything_outside_the_repository():
    bad = []
    for name in repo_files((".py", ".md", ".yaml", ".yml")):
        if name in OUTSIDE_OK:
            continue
        text = (REPO / name).read_text(errors="replace")
        bad += [f"{name}: {s}" for s in OUTSIDE if s in text]
    assert not bad, bad


def _table_commands(prefix: str) -> list[str]:
    """First cells of the README's tables that start with `prefix`, without their placeholders."""
    out = []
    for line in README.read_text().splitlines():
        if m := re.match(r"\| `([^`]+)`", line):
            for cmd in m.group(1).split("` / `"):
                if cmd.startswith(prefix):
                    out.append(cmd)
        for extra in re.findall(r"` / `([^`]+)`", line):
            if extra.startswith(prefix):
                out.append(extra)
    return sorted(set(out))


def test_every_make_target_the_readme_names_exists():
    targets = set(re.findall(r"^([a-zA-Z_-]+):", (REPO / "Makefile").read_text(), re.M))
    named = {cmd.split()[1] for cmd in _table_commands("make ")}
    for block in FENCE.findall(README.read_text()):
        named |= {ln.split()[1] for ln in block.splitlines() if ln.startswith("make ")}
    assert named and named <= targets, named - targets


def test_every_optiscale_command_the_readme_names_parses():
    """Each command of the README's table, as written, is accepted by the parser (placeholders filled)."""
    commands = []
    for line in README.read_text().splitlines():
        if m := re.match(r"\| `((?:data|model|train|predict|sweep|fit|study|bench)\b[^`]*)`", line):
            commands.append(m.group(1))
        commands += re.findall(r"` / `(fit [^`]+)`", line)
    for block in FENCE.findall(README.read_text()):
        commands += [ln.split("#")[0].split(None, 1)[1] for ln in block.splitlines() if ln.startswith("optiscale ")]
    assert len(commands) >= 15
    parser = build_parser()
    for cmd in commands:
        argv = [w for w in cmd.replace("\\|", "|").split() if not w.startswith("[") and not w.endswith("]")]
        argv = [{"D|N|ND": "D", "M": "2b-tc", "S": "1", "H": "16", "N": "10"}.get(w, w) for w in argv]
        argv = [w.rstrip(".") if w.endswith("...") else w for w in argv]
        parser.parse_args(argv)  # SystemExit (a failure) if the README names what does not exist

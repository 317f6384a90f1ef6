"""What `optiscale train` prints: one line per epoch and a summary, without third-party noise."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_train_prints_epoch_lines_and_one_summary_without_noise(store201, tmp_path):
    out = tmp_path / "result.json"
    args = ["--data", str(store201), "--model", "2b-tc", "--width", "8", "--seed", "1", "--epochs", "2"]
    args += ["--batch-size", "8", "--set", "warmup_epochs=0.5", "--accelerator", "cpu", "--json", str(out)]
    args += ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--workdir", str(tmp_path / "work")]
    cmd = [sys.executable, "-m", "experiments.cli", "train", *args]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    both = proc.stdout + proc.stderr
    for noise in ("GPU available", "TPU available", "LitLogger", "litlogger", "LeafSpec", "database tables"):
        assert noise not in both, f"{noise!r} in the output:\n{both}"
    lines = proc.stdout.splitlines()
    assert [ln.split()[1] for ln in lines if ln.startswith("epoch ")] == ["1/2", "2/2"], proc.stdout
    assert not any(ln.strip() in ("{", "}") for ln in lines), "the result is dumped as JSON:\n" + proc.stdout
    result = json.loads(out.read_text())  # the machine-readable result is the --json file
    summary = [ln for ln in lines if ln.startswith("[train] ")]
    assert len(summary) == 1 and result["run_id"] in summary[0], proc.stdout
    assert re.search(rf"best val_loss {result['best_val_loss']:.5g} \(epoch {result['best_epoch'] + 1}\)", summary[0])
    assert len(lines) == 3, proc.stdout  # two epochs and the summary, nothing else on stdout

#!/usr/bin/env bash
# Screenshots of the dashboards a user opens (docs/figures/ui-*.png, shown in docs/sweeps.md):
# a tiny sweep (surrogate data, 3 points, 2 epochs) into a temporary store, then `mlflow ui` and
# `optuna-dashboard` on loopback, photographed by Debian's headless chromium (`apt-get install chromium`;
# not installed by CI). Run from the repository root: bash docs/screenshots.sh  (about 2-4 minutes on 2 cores)
set -euo pipefail
REPO=$(pwd)
PY=${PY:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")  # absolute, venv link kept
BIN=$(dirname "$PY")
CHROMIUM=${CHROMIUM:-chromium}
OUT=${OUT:-docs/figures}
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

cat > "$TMP/ui.yaml" <<YAML
name: ui
dataset: {builtin: true, store: $TMP/surrogate-ui, n: 300, seed: 0, grid_points: 201}
recipe: {epochs: 2, batch_size: 16, warmup_epochs: 0.5}
seeds: [1]
axes:
  D: {models: [2b-tc], widths: [8], D: [40, 80, 160]}
YAML
# run from $TMP: the runs/ and reports/ folders go there, not into the repository
(cd "$TMP" && PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m experiments.cli sweep --preset "$TMP/ui.yaml" --axis D \
  --tracking-uri "sqlite:///$TMP/mlflow/mlflow.db" --storage "sqlite:///$TMP/optuna.db")

MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false "$BIN/mlflow" ui --backend-store-uri "sqlite:///$TMP/mlflow/mlflow.db" \
  --host 127.0.0.1 --port 5077 >"$TMP/mlflow.log" 2>&1 &
PIDS+=($!)
"$BIN/optuna-dashboard" "sqlite:///$TMP/optuna.db" --host 127.0.0.1 --port 8077 >"$TMP/optuna.log" 2>&1 &
PIDS+=($!)
for url in http://127.0.0.1:5077/health http://127.0.0.1:8077/; do
  for _ in $(seq 60); do curl -sf "$url" >/dev/null && break; sleep 1; done
done

EXP=$("$PY" -c "from mlflow import MlflowClient; print(MlflowClient('sqlite:///$TMP/mlflow/mlflow.db').get_experiment_by_name('ui-D').experiment_id)")
STUDY=$("$PY" -c "import optuna; print(optuna.get_all_study_summaries('sqlite:///$TMP/optuna.db')[0]._study_id)")
shot() {  # a single-page app: give its scripts virtual time to fetch and render
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,800 \
    --virtual-time-budget=20000 --user-data-dir="$TMP/chromium" --screenshot="$1" "$2" 2>/dev/null
}
mkdir -p "$OUT"
shot "$OUT/ui-mlflow-runs.png" "http://127.0.0.1:5077/#/experiments/$EXP?workflowType=machine_learning"  # the "Model training" view
shot "$OUT/ui-optuna-study.png" "http://127.0.0.1:8077/dashboard/studies/$STUDY"
ls -l "$OUT"/ui-*.png

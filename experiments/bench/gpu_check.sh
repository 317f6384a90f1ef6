#!/usr/bin/env bash
# The GPU checks still open (docs/gpu.md), as one script for a device session of about 10 minutes:
#   bash experiments/bench/gpu_check.sh STORE OUT
# STORE: a store of reference-size cells (docs/gpu.md says how the 1,100-cell one was built);
# OUT: a folder for the JSON figures and logs. Each step has its own time limit and writes its JSON
# as it goes, so a step cut short still leaves what it measured; the script goes on to the next.
set -u
STORE=${1:?store}; OUT=${2:?output folder}
mkdir -p "$OUT"
PY=${PYTHON:-python}
export OPTISCALE_TRACKING_URI="sqlite:///$OUT/mlflow.db" MLFLOW_DISABLE_TELEMETRY=true
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.csv" 2>&1
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? after $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}
# 1. fixed cost per point: forked (its CUDA probe), resident, then the slow subprocess (last: it
#    may be cut by the limit, ~55 s a point with its skip on the H200)
step points 180 $PY -m experiments.cli bench points --data "$STORE" --json "$OUT/points.json" --points 2 \
  --modes forked,resident,subprocess
# 2. rates, packing, compile and the estimate of the paper's 420 runs (narrowed to fit the session;
#    WIDTHS=8,16 for a dry run on a CPU)
step gpu 300 $PY -m experiments.cli bench gpu --data "$STORE" --json "$OUT/bench_gpu.json" \
  --widths "${WIDTHS:-16,64,256,1024}" --packs 1,2,4 --max-seconds 210
# 3. a compiled training run through Lightning (compile: true), bf16-mixed
step compiled 90 $PY -m experiments.cli train --data "$STORE" --model 2b-tc --width 256 --D 800 --epochs 3 \
  --accelerator gpu --set compile=true --json "$OUT/train_compiled.json"

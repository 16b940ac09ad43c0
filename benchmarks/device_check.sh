#!/usr/bin/env bash
# The prepared GPU check (about 8 minutes on an H200; the device tool allows 15 per session):
#   1. every model's quality tests on CUDA (the `device` fixture's cuda cases, skipped on CPU-only machines);
#   2. the sparse exchangeable layer and the sRMGCNN/RMGCNN step benchmarks on CUDA;
#   3. the cost of Hartford's ML-1M models per epoch on the GPU (a capped run, 1 seed, nothing published),
#      which the full-budget estimates need.
# Everything it prints lands in $OUT (one file per step). The data root must hold ml-1m/ and
# monti_mgcnn/douban/ (the device machine does not see ../shared: copy them into an ignored folder that
# travels, e.g. `.device-data/`, and pass RECREPRO_DATA=.device-data). Usage, from the repository root:
#   OUT=/tmp/check RECREPRO_DATA=.device-data bash benchmarks/device_check.sh
set -uo pipefail
OUT=${OUT:-build/device-check}
mkdir -p "$OUT"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: run with a time limit, keep its output, never stop the script
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  echo "   exit $? -> $OUT/$name.txt"
}

step device 30 bash -c "nvidia-smi; $PY -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'"
MODEL_TESTS="tests/test_baselines.py tests/test_exchangeable.py tests/test_mgcnn.py tests/test_nnmf.py tests/test_lrml.py
  tests/test_ranking.py tests/test_sae.py"  # the model tests: they need no papermill or jupyter-book
# shellcheck disable=SC2086
step pytest-cuda 180 "$PY" -m pytest -q -rs -p no:cacheprovider -k cuda $MODEL_TESTS
step bench-exchangeable-cuda 150 "$PY" benchmarks/bench_exchangeable.py --device cuda
step bench-mgcnn-cuda 90 "$PY" benchmarks/bench_mgcnn.py --device cuda
step hartford-ml1m-epoch-cost 150 "$PY" - <<'EOF'
"""Seconds per epoch of the ML-1M F-EAE and self-supervised model at the authors' settings, on CUDA."""
import os
import tempfile

from recrepro.experiments import hartford2018
from recrepro.results import RunRecorder

out = tempfile.mkdtemp()
rec = RunRecorder("hartford2018_t1_ml1m", "full", out, os.path.join(out, "ck"))
tables = hartford2018.run(
    rec, table="t1_ml1m", profile="full", device="cuda", data_root=os.environ.get("RECREPRO_DATA"), seeds=[0],
    max_epochs=20,
)
print(tables["fits"][["dataset", "method", "seconds_per_epoch", "epochs_run", "valid_rmse", "rmse", "device"]])
print(tables["cost"].to_string())
EOF

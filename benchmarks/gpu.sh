#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md, in one go: CUDA tests, memory per sample and the micro-batch
# picked (whole card and a 24 GB cap), a time-limited compiled arc1 pretraining, a kaggle solve of
# ten ARC-AGI-2 evaluation tasks under a 24 GB cap, and, given a clone of the TRM reference code,
# the side-by-side comparison at the paper's size (whose real loop is the arc1 run above).
#   benchmarks/gpu.sh OUT_DIR [PRETRAIN_SECONDS] [REFERENCE_CLONE]
set -euo pipefail
out=${1:?usage: benchmarks/gpu.sh OUT_DIR [PRETRAIN_SECONDS] [REFERENCE_CLONE]}
seconds=${2:-120}
reference=${3:-${TRM_REFERENCE:-}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__)' | tee -a "$out/gpu.txt"
python3 -m pytest tests/engine/test_cuda.py tests/engine/test_step.py -q 2>&1 | tail -8 | tee "$out/tests.txt" || true
python3 benchmarks/memory.py --json "$out/memory.json" | tail -30
run=$(mktemp -d)/arc1
python3 -m arcsolver pretrain --recipe arc1 --out "$run" --set run.time_limit_s="$seconds" --set eval.max_versions=8 \
  --set run.log_every=10 --set run.checkpoint_every=1000000 2>&1 | grep -v "^\s*$" | tail -12
cp "$run/metrics.jsonl" "$out/pretrain-metrics.jsonl"
data=$(mktemp -d)
python3 -m arcsolver data export arc2/evaluation --out "$data" >/dev/null
python3 - "$data" <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
for kind in ("challenges", "solutions"):
    tasks = json.loads((d / f"arc2-evaluation_{kind}.json").read_text())
    (d / f"ten_{kind}.json").write_text(json.dumps(dict(list(tasks.items())[:10])))
PY
python3 -m arcsolver solve "$data/ten_challenges.json" --checkpoint "$run" --recipe kaggle --out "$out/submission.json" \
  --set run.gpu_memory_gb=24 --set adapt.steps=200 --set adapt.log_every=20 --set infer.max_versions=64 2>&1 \
  | grep -v "^\s*$" | tail -12
python3 -m arcsolver evaluate "$out/submission.json" --solutions "$data/ten_solutions.json" --json
if [ -n "$reference" ]; then
  # Short curves (60 steps, two seeds) so that the script stays near ten minutes.
  python3 benchmarks/reference.py --reference "$reference" --device cuda --size paper --curve-steps 60 \
    --throughput-steps 4 --loop-metrics "$out/pretrain-metrics.jsonl" --json "$out/reference.json" 2>&1 \
    | tee "$out/reference.txt" | grep -v "^\s*$"
fi

#!/usr/bin/env bash
# Everything that needs a GPU, in one command for a lent machine (see README, "GPU checks"):
# builds the CUDA kernels for the visible GPU, runs the CUDA-marked tests, the op benchmark and
# `aft-fast bench` in the paper's ImageNet setting, and writes what they printed under $OUT
# (default benchmarks/results/gpu). Commit those files with the commit they were measured at.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
export FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} PYTHONUNBUFFERED=1
python -m pip install -q --no-build-isolation --no-deps --use-pep517 -e . 2>&1 | tail -3 | tee "$OUT/build.log"
python -m aft_fast.cli info --json "$OUT/info.json" | tee "$OUT/info.txt"
python -m pytest tests/test_ops.py tests/test_attacks.py -m cuda -q -rA 2>&1 | tail -40 | tee "$OUT/cuda_tests.txt"
python benchmarks/bench_ops.py --device cuda --json "$OUT/ops_gpu.json" --md "$OUT/ops_gpu.md"
python -m aft_fast.cli bench --arch resnet50 --image-size 224 --batch 256 --steps 3 --amp bf16 --num-classes 1000 \
    --channels-last --device cuda --json "$OUT/bench_gpu.json" --md "$OUT/bench_gpu.md" \
    --plot "$OUT/bench_gpu.png" 2>&1 | tail -30
python -m aft_fast.cli profile --arch resnet50 --image-size 224 --batch 256 --steps 3 --amp bf16 \
    --num-classes 1000 --channels-last --device cuda --json "$OUT/profile_gpu.json" \
    --trace "$OUT/profile_gpu_trace.json" 2>&1 | tail -30

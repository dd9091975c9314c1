#!/usr/bin/env bash
# Everything that needs a GPU, in one command for a lent machine (see README, "GPU checks"):
# builds the CUDA kernels for the visible GPU, runs the CUDA-marked tests, the op benchmark,
# `aft-fast bench` (eager and compiled) and `aft-fast profile` in the paper's ImageNet setting and,
# when nvidia-dali is installed, the DALI tests and the nvJPEG-vs-torchvision loader benchmark.
# Writes what each step printed (<step>.log) and its JSON/markdown under $1 (default
# benchmarks/results/gpu). Commit those files with the commit they were measured at. Each step
# is bounded so one hang cannot take the others; STEPS="build ops ..." runs only the named steps
# (a lease's 10-minute calls take it in parts).
set -uo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-benchmarks/results/gpu}
PY=${PY:-python3}
mkdir -p "$DEST"
export FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} PYTHONUNBUFFERED=1
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
STEPS=${STEPS:-all}
step() {
    [[ $STEPS == all || " $STEPS " == *" $1 "* ]] || return 0
    local name=$1; shift
    echo "== $name"; timeout "$@" 2>&1 | tee "$DEST/$name.log"; echo "== $name rc=${PIPESTATUS[0]}"
}
WORKLOAD=(--arch resnet50 --image-size 224 --batch 256 --steps 3 --amp bf16 --num-classes 1000
          --channels-last --device cuda)

step build 300 $PY -m pip install -q --no-build-isolation --no-deps --use-pep517 -e .
step info 60 $PY -m aft_fast.cli info --json "$DEST/info.json"
step cuda-tests 300 $PY -m pytest tests -m cuda -q -rfEs -p no:cacheprovider
step ops 240 $PY benchmarks/bench_ops.py --device cuda --json "$DEST/ops_gpu.json" \
    --md "$DEST/ops_gpu.md"
step bench 420 $PY -m aft_fast.cli bench "${WORKLOAD[@]}" --json "$DEST/bench_gpu.json" \
    --md "$DEST/bench_gpu.md" --plot "$DEST/bench_gpu.png"
step bench-compiled 420 $PY -m aft_fast.cli bench "${WORKLOAD[@]}" --compile --methods none \
    --json "$DEST/bench_gpu_compiled.json" --md "$DEST/bench_gpu_compiled.md"
step profile 240 $PY -m aft_fast.cli profile "${WORKLOAD[@]}" --json "$DEST/profile_gpu.json" \
    --trace "$DEST/profile_gpu_trace.json"
if $PY -c "import nvidia.dali" 2>/dev/null; then
    step dali-tests 300 $PY -m pytest tests -m dali -q -rfEs -p no:cacheprovider
    step make-folder 300 $PY -m aft_fast.cli data make-folder --from mnist5k --size 224 \
        --out /tmp/aft_jpeg224
    step loaders 420 $PY -m aft_fast.cli bench-loader --data /tmp/aft_jpeg224 --loader both \
        --device cuda --threads 8 --batch 128 --epochs 3 --json "$DEST/loader_gpu.json"
    # 3,500 images are too few to amortise the DALI pipeline built each epoch; 8 copies of each
    # (28,000) show the steady state.
    step replicate 300 bash -c 'for f in /tmp/aft_jpeg224/train/*/*.jpg; do
        for i in 1 2 3 4 5 6 7; do cp "$f" "${f%.jpg}_c$i.jpg"; done; done'
    step loaders-28k 420 $PY -m aft_fast.cli bench-loader --data /tmp/aft_jpeg224 --loader both \
        --device cuda --threads 8 --batch 256 --epochs 3 --json "$DEST/loader_gpu_28k.json"
else
    echo "nvidia-dali not installed: DALI tests and the GPU loader benchmark not run"
fi

#!/usr/bin/env bash
# RiFT on Fashion-MNIST (CPU-sized): a PGD-AT small CNN, then `aft-fast rift`, then the test
# split for both models. Usage: bash benchmarks/results/rift/run.sh [RUNS_DIR]
# Every step's wall-clock goes to RUNS_DIR/times.txt; results are copied next to this script.
set -euo pipefail
cd "$(dirname "$0")/../../.."
# One thread: with the 2 cores shared by ~10 other jobs, 2 OpenMP threads ran 6x slower.
export OMP_NUM_THREADS=1
ARCH=benchmarks.results.rift.net:lenet_bn  # net.py here; checkpoints naming it need --trust-code
RUNS=${1:-runs/rift_fashion}
HERE=benchmarks/results/rift
EPS=0.1
mkdir -p "$RUNS"
step() {  # step NAME COMMAND...: run it, log its wall-clock
  local name=$1; shift
  echo "+ $*" | tee -a "$RUNS/commands.txt"
  local t0=$(date +%s.%N)
  "$@" 2>&1 | tee "$RUNS/$name.log"
  echo "$name $(echo "$(date +%s.%N) - $t0" | bc)" | tee -a "$RUNS/times.txt"
}
# 1. Adversarial training: PGD-5 at eps 0.1, 8 epochs (Adam 1e-3, multistep) on a fixed
#    5,000-image training subset; per-epoch evaluation on 256 val images with PGD-5.
[ -f "$RUNS/at/best.pt" ] || step at aft-fast train --method pgd-at --arch $ARCH \
    --data fashion-mnist --train-images 5000 --eps $EPS --steps 5 --epochs 8 --optimizer adam \
    --lr 1e-3 --schedule multistep --batch-size 128 --eval-images 256 --eval-steps 5 \
    --out "$RUNS/at" --device cpu --log-every 1000000
# 2. RiFT with its defaults (MRC on 512 training examples, rho 0.1; fine-tune the least critical
#    module 10 epochs on the same 5,000 training images, BatchNorm statistics frozen; alpha in
#    0, 0.1, ..., 1 chosen with PGD-10 on val, tolerance 0.5 points) but 1,024 val images.
[ -f "$RUNS/rift/rift.pt" ] || step rift aft-fast rift --checkpoint "$RUNS/at/best.pt" \
    --data fashion-mnist --out "$RUNS/rift" --device cpu --val-images 1024 --trust-code
# 3. Test split: clean + PGD-20 with 2 restarts on the first 1,000 test images; AutoAttack with
#    reduced settings (10 iterations, 200 Square queries) on the first 250.
for m in at rift; do
  ckpt=$RUNS/at/best.pt; [ $m = rift ] && ckpt=$RUNS/rift/rift.pt
  [ -f "$RUNS/test_pgd_$m.json" ] || step "test_pgd_$m" aft-fast eval --checkpoint "$ckpt" \
      --data fashion-mnist --split test --attack pgd --eps $EPS --steps 20 --restarts 2 --batch-size 250 --max-batches 4 \
      --device cpu --trust-code --json "$RUNS/test_pgd_$m.json"
  [ -f "$RUNS/test_aa_$m.json" ] || step "test_aa_$m" aft-fast eval --checkpoint "$ckpt" \
      --data fashion-mnist --split test --attack autoattack --eps $EPS --aa-steps 10 --aa-queries 200 --max-batches 1 \
      --batch-size 250 --device cpu --trust-code --json "$RUNS/test_aa_$m.json"
done
cp "$RUNS"/test_*.json "$RUNS/times.txt" "$RUNS/commands.txt" "$HERE/"
cp "$RUNS/rift/"{mrc.json,mrc.png,interpolation.json,alpha.png,summary.md,rift.json} "$HERE/"
cp "$RUNS/rift/finetune/summary.csv" "$HERE/finetune_summary.csv"
cp "$RUNS/at/summary.csv" "$HERE/at_summary.csv"

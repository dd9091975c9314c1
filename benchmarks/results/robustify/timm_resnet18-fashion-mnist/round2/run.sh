#!/bin/bash
# Round 2 on the second model (commit 25a786b+): robustify's command of ../run.sh, --resume in a copy
# of its run whose round-1 probes go on from their finished last.pt (read back, not retrained:
# cp -r runs/robustify/resnet18/probes runs/robustify/resnet18-v2/). Stopped once it had chosen and
# the fine-tune had started (its args.yaml equals ../run.sh's fine-tune's but for --out and the
# val_images field added since, null in both).
OMP_NUM_THREADS=1 exec aft-fast robustify --arch timm/resnet18 --weights runs/robustify/resnet18-natural/best.pt \
  --data fashion-mnist --train-images 2000 --eps 0.1 --steps 3 --batch-size 32 \
  --eval-batch-size 250 --budget 10 --probe-batches 20 --test-images 500 --aa-images 100 \
  --device cpu --out runs/robustify/resnet18-v2 --resume "$@"

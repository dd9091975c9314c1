#!/bin/bash
# robustify with round 2 (commit 25a786b: the best probe of each BatchNorm handling fine-tuned for
# 2 epochs under AFT's schedule compressed, scored with PGD-50 on the 512 held-out images). Round 1
# was read back from ../run.sh's run: copy runs/robustify/effnet-lite0-v2/probes into
# runs/robustify/effnet-lite0-v3/ first (same options: `--resume` checks them). Stopped once the
# fine-tune had written its args.yaml: identical to ../run.sh's fine-tune but for --out.
# The data: unzip -q ../shared/data/imagenette-4k.zip -d /tmp/imagenette
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec aft-fast robustify --arch efficientnet_lite0 --weights pretrained --data /tmp/imagenette/imagenette-4k \
  --class-map imagenette --image-size 64 --eps 2/255 --steps 2 --batch-size 32 \
  --eval-batch-size 256 --budget 10 --test-images 1000 --aa-images 100 --device cpu \
  --out runs/robustify/effnet-lite0-v3 --resume "$@"

#!/bin/bash
# The control: the README's hand-tuned settings (BatchNorm statistics frozen, peak LR 3e-4) through
# the same robustify command and evaluation as ../run.sh (only the two choices are fixed).
# Run from the repository root; the data: unzip -q ../shared/data/imagenette-4k.zip -d /tmp/imagenette
export OMP_NUM_THREADS=1
exec aft-fast robustify --arch efficientnet_lite0 --weights pretrained --data /tmp/imagenette/imagenette-4k \
  --class-map imagenette --image-size 64 --eps 2/255 --steps 2 --batch-size 32 \
  --eval-batch-size 256 --budget 10 --test-images 1000 --aa-images 100 --device cpu \
  --probe-lrs 3e-4 --bn-handling frozen --out runs/robustify/effnet-lite0-handtuned "$@"

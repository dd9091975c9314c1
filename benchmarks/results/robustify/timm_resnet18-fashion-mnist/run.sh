#!/bin/bash
# A second, differently built model: timm resnet18 (1-channel stem, BatchNorm), pretrained
# naturally here on Fashion-MNIST (10,000 training images, 5 epochs: resnet18-natural/), made
# robust at eps 0.1 on a CPU-sized budget (2,000 training images, 10 epochs of AFT on PGD-3).
while pgrep -f "arch timm/resnet18 --data fashion-mnist --train-images 10000" >/dev/null; do sleep 15; done
OMP_NUM_THREADS=1 exec aft-fast robustify --arch timm/resnet18 --weights runs/robustify/resnet18-natural/best.pt \
  --data fashion-mnist --train-images 2000 --eps 0.1 --steps 3 --batch-size 32 \
  --eval-batch-size 250 --budget 10 --probe-batches 20 --test-images 500 --aa-images 100 \
  --device cpu --out runs/robustify/resnet18 "$@"

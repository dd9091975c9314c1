"""One tiny training run for tests/test_distributed.py, started as a plain process or under
torchrun (then one process of a gloo group): 64 synthetic 1×28×28 images, small_cnn.

    python tests/distributed_run.py OUT GLOBAL_BATCH EPOCHS [--resume] [--stop-after K]
        [--save-every N] [--method M]

--stop-after K: the process exits (status 3) when the training loader is asked for batch K+1
(counted over the whole run), as a killed run would, after the checkpoints written so far.
"""
import argparse
import sys

import aft_fast.train.run as run
from aft_fast.data.tensors import TensorBatches
from aft_fast.train.options import TrainOptions
from aft_fast.train.run import train

STOPPED = 3


def stop_after(k: int) -> None:
    """Make training loaders end the process once they have yielded `k` batches."""
    real_iter, served = TensorBatches.__iter__, [0]

    def counted(self):
        for batch in real_iter(self):
            if self.shuffle:  # the training loader (evaluation loaders are not shuffled)
                if served[0] == k:
                    print("STOPPED", flush=True)
                    sys.exit(STOPPED)
                served[0] += 1
            yield batch

    TensorBatches.__iter__ = counted


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("global_batch", type=int)
    p.add_argument("epochs", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--stop-after", type=int)
    p.add_argument("--save-every", type=int)
    p.add_argument("--method", default="natural")
    args = p.parse_args()
    real = run.make_loaders
    run.make_loaders = lambda data, **kw: real(data, synthetic_shape=(1, 28, 28),
                                               synthetic_size=64, **kw)
    if args.stop_after is not None:
        stop_after(args.stop_after)
    s = train(TrainOptions(method=args.method, data="synthetic", arch="small_cnn",
                           global_batch=args.global_batch or None, epochs=args.epochs, lr=0.05,
                           eval_max_batches=1, eval_steps=0, steps=1, eps=0.1, quiet=True,
                           device="cpu", out=args.out, resume=args.resume,
                           save_every=args.save_every, workers=0,
                           # fp32: one process and two (a gradient all-reduce) agree to rounding
                           # there; --amp auto is bf16 on a CPU with native bf16 (AMX)
                           amp="none"))
    print("RESOLVED", s["config"]["resolved"]["world_size"], s["config"]["resolved"]["global_batch"],
          s["config"]["resolved"]["batch_per_process"], flush=True)


if __name__ == "__main__":
    main()

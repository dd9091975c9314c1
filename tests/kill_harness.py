"""Kill a tiny training run with SIGKILL at random moments, for tests/test_preemption.py.

    python tests/kill_harness.py OUT ROUNDS SEED

The process imports torch and aft_fast once, then forks a child per run (a new interpreter per
round would cost seconds of imports each): OUT/straight runs uninterrupted (the reference; its
duration and the moment its first checkpoint appears set the kill times), OUT/killed is started
ROUNDS times, resumed when it holds a last.pt, and killed with SIGKILL after a random delay;
after each kill its files are copied to OUT/kills/<round>/ for the test to check. A last start
runs it to the end. The parent never computes with torch (forking after torch's thread pool has
started is unsafe) and prints one JSON line: the delays and each child's exit status.
"""
import json
import os
import random
import shutil
import signal
import sys
import time
import traceback

import aft_fast.train.run as run
from aft_fast.train.options import TrainOptions
from aft_fast.train.run import train

SETUP_KILLS = 0.15  # share of the kills aimed at the start-up (before the first checkpoint)


def options(out: str) -> TrainOptions:
    resume = os.path.isfile(os.path.join(out, "last.pt"))
    return TrainOptions(method="pgd-at", data="synthetic", arch="small_cnn", batch_size=32,
                        epochs=3, steps=1, eps=0.1, eval_max_batches=1, eval_steps=1,
                        save_every=3, quiet=True, device="cpu", workers=0, out=out,
                        resume=resume, overwrite=not resume)


def start(out: str) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        import torch

        torch.set_num_threads(1)
        real = run.make_loaders
        run.make_loaders = lambda data, **kw: real(data, synthetic_shape=(1, 28, 28),
                                                   synthetic_size=128, **kw)
        train(options(out))
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def reference(out: str) -> tuple[float, float]:
    """Run OUT/straight to the end: (seconds until its first last.pt, total seconds)."""
    t0, first = time.monotonic(), None
    pid = start(out)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if first is None and os.path.exists(os.path.join(out, "last.pt")):
            first = time.monotonic() - t0
        if done:
            break
        time.sleep(0.002)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the reference run failed"
    return first, time.monotonic() - t0


def main() -> None:
    out, rounds, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    setup, total = reference(os.path.join(out, "straight"))
    rng, killed = random.Random(seed), os.path.join(out, "killed")
    delays, statuses = [], []
    for k in range(rounds):
        # Mostly spread over the training so that the kills together cover the whole run.
        delay = (rng.uniform(0, setup) if rng.random() < SETUP_KILLS
                 else setup + rng.uniform(0, 2 * (total - setup) / rounds))
        pid = start(killed)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        statuses.append(wait(pid))
        delays.append(delay)
        if os.path.isdir(killed):
            shutil.copytree(killed, os.path.join(out, "kills", str(k)))
    final = wait(start(killed))
    print(json.dumps({"setup_s": setup, "total_s": total, "delays": delays,
                      "statuses": statuses, "final": final}), flush=True)


if __name__ == "__main__":
    main()

"""How long `aft-fast train` takes to exit after SIGTERM, wherever the signal lands (training
step, per-epoch evaluation, checkpoint writing): the figure README's "Long runs" section states.

    python benchmarks/sigterm_latency.py [--delays 1,3,5,7,9,11,13] [--out /tmp/sigterm]

Each delay starts one run (PGD AT on mnist5k, a small training subset and a large PGD-20
per-epoch evaluation, so most of the wall time is evaluation), sends SIGTERM that many seconds
after the first checkpoint appears, and measures the time to exit. Prints one line per run and
the worst case, with the exit status (143 = stopped by SIGTERM after writing last.pt)."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

RUN = ["-m", "aft_fast.cli", "train", "--method", "pgd-at", "--data", "mnist5k", "--eps", "0.3",
       "--steps", "3", "--train-images", "64", "--batch-size", "64", "--eval-images", "4000",
       "--eval-steps", "20", "--eval-batch-size", "128", "--epochs", "50", "--device", "cpu",
       "--workers", "0", "--quiet"]


def one(out: str, delay: float) -> tuple[float, int, str]:
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen([sys.executable, *RUN, "--out", out], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    while not os.path.exists(os.path.join(out, "last.pt")):
        time.sleep(0.05)
    time.sleep(delay)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate()
    return time.perf_counter() - sent, proc.returncode, output.strip().splitlines()[-1][:90]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delays", default="1,3,5,7,9,11,13")
    ap.add_argument("--out", default="/tmp/sigterm_latency")
    args = ap.parse_args()
    worst = 0.0
    for d in [float(v) for v in args.delays.split(",")]:
        seconds, code, last = one(args.out, d)
        worst = max(worst, seconds)
        print(f"SIGTERM {d:5.1f}s after the first checkpoint: exit {code} after {seconds:.2f}s "
              f"({last})", flush=True)
    print(f"worst case: {worst:.2f}s ({os.cpu_count()} CPU threads, load "
          f"{os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()

"""One training loop (`fit`, loop.py) through which every method (`aft_fast.methods`) runs, the
one weight update (update.py), options (options.py), schedules and checkpoints. `run.train(opts)`
turns options into a finished run. Kept light (no re-exports of the loop): the methods import
the weight update from here."""
from aft_fast.train.checkpoint import export_torchvision, load_checkpoint  # noqa: F401
from aft_fast.train.schedules import SCHEDULES, make_schedule  # noqa: F401

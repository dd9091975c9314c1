"""One training loop (`fit`), the methods that plug into it, schedules and checkpoints."""
from aft_fast.train.checkpoint import export_torchvision, load_checkpoint  # noqa: F401
from aft_fast.train.loop import fit  # noqa: F401
from aft_fast.train.methods import METHODS, make_method  # noqa: F401
from aft_fast.train.run import TrainOptions, train  # noqa: F401
from aft_fast.train.schedules import SCHEDULES, make_schedule  # noqa: F401

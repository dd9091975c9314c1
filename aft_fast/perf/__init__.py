"""Speed measurement: `bench` (engine vs plain PyTorch vs torchattacks, methods, projections) and
`profile` (one iteration split into its parts). Used by the CLI and by `benchmarks/`."""
from aft_fast.perf.timing import DeviceTimer, Timing, time_interleaved  # noqa: F401
from aft_fast.perf.plain_pgd import plain_pgd  # noqa: F401
from aft_fast.perf.workload import Workload, build_workload  # noqa: F401

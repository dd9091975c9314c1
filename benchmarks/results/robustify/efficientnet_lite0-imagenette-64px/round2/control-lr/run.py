"""Round 2 for frozen statistics at the control's LR 3e-4 (not a finalist of the robustify run):
does the control's recipe separate from updating@1e-3 after 2 compressed epochs?"""
import json, time, yaml
from pathlib import Path
from aft_fast.robustify.choose import Probe
from aft_fast.robustify.probe import round2_options, run_finalist
from aft_fast.train.options import TrainOptions
args = yaml.safe_load(open("runs/robustify/effnet-lite0-v2/train/args.yaml"))
base = TrainOptions(**{k: v for k, v in args.items() if k in TrainOptions.__dataclass_fields__})
first = Probe(3e-4, "frozen", 0.41, 0.002, 512, 30)
opts = round2_options(base, Path("runs/robustify/effnet-v3-extra/lr0.0003-bn-frozen-round2"), first, epochs=2)
t = time.time()
got = run_finalist(opts, first, steps=50, images=512, attack=None, bn_batches=100)
print(json.dumps(got.__dict__), time.time() - t)

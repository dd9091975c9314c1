"""The method comparison behind `aft-fast compare`: Natural, PGD AT, Free AT, Fast AT from
scratch, AFT from the Natural model and RiFT from the PGD AT model, each with its canonical
recipe (recipes.py) under one budget rule, evaluated with one protocol (protocol.py: clean,
PGD-50×5, AutoAttack, gradient-masking checks), written as the paper's Table 1 (report.py)."""
from aft_fast.compare.options import CompareOptions  # noqa: F401
from aft_fast.compare.protocol import Protocol  # noqa: F401
from aft_fast.compare.runner import compare  # noqa: F401

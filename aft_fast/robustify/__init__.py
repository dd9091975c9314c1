"""`aft-fast robustify`: a pretrained classifier made robust in one command, with the evidence
(pipeline.py describes the five steps; README "Make your own pretrained model robust")."""
from aft_fast.robustify.options import RobustifyOptions
from aft_fast.robustify.pipeline import robustify

__all__ = ["RobustifyOptions", "robustify"]

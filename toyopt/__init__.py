"""toyopt: joint SFT + DPO training (sequential, ALRIGHT, MAXRIGHT, Mix) on toy problems with
known optima and on Hugging Face language models, with one implementation of each rule."""

from toyopt.loop import Counters, train
from toyopt.rules import (
    OBJECTIVES,
    RULE_NAMES,
    AlRight,
    MaxRight,
    Mix,
    Sequential,
    StaleMaxRight,
    make_rule,
)
from toyopt.schedules import Schedule

__version__ = "0.1.0"

__all__ = [
    "OBJECTIVES",
    "RULE_NAMES",
    "AlRight",
    "Counters",
    "MaxRight",
    "Mix",
    "Schedule",
    "Sequential",
    "StaleMaxRight",
    "make_rule",
    "train",
]

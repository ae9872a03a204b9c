"""toyopt: joint SFT + DPO training (sequential, ALRIGHT, MAXRIGHT, Mix) on toy problems with
known optima and on Hugging Face language models, with one implementation of each rule."""

from toyopt.loop import Counters, train
from toyopt.rules import (
    OBJECTIVES,
    RULE_NAMES,
    AlRight,
    KAlRight,
    KMaxRight,
    KMix,
    KSequential,
    KStaleMaxRight,
    MaxRight,
    Mix,
    Sequential,
    StaleMaxRight,
    make_rule,
    make_weighted_rule,
)
from toyopt.schedules import Schedule

__version__ = "0.1.0"

__all__ = [
    "OBJECTIVES",
    "RULE_NAMES",
    "AlRight",
    "Counters",
    "KAlRight",
    "KMaxRight",
    "KMix",
    "KSequential",
    "KStaleMaxRight",
    "MaxRight",
    "Mix",
    "Schedule",
    "Sequential",
    "StaleMaxRight",
    "make_rule",
    "make_weighted_rule",
    "train",
]

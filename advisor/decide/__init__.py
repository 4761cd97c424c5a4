"""Decisions: MIG with a profile, MPS with replicas and limits, time-slicing with replicas, or a whole GPU.

``decide(classification, features)`` gives one decision per class and GPU model and one per workload; the rules
are in rules.py (thresholds), fits.py (what each mode can hold), choose.py (the chain and its reasons) and
risk.py (what a decision risks, measured on the window's samples).
"""

from advisor.decide.engine import Decisions, decide
from advisor.decide.rules import DEFAULT_RULES, Rules

__all__ = ["DEFAULT_RULES", "Decisions", "Rules", "decide"]

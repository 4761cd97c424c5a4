"""The fleet plan: how many GPUs of each model the decisions need, each GPU's MIG geometry or sharing group, and
a proven lower bound. ``plan_fleet`` is the entry point; mig.py holds the integer program and its fallback."""

from advisor.plan.fleet import mig_config_name, plan_fleet
from advisor.plan.mig import MigPacking, pack_mig
from advisor.plan.presence import BusyGpus, Presence

__all__ = ["BusyGpus", "MigPacking", "Presence", "mig_config_name", "pack_mig", "plan_fleet"]

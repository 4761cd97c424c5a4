"""How much a workload's own past says about its size, and what its class adds where it says too little.

A peak seen over a short time is a low estimate: the real trace's Stable Diffusion pods reach their memory peaks
anywhere from 1 to 17 hours into a 23-hour day, at 1.2 to 2.2 times their median, and a pod advised on its first
11 hours was put on a 40 GiB MIG slice it outgrew by 7 GiB. Three rules follow, each from the history itself:

1. **Thin evidence.** A workload seen for less than ``Rules.evidence_min_span_s`` (a day) and less than
   ``Rules.evidence_min_span_share`` of the window, or with fewer than ``Rules.evidence_min_samples`` samples, is
   not sized from its own past: it keeps a whole GPU if it has one today (its current allocation), and otherwise is
   sized for the largest peak its class's well-observed members reached (``thin_reason``, engine.py).
2. **What its class reaches.** Members of one class behave alike, so the ratio of peak to median memory that the
   class's well-observed members show (its ``Rules.evidence_peak_quantile`` quantile) applies to each member, scaled
   by the member's own median (which settles within hours, unlike the peak), and capped by the largest peak any of
   them reached: ``expected_peak``. A member sits at or above its own peak, never below.
3. **Calibrated headroom.** The margin over a member's own peak is what doubling the history did to its classmates'
   peaks: per well-observed member, peak over its whole span / peak over the first half of it, the class's
   ``Rules.evidence_growth_quantile`` quantile (at least ``Rules.headroom``, at most
   ``Rules.evidence_max_headroom``). A class with few well-observed members takes the fleet's figure.
The backtest (advisor/backtest/) checks the result on the weeks after an origin; docs/advisor-decisions.md has the
figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from advisor.decide.demand import gib, pct
from advisor.decide.rules import Rules
from advisor.model import WorkloadFeatures

HOUR = 3600.0


@dataclass(frozen=True)
class ClassEvidence:
    """What the well-observed members of a class (on one GPU model) say about any member's memory."""

    mature: int  # members with enough evidence of their own
    peak_ratio: float  # peak / median memory that the class's members reach (its quantile); 1 with no evidence
    peak_max_bytes: int  # the largest peak a well-observed member reached
    growth: float  # what doubling the history did to the members' peaks (its quantile), >= 1
    headroom: float  # the margin over a member's own peak: max(Rules.headroom, growth - 1), capped
    growth_from: str  # "class" or "fleet": whose members the growth was measured on


def thin_reason(f: WorkloadFeatures, window_s: float, rules: Rules) -> str | None:
    """Why this workload's own history is too short to size it from, or None where it is long enough."""
    if f.samples < rules.evidence_min_samples:
        return f"it has only {f.samples} samples (fewer than {rules.evidence_min_samples})"
    # Prometheus gives no span: its coverage stands in for it
    seen = f.coverage * window_s if f.span_seconds is None else f.span_seconds
    needed = min(rules.evidence_min_span_s, rules.evidence_min_span_share * window_s)
    if seen < needed:
        return f"it was seen for {_hours(seen)}, less than the {_hours(needed)} that shows its peak"
    return None


def _hours(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < HOUR else f"{seconds / HOUR:.1f} h"


def _growth(f: WorkloadFeatures) -> float | None:
    early = f.memory_peak_first_half_bytes
    if early is None or early <= 0 or f.memory_peak_bytes <= 0:
        return None
    return max(1.0, f.memory_peak_bytes / early)


def _median(f: WorkloadFeatures) -> int:
    return int(f.memory_quantiles.get(0.5, f.memory_p95_bytes)) if f.memory_quantiles else f.memory_p95_bytes


def fleet_growth(features: Sequence[WorkloadFeatures], window_s: float, rules: Rules) -> float:
    """The growth quantile over every well-observed workload: the fallback for a class with few of them."""
    values = [g for f in features if thin_reason(f, window_s, rules) is None and (g := _growth(f)) is not None]
    return float(np.quantile(values, rules.evidence_growth_quantile)) if values else 1.0 + rules.headroom


def class_evidence(members: Sequence[WorkloadFeatures], window_s: float, rules: Rules, fleet: float) -> ClassEvidence:
    mature = [f for f in members if thin_reason(f, window_s, rules) is None]
    ratios = [f.memory_peak_bytes / m for f in mature if (m := _median(f)) > 0]
    growths = [g for f in mature if (g := _growth(f)) is not None]
    if len(growths) >= rules.evidence_min_members:
        growth, source = float(np.quantile(growths, rules.evidence_growth_quantile)), "class"
    else:
        growth, source = fleet, "fleet"
    growth = max(growth, 1.0)
    return ClassEvidence(
        mature=len(mature),
        peak_ratio=max(1.0, float(np.quantile(ratios, rules.evidence_peak_quantile))) if ratios else 1.0,
        peak_max_bytes=max((f.memory_peak_bytes for f in mature), default=0),
        growth=growth,
        headroom=min(rules.evidence_max_headroom, max(rules.headroom, growth - 1.0)),
        growth_from=source,
    )


def expected_peak(f: WorkloadFeatures, ev: ClassEvidence) -> int:
    """The peak its class says a member like it reaches: its median x the class's peak ratio, at least its own
    peak, at most the largest peak a well-observed classmate reached."""
    scaled = _median(f) * ev.peak_ratio
    return int(max(f.memory_peak_bytes, min(scaled, max(ev.peak_max_bytes, f.memory_peak_bytes))))


def memory_need(f_peak: int, expected: int, ev: ClassEvidence, rules: Rules) -> int:
    """The larger of its own peak plus the calibrated headroom and the class's expected peak plus the base one."""
    return max(math.ceil(f_peak * (1 + ev.headroom)), math.ceil(expected * (1 + rules.headroom)))


def evidence_sentence(f_peak: int, expected: int, ev: ClassEvidence, rules: Rules) -> str | None:
    """Why the memory need is more than its peak plus the base headroom, in the member's own numbers (None where
    the evidence adds nothing to that)."""
    own = math.ceil(f_peak * (1 + ev.headroom))
    by_class = math.ceil(expected * (1 + rules.headroom))
    above = expected > f_peak and by_class > own  # the class says more than its own peak does
    if ev.headroom <= rules.headroom and not above:
        return None
    growth = (
        f"peaks of its class's {ev.mature} well-observed members grew by up to {pct(ev.growth - 1)} (their "
        f"{rules.evidence_growth_quantile:.0%} quantile) when their history doubled"
        if ev.growth_from == "class"
        else f"peaks across the fleet grew by up to {pct(ev.growth - 1)} when their history doubled"
    )
    text = f"Headroom {pct(ev.headroom)} over its own peak: {growth}."
    if above:
        text += (
            f" Members of its class reach {ev.peak_ratio:.1f}x their median memory, which for this one is "
            f"{gib(expected)} (more than it has shown so far), so it is sized for that plus {pct(rules.headroom)}: "
            f"{gib(by_class)}."
        )
    return text

"""Is a decision near the line? Two pods 1 % apart in busy share should not land in different modes unnoticed.

A decision is re-checked against its own demand scaled by ``1 ± Rules.near_line_margin`` (memory need, compute
and duty cycle together): where the setting it got would change — a larger or smaller MIG slice, no longer mostly
idle enough to time-slice, no longer inside its MPS split, or a slice where it now takes a whole GPU — the decision
says so in a reason and carries ``near_line``, so a reader knows a few percent more usage flips it. Measurement
noise of a few percent is normal (one sample more or less at the p95); the advice is stable against it or says
that it is not. tests/advisor/test_decide_properties.py holds this as a property.
"""

from __future__ import annotations

import math
from dataclasses import replace

from advisor.decide.demand import Demand, pct
from advisor.decide.fits import Fit, mig_fit, timeslice_fit
from advisor.decide.rules import Rules
from advisor.model import Decision, Mode
from slicewise.catalogue import GpuModel


def scaled(d: Demand, factor: float) -> Demand:
    """The same demand with memory need, compute and duty cycle times ``factor`` (compute capped at the GPU)."""

    def times(x: float | None) -> float | None:
        return None if x is None else min(1.0, x * factor)

    return replace(
        d,
        memory_need_override=int(d.memory_need_bytes * factor),
        compute_p95=times(d.compute_p95),
        compute_mean=times(d.compute_mean),
        compute_burst=times(d.compute_burst),
        duty_cycle=times(d.duty_cycle),
    )


def _setting(decision: Decision, d: Demand, gpu: GpuModel, rules: Rules) -> str:
    """What the decision's mode would give this demand, in words (compared, never parsed)."""
    if decision.mode == Mode.MIG:
        fit = mig_fit(d, gpu)
        return f"MIG {fit.profile.name}" if isinstance(fit, Fit) and fit.profile is not None else "a whole GPU"
    if decision.mode == Mode.TIMESLICE:
        fit = timeslice_fit(d, gpu, replace(rules, timeslice_max_replicas=decision.replicas or 1))
        ok = isinstance(fit, Fit) and fit.replicas == decision.replicas
        return "time-slicing as set" if ok else "not time-slicing at this setting"
    if decision.mode == Mode.MPS:
        need_c = d.compute_need
        ok = d.memory_need_bytes <= decision.memory_limit_bytes and (
            need_c is None or need_c <= decision.compute_limit_gpu_fraction
        )
        return "its MPS split" if ok else "more than its MPS split"
    fit = mig_fit(d, gpu)
    return "a whole GPU" if not isinstance(fit, Fit) else f"MIG {fit.profile.name if fit.profile else ''}"


def near_line(decision: Decision, d: Demand, gpu: GpuModel, rules: Rules) -> str | None:
    """A sentence saying how a few percent would change the decision, or None where it is stable."""
    margin = rules.near_line_margin
    here = _setting(decision, d, gpu, rules)
    parts = []
    for word, factor in (("more", 1 + margin), ("less", 1 - margin)):
        there = _setting(decision, scaled(d, factor), gpu, rules)
        if there != here:
            parts.append(f"with {pct(margin)} {word} memory and compute it would get {there}")
    if not parts:
        return None
    return "Near the line: " + "; ".join(parts) + ". Check it again after the next run."


def with_margin(decision: Decision, d: Demand, gpu: GpuModel, rules: Rules) -> Decision:
    """The decision with the headroom its workload was really sized with, and a "Near the line" reason where a few
    percent would change it."""
    decision = replace(decision, headroom=effective_headroom(decision, d))
    sentence = near_line(decision, d, gpu, rules)
    if sentence is None:
        return decision
    return replace(decision, near_line=True, reasons=(*decision.reasons, sentence))


def effective_headroom(decision: Decision, d: Demand) -> float:
    """The margin over the workload's own peak that its memory need holds: the rules' base headroom, or more where
    the evidence (calibrated headroom, what its class reaches) sized it larger. Configs that size from the peak
    and this figure (nos's ``gpu-<N>gb``) then ask for what the advisor itself needs."""
    if d.memory_peak_bytes <= 0:
        return decision.headroom
    return max(decision.headroom, math.ceil((d.memory_need_bytes / d.memory_peak_bytes - 1) * 1e4) / 1e4)

"""The risk a decision takes, measured against the window's samples of the workloads it covers.

Memory: the share of past samples above the memory limit (``model.exceedance`` on the feature quantiles). It is 0
by construction, since no limit is set below a peak, and is reported so the reader need not take that on trust.
Compute: the share of past samples that wanted more of the GPU than the limit gives; those samples would have run
slower, not failed. Time-slicing: the chance that a burst finds another tenant busy too, 1 - (1 - d)^(r - 1) for
duty cycle d and r replicas, taking tenants as independent.
"""

from __future__ import annotations

from collections.abc import Sequence

from advisor.decide.demand import gib, pct
from advisor.decide.fits import Fit
from advisor.decide.rules import Rules
from advisor.model import Mode, Risk, WorkloadFeatures, exceedance


def _memory_quantiles(f: WorkloadFeatures) -> dict[float, float]:
    if f.memory_quantiles:
        return {q: float(v) for q, v in f.memory_quantiles.items()}
    return {0.95: float(f.memory_p95_bytes), 0.99: float(f.memory_p99_bytes)}


def _compute_quantiles(f: WorkloadFeatures) -> dict[float, float] | None:
    if f.compute_quantiles:
        return dict(f.compute_quantiles)
    if f.compute_p95_gpu_fraction is None or f.compute_p99_gpu_fraction is None:
        return None
    return {0.95: f.compute_p95_gpu_fraction, 0.99: f.compute_p99_gpu_fraction}


def memory_exceed_share(f: WorkloadFeatures, limit: int) -> float:
    return exceedance(_memory_quantiles(f), float(f.memory_peak_bytes), float(limit))


def compute_exceed_share(f: WorkloadFeatures, limit: float) -> float | None:
    quantiles = _compute_quantiles(f)
    if quantiles is None or f.compute_peak_gpu_fraction is None:
        return None
    return exceedance(quantiles, f.compute_peak_gpu_fraction, limit)


def contention_share(duty_cycle: float, replicas: int) -> float:
    return 1.0 - (1.0 - duty_cycle) ** (replicas - 1)


def assess(
    fit: Fit,
    members: Sequence[WorkloadFeatures],
    rules: Rules,
    cotenants: Sequence[WorkloadFeatures] | None = None,
    measured_contention: float | None = None,
) -> Risk:
    """The worst member's risk under ``fit``; time-slicing contention comes from the busiest of ``cotenants``
    (the workloads that may share its GPUs: its class), by default the members themselves."""
    memory = max(memory_exceed_share(f, fit.memory_limit_bytes) for f in members)
    per_member = [compute_exceed_share(f, fit.compute_limit) for f in members]
    compute = None if any(c is None for c in per_member) else max(c for c in per_member if c is not None)
    contention = None
    if fit.mode == Mode.TIMESLICE and fit.replicas is not None:
        if measured_contention is not None:
            contention = measured_contention
        else:
            duties = [f.duty_cycle for f in (cotenants or members) if f.duty_cycle is not None]
            contention = contention_share(max(duties, default=0.0), fit.replicas)

    parts = [
        f"{pct(memory)} of past samples exceeded the {gib(fit.memory_limit_bytes)} memory limit"
        if memory > 0
        else f"no past sample exceeded the {gib(fit.memory_limit_bytes)} memory limit"
    ]
    if fit.mode == Mode.EXCLUSIVE:
        parts.append("it keeps a whole GPU, so it risks nothing it does not risk today")
    elif compute is None:
        parts.append("compute was not measured, so the chance of a slowdown is unknown")
    elif fit.mode != Mode.TIMESLICE:
        parts.append(
            f"{pct(compute)} of samples wanted more than the {fit.compute_limit:.2f} of the GPU's SMs it gets "
            "(they would have run slower, not failed)"
            if compute > 0
            else f"no sample wanted more than the {fit.compute_limit:.2f} of the GPU's SMs it gets"
        )
    if contention is not None:
        parts.append(
            f"a burst finds another tenant busy {pct(contention)} of the time"
            + (" (measured in the history)" if measured_contention is not None else " (estimated)")
            + f", and with no memory isolation a "
            f"tenant growing past its peak can OOM all {fit.replicas}"
        )
    if fit.mode == Mode.MPS:
        parts.append(f"MPS has no fault isolation: one client's fatal error ends all {fit.replicas} on the GPU")

    if memory > 0 or (compute or 0.0) > rules.compute_exceed_high or (contention or 0.0) > rules.contention_high:
        level = "high"
    elif (
        (compute is None and fit.mode != Mode.EXCLUSIVE)
        or (compute or 0.0) > rules.compute_exceed_low
        or (contention or 0.0) > rules.contention_low
        or fit.mode == Mode.MPS
    ):
        level = "medium"
    else:
        level = "low"
    summary = "; ".join(parts)
    return Risk(
        level=level,
        memory_exceed_share=memory,
        compute_exceed_share=compute,
        summary=summary[0].upper() + summary[1:] + ".",
        contention_share=contention,
    )

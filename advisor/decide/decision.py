"""A ``Decision`` from a fit, its reasons and its risk: the one place the decision's fields are filled in."""

from __future__ import annotations

from collections.abc import Iterable

from advisor.decide.fits import Fit
from advisor.decide.rules import Rules
from advisor.model import Decision, Mode, Risk
from slicewise.catalogue import GpuModel

MIG_ISOLATED = "MIG isolates memory, cache and SMs in hardware, so its neighbours cannot slow it down or OOM it."


def make_decision(
    fit: Fit,
    gpu: GpuModel,
    gpu_model: str,
    reasons: Iterable[str],
    risk: Risk,
    rules: Rules,
    group: str | None = None,
) -> Decision:
    return Decision(
        mode=fit.mode,
        gpu_model=gpu_model,
        profile=fit.profile.name if fit.profile is not None else None,
        memory_limit_bytes=fit.memory_limit_bytes,
        compute_limit_gpu_fraction=round(fit.compute_limit, 4),
        replicas=fit.replicas,
        mps_active_thread_percentage=fit.mps_active_thread_percentage,
        headroom=rules.headroom,
        reasons=tuple(reasons),
        risk=risk,
        sharing_group=group if fit.mode == Mode.MPS else None,
    )

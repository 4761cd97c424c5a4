"""What a group of workloads (a class on one GPU model, or one workload) must be given, with headroom.

A class decision is sized for its largest member (peak memory, p95 compute, busiest duty cycle), so that every
member fits the class's setting; each member is then sized again on its own (decide.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.model import WorkloadFeatures
from slicewise.history_schema import Sharing

GIB = 1024**3


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GIB:.1f} GiB"


def pct(share: float) -> str:
    """A share as a percentage a person reads: 0.0042 -> '0.4 %', 0.25 -> '25 %'."""
    value = share * 100
    return f"{value:.1f} %" if 0 < value < 10 else f"{value:.0f} %"


@dataclass(frozen=True)
class Demand:
    members: tuple[WorkloadFeatures, ...]
    headroom: float  # over the memory peak
    compute_headroom: float  # over the compute p95
    memory_peak_bytes: int  # largest member peak
    memory_p99_bytes: int
    compute_p95: float | None  # largest member p95, in whole-GPU fractions; None if any member's is unknown
    compute_mean: float | None  # largest member mean
    compute_burst: float | None  # largest member p99: how hard its bursts run
    duty_cycle: float | None  # busiest member's share of busy samples
    namespaces: frozenset[str]  # "" (unknown) excluded
    already_mps: bool  # every member runs as an MPS client today
    # where the evidence says more than peak x (1 + headroom) (decide/evidence.py): the need, and why
    memory_need_override: int | None = None
    evidence: str | None = None

    @property
    def instances(self) -> int:
        """Workloads times their replicas: how many places the plan must find."""
        return sum(m.devices for m in self.members)

    @property
    def trust_domain(self) -> str | None:
        """The one namespace all members share, if any."""
        return min(self.namespaces) if self.trusted and len(self.namespaces) == 1 else None

    @property
    def memory_need_bytes(self) -> int:
        if self.memory_need_override is not None:
            return self.memory_need_override
        return math.ceil(self.memory_peak_bytes * (1 + self.headroom))

    @property
    def compute_need(self) -> float | None:
        return None if self.compute_p95 is None else self.compute_p95 * (1 + self.compute_headroom)

    @property
    def compute_known(self) -> bool:
        return self.compute_p95 is not None

    @property
    def trusted(self) -> bool:
        """Members may share an MPS server: they run under MPS already, or all belong to one (known) namespace."""
        named_alike = len(self.namespaces) == 1 and all(m.namespace for m in self.members)
        return self.already_mps or named_alike

    @property
    def size_sentence(self) -> str:
        who = "the largest member's" if len(self.members) > 1 else "its"
        if self.evidence is not None:
            text = (
                f"Its peak memory so far is {gib(self.memory_peak_bytes)} (p99 {gib(self.memory_p99_bytes)}). "
                f"{self.evidence} It is sized for {gib(self.memory_need_bytes)} of memory"
            )
        else:
            text = (
                f"Sized for {who} peak memory {gib(self.memory_peak_bytes)} (p99 {gib(self.memory_p99_bytes)}) "
                f"plus {pct(self.headroom)} headroom: {gib(self.memory_need_bytes)}"
            )
        if self.compute_p95 is None or self.compute_need is None:
            return text + "; its compute was not measured (no per-MIG SM activity on this GPU without dcgm-exporter)."
        if self.compute_headroom > 0:
            return text + (
                f", and p95 compute {self.compute_p95:.2f} of a GPU plus {pct(self.compute_headroom)}: "
                f"{self.compute_need:.2f}."
            )
        return text + f", and its p95 compute, {self.compute_p95:.2f} of a GPU."


def demand_of(
    members: Sequence[WorkloadFeatures],
    headroom: float,
    compute_headroom: float = 0.0,
    *,
    memory_need: int | None = None,
    evidence: str | None = None,
) -> Demand:
    """What ``members`` need together; ``memory_need`` (with its ``evidence`` sentence) where decide/evidence.py
    says more than the largest peak plus ``headroom``."""
    if not members:
        raise ValueError("a demand needs at least one workload")
    compute_known = all(m.compute_known for m in members)
    return Demand(
        members=tuple(members),
        headroom=headroom,
        compute_headroom=compute_headroom,
        memory_peak_bytes=max(m.memory_peak_bytes for m in members),
        memory_p99_bytes=max(m.memory_p99_bytes for m in members),
        compute_p95=max(m.compute_p95_gpu_fraction or 0.0 for m in members) if compute_known else None,
        compute_mean=max(m.compute_mean_gpu_fraction or 0.0 for m in members) if compute_known else None,
        compute_burst=max(m.compute_p99_gpu_fraction or 0.0 for m in members) if compute_known else None,
        duty_cycle=(
            max(m.duty_cycle for m in members if m.duty_cycle is not None)
            if compute_known and all(m.duty_cycle is not None for m in members)
            else None
        ),
        namespaces=frozenset(m.namespace for m in members if m.namespace),
        already_mps=all(m.sharing == Sharing.MPS for m in members),
        memory_need_override=memory_need,
        evidence=evidence,
    )

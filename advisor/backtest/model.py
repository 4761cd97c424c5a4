"""What a backtest finds, as typed data: per workload, per origin, and the whole run (docs/backtest.md).

Counts are samples of the replay period (one sample = one workload on one device at one sampling step), so every
total is the sum of the per-workload figures of its origin; shares are counts over the samples they are shares of.
The JSON form goes through pydantic, as ``Recommendation``'s does, so ``backtest.json`` reads back into these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import TypeAdapter

BACKTEST_VERSION = "1"


@dataclass(frozen=True)
class WorkloadReplay:
    """One advised workload (on one GPU model), its decision, and what its samples after the origin did under it."""

    workload: str
    gpu_model: str
    mode: str  # the decision's Mode value: mig | mps | timeslice | exclusive
    profile: str | None
    memory_limit_bytes: int
    compute_limit_gpu_fraction: float
    samples: int  # its samples in the replay period (0: advised but not seen again)
    memory_peak_bytes: int  # its peak in the replay period (0 when not seen)
    oom_samples: int  # MIG/MPS: samples above the memory limit
    timeslice_oom_samples: int  # time-slicing/MPS: its samples on a GPU whose tenants' summed memory exceeded it
    measured_samples: int  # samples with compute measured (slowdown is judged on these only)
    slowed_samples: int  # MIG/MPS: samples whose compute exceeded the grant
    timeslice_busy_samples: int  # time-slicing: busy samples (compute above idle)
    contended_samples: int  # ...of which another tenant of its GPU was busy at the same step
    queued_samples: int  # samples at a step when its pool had more devices present than the plan has slots

    @property
    def key(self) -> tuple[str, str]:
        return (self.workload, self.gpu_model)


@dataclass(frozen=True)
class NewWorkload:
    """A workload first seen after the origin: the advice has no decision for it."""

    workload: str
    gpu_model: str
    samples: int
    first_seen: datetime
    memory_peak_bytes: int


@dataclass(frozen=True)
class Totals:
    """One origin's figures over all advised workloads (each count is the sum of the per-workload counts)."""

    samples: int
    oom_samples: int
    oom_workloads: int
    timeslice_oom_samples: int
    timeslice_oom_gpu_steps: int  # (planned GPU, step) pairs whose tenants' summed memory exceeded the GPU
    measured_samples: int
    slowed_samples: int
    slowed_share: float  # slowed / measured samples (0 when none measured)
    timeslice_busy_samples: int
    contended_samples: int
    contended_share: float  # contended / time-sliced busy samples (0 when none)
    queued_samples: int
    new_workloads: int
    new_workload_samples: int
    gpus_needed: int  # the plan fitted before the origin
    gpus_before: int  # GPUs the fit period used (the plan's "now")
    gpus_in_use: int  # distinct GPUs the replay period's samples ran on (today's placement)
    gpus_busy_at_once_max: int  # the most of them holding a workload at one sampling step


@dataclass(frozen=True)
class OriginResult:
    """Advice fitted on the history before ``origin`` and replayed on the samples after it."""

    origin: datetime
    fit_start: datetime  # first sample the fit used
    replay_end: datetime  # last sample replayed
    step_s: int  # the sampling step the replay aligns samples on
    totals: Totals
    workloads: tuple[WorkloadReplay, ...]
    new: tuple[NewWorkload, ...]
    modes: dict[str, int]  # decisions per mode (mig, mps, timeslice, exclusive)

    @property
    def replay_days(self) -> float:
        return (self.replay_end - self.origin).total_seconds() / 86400

    @property
    def sentence(self) -> str:
        """What the advice of that day would have done, in one line (the report's first screen)."""
        t = self.totals
        ooms = t.oom_samples + t.timeslice_oom_samples
        parts = [
            f"{ooms} OOM sample{'s' if ooms != 1 else ''}"
            + (f" ({_count(t.oom_workloads, 'workload')})" if ooms else ""),
            f"{_share(t.slowed_share)} of samples slowed",
        ]
        if t.timeslice_busy_samples:
            parts.append(f"{_share(t.contended_share)} of time-sliced busy samples met another busy tenant")
        if t.queued_samples:
            parts.append(f"{t.queued_samples} samples found no free slot")
        parts.append(f"{t.gpus_needed} GPUs needed (at most {t.gpus_busy_at_once_max} busy at once)")
        if t.new_workloads:
            parts.append(f"{t.new_workloads} new workload{'s' if t.new_workloads != 1 else ''} not advised")
        return (
            f"advice fitted before {self.origin:%Y-%m-%d %H:%M} UTC, replayed on the next {_span(self.replay_days)}: "
            + ", ".join(parts)
        )


@dataclass(frozen=True)
class BacktestResult:
    """Every origin of one backtest run, oldest first."""

    version: str
    source: str
    origins: tuple[OriginResult, ...]
    unavailable: str | None = None  # why no origin could be replayed (e.g. a Prometheus window past the row cap)

    @property
    def latest(self) -> OriginResult | None:
        return self.origins[-1] if self.origins else None

    @property
    def headline(self) -> str:
        """``Backtest: advice fitted before ..., replayed on the next 7 days: 0 OOM samples, ...``."""
        if self.latest is None:
            return f"Backtest: {self.unavailable or 'not run'}."
        return f"Backtest: {self.latest.sentence}."

    def to_json(self) -> str:
        return _BACKTEST.dump_json(self, indent=2).decode()

    @staticmethod
    def from_json(text: str | bytes) -> BacktestResult:
        return _BACKTEST.validate_json(text)


NEEDS_ROWS = (
    "not run: the backtest replays per-sample history rows, and this Prometheus read kept none (past 20 M samples "
    "the reader keeps no rows): run slicewise backtest --prometheus URL over a shorter window or with "
    "--prometheus.recording-rules (5-minute rows), or --history FILE"
)


def unavailable(source: str, reason: str = NEEDS_ROWS) -> BacktestResult:
    """A result that says why there is no backtest (the report shows the reason)."""
    return BacktestResult(BACKTEST_VERSION, source, (), reason)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _share(x: float) -> str:
    """0 %, 0.04 %, 1.3 %: small shares keep a significant digit."""
    if x == 0:
        return "0 %"
    return f"{x * 100:.2f} %" if x < 0.01 else f"{x * 100:.1f} %"


def _span(days: float) -> str:
    if days >= 2:
        return f"{days:.0f} days" if abs(days - round(days)) < 0.05 else f"{days:.1f} days"
    hours = days * 24
    return f"{hours:.0f} hours" if hours >= 2 else f"{hours * 60:.0f} minutes"


_BACKTEST: TypeAdapter[BacktestResult] = TypeAdapter(BacktestResult)

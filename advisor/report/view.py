"""The report's content, once, from a Recommendation: what every format (HTML, Markdown, text, Slack) shows.

Templates only lay this out; they do no arithmetic. A class that spans two GPU models is one row per model, with
the envelope taken over its members on that model (the worst of them, as classes.py takes it), because that is
what the model's limit has to hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from advisor.model import Decision, Mode, PlannedGpu, Recommendation, WorkloadRecommendation
from advisor.report.backtest import NO_BACKTEST, BacktestSection, backtest_section
from advisor.report.changes import Changes, compare
from advisor.report.formatting import decision_detail, decision_title, short_model
from slicewise.catalogue import find_model

if TYPE_CHECKING:
    from advisor.backtest.model import BacktestResult

COMPACT_OUTLIERS = 4  # more outliers than this: one table, and merged chart rows

ATTACHMENTS = (
    "recommendation.json",
    "configs/mig-parted.yaml",
    "configs/device-plugin.yaml",
    "configs/resource-requests.yaml",
)


@dataclass(frozen=True)
class Headline:
    gpus_now: int  # every GPU seen in the window: what the saving is measured against
    gpus_needed: int
    gpus_lower_bound: int
    workloads: int
    classes: int
    outliers: int
    unplaced: int
    memory_before: float
    memory_after: float
    compute_before: float | None
    compute_after: float | None
    gpus_busy_max: int | None = None  # the most GPUs holding a workload at once (a history)

    @property
    def busy_phrase(self) -> str:
        """``, 51 busy at once at most`` where the history shows it, else empty."""
        return f", {self.gpus_busy_max} busy at once at most" if self.gpus_busy_max is not None else ""

    @property
    def gpus_freed(self) -> int:
        return self.gpus_now - self.gpus_needed

    @property
    def freed_share(self) -> float:
        return self.gpus_freed / self.gpus_now if self.gpus_now else 0.0

    @property
    def sentence(self) -> str:
        """The one line a busy reader takes away; also the email subject's core."""
        if self.gpus_freed > 0:
            return f"{self.gpus_needed} GPUs can do the work of {self.gpus_now}: {self.gpus_freed} freed"
        if self.gpus_freed < 0:
            return f"{self.gpus_needed} GPUs needed, {self.gpus_now} in the fleet: {-self.gpus_freed} short"
        return f"{self.gpus_needed} GPUs needed, as many as the fleet has"


@dataclass(frozen=True)
class Envelope:
    """What the members of a class on one GPU model did, next to what the decision gives each of them."""

    memory_peak_bytes: int
    memory_p99_bytes: int
    compute_p95: float | None
    compute_mean: float | None
    member_memory_peaks: tuple[int, ...]
    member_compute_p95s: tuple[float, ...]  # measured members only


@dataclass(frozen=True)
class MemberGroup:
    """Members of a class that got the same decision of their own (a class's members may be sized smaller)."""

    decision: Decision
    members: tuple[str, ...]
    envelope: Envelope

    @property
    def title(self) -> str:
        return decision_title(self.decision)


@dataclass(frozen=True)
class ClassRow:
    """One class on one GPU model (or one outlier workload), with its decision and its members' own."""

    class_id: str  # "c1", or "outlier"
    label: str
    gpu_model: str  # NVML name
    members: tuple[str, ...]
    decision: Decision
    envelope: Envelope
    groups: tuple[MemberGroup, ...] = ()  # members by the decision each got, largest group first

    @property
    def mixed(self) -> bool:
        """Whether the members' own decisions differ from the class's (then the card lists them)."""
        return len(self.groups) > 1 or any(decision_detail(g.decision) != self.detail for g in self.groups)

    @property
    def mode(self) -> Mode:
        return self.decision.mode

    @property
    def title(self) -> str:
        return decision_title(self.decision)

    @property
    def detail(self) -> str:
        return decision_detail(self.decision)

    @property
    def model(self) -> str:
        return short_model(self.gpu_model)


@dataclass(frozen=True)
class ModelRow:
    gpu_model: str
    gpus_now: int
    gpus_needed: int
    gpus_lower_bound: int
    method: str

    @property
    def model(self) -> str:
        return short_model(self.gpu_model)


@dataclass(frozen=True)
class SliceCell:
    """A run of MIG memory slices: one GPU instance, or free slices between instances."""

    size: int
    profile: str  # "" for free slices
    workloads: tuple[str, ...]


@dataclass(frozen=True)
class GpuRow:
    """One planned GPU, or a run of whole GPUs of one model (listed together: they have nothing to lay out)."""

    gpu_model: str
    indices: tuple[int, ...]
    mode: Mode
    heading: str  # e.g. "MIG · h100-80gb-7x1g.10gb" or "MPS · 4 clients"
    cells: tuple[SliceCell, ...]  # MIG layout over the GPU's memory slices; empty for other modes
    workloads: tuple[str, ...]  # a workload on several of the GPUs reads "name ×4"

    @property
    def model(self) -> str:
        return short_model(self.gpu_model)

    @property
    def label(self) -> str:
        if len(self.indices) == 1:
            return f"#{self.indices[0]}"
        return f"#{self.indices[0]}–#{self.indices[-1]}"


@dataclass(frozen=True)
class WorkloadRow:
    workload: str
    class_id: str  # "outlier" for one decided on its own
    gpu_model: str
    decision: Decision
    memory_peak_bytes: int
    compute_p95: float | None

    @property
    def title(self) -> str:
        return decision_title(self.decision)

    @property
    def model(self) -> str:
        return short_model(self.gpu_model)


@dataclass(frozen=True)
class UnplacedRow:
    workload: str
    gpu_model: str
    reason: str

    @property
    def model(self) -> str:
        return short_model(self.gpu_model)


@dataclass(frozen=True)
class ReportView:
    title: str
    generated_at: datetime
    window_start: datetime
    window_end: datetime
    source: str
    headline: Headline
    models: tuple[ModelRow, ...]
    classes: tuple[ClassRow, ...]  # class rows, then outliers
    gpus: tuple[GpuRow, ...]
    workloads: tuple[WorkloadRow, ...]
    unplaced: tuple[UnplacedRow, ...]
    notes: tuple[str, ...]
    method: str
    changes: Changes | None
    attachments: tuple[str, ...]
    version: str
    backtest: BacktestSection = NO_BACKTEST  # what last period's advice would have done

    @property
    def class_cards(self) -> tuple[ClassRow, ...]:
        return tuple(r for r in self.classes if r.class_id != "outlier")

    @property
    def outliers(self) -> tuple[ClassRow, ...]:
        return tuple(r for r in self.classes if r.class_id == "outlier")

    @property
    def outliers_compact(self) -> bool:
        """Many outliers read better as one table than as a card each (and keep an email short)."""
        return len(self.outliers) > COMPACT_OUTLIERS

    def chart_rows(self) -> list[tuple[ClassRow, MemberGroup]]:
        """What the envelope charts draw: each class's member groups, then the outliers (merged per GPU model and
        decision when there are many of them, so that the chart keeps a readable height)."""
        rows = [(card, group) for card in self.class_cards for group in card.groups]
        if not self.outliers_compact:
            return rows + [(card, group) for card in self.outliers for group in card.groups]
        merged: dict[tuple[str, str], list[ClassRow]] = {}
        for card in self.outliers:
            merged.setdefault((card.gpu_model, decision_detail(card.decision)), []).append(card)
        for cards in merged.values():
            first = cards[0]
            members = tuple(c.label for c in cards)
            envelope = _merge([c.envelope for c in cards])
            group = MemberGroup(first.decision, members, envelope)
            label = f"{len(cards)} outliers" if len(cards) > 1 else first.label
            rows.append(
                (ClassRow("outlier", label, first.gpu_model, members, first.decision, envelope, (group,)), group)
            )
        return rows


def _merge(envelopes: Sequence[Envelope]) -> Envelope:
    p95s = [e.compute_p95 for e in envelopes if e.compute_p95 is not None]
    means = [e.compute_mean for e in envelopes if e.compute_mean is not None]
    return Envelope(
        memory_peak_bytes=max(e.memory_peak_bytes for e in envelopes),
        memory_p99_bytes=max(e.memory_p99_bytes for e in envelopes),
        compute_p95=max(p95s) if p95s else None,
        compute_mean=max(means) if means else None,
        member_memory_peaks=tuple(p for e in envelopes for p in e.member_memory_peaks),
        member_compute_p95s=tuple(p for e in envelopes for p in e.member_compute_p95s),
    )


def _envelope(members: Sequence[WorkloadRecommendation]) -> Envelope:
    f = [w.features for w in members]
    p95s = tuple(x.compute_p95_gpu_fraction for x in f if x.compute_p95_gpu_fraction is not None)
    means = [x.compute_mean_gpu_fraction for x in f if x.compute_mean_gpu_fraction is not None]
    return Envelope(
        memory_peak_bytes=max(x.memory_peak_bytes for x in f),
        memory_p99_bytes=max(x.memory_p99_bytes for x in f),
        compute_p95=max(p95s) if p95s else None,
        compute_mean=max(means) if means else None,
        member_memory_peaks=tuple(x.memory_peak_bytes for x in f),
        member_compute_p95s=p95s,
    )


def _class_rows(rec: Recommendation) -> list[ClassRow]:
    unplaced = {(u.workload, u.gpu_model) for u in rec.plan.unplaced}
    rows = []
    for c in rec.classes:
        for d in c.decisions:
            members = [w for w in rec.workloads if w.class_id == c.id and w.gpu_model == d.gpu_model]
            if members:
                env = _envelope(members)
            else:  # a class whose members are not listed per workload: fall back to the class-wide envelope
                e = c.envelope
                env = Envelope(
                    e.memory_peak_bytes,
                    e.memory_p99_bytes,
                    e.compute_p95_gpu_fraction,
                    e.compute_mean_gpu_fraction,
                    (),
                    (),
                )
            names = tuple(w.workload for w in members) or c.members
            rows.append(ClassRow(c.id, c.label, d.gpu_model, names, d, env, _groups(members)))
    for w in rec.workloads:
        if w.class_id is None and (w.workload, w.gpu_model) not in unplaced:
            env = _envelope([w])
            group = MemberGroup(w.decision, (w.workload,), env)
            rows.append(ClassRow("outlier", w.workload, w.gpu_model, (w.workload,), w.decision, env, (group,)))
    return rows


def _groups(members: Sequence[WorkloadRecommendation]) -> tuple[MemberGroup, ...]:
    by_decision: dict[str, list[WorkloadRecommendation]] = {}
    for w in members:
        by_decision.setdefault(decision_detail(w.decision), []).append(w)
    groups = [MemberGroup(ws[0].decision, tuple(w.workload for w in ws), _envelope(ws)) for ws in by_decision.values()]
    return tuple(sorted(groups, key=lambda g: -len(g.members)))


def _gpu_heading(g: PlannedGpu) -> str:
    if g.mode == Mode.MIG:
        return f"MIG · {g.mig_config}" if g.mig_config else "MIG"
    if g.mode == Mode.MPS:
        return f"MPS · {len(g.workloads)} clients, {g.mps_active_thread_percentage} % SMs each"
    if g.mode == Mode.TIMESLICE:
        return f"time-slicing · {len(g.workloads)} of {g.replicas} replicas"
    return "whole GPU"


def _cells(g: PlannedGpu) -> tuple[SliceCell, ...]:
    if g.mode != Mode.MIG:
        return ()
    catalogue = find_model(g.gpu_model)
    total = catalogue.memory_slices if catalogue else max((i.start + i.size for i in g.mig_instances), default=8)
    cells, pos = [], 0
    for inst in sorted(g.mig_instances, key=lambda i: i.start):
        if inst.start > pos:
            cells.append(SliceCell(inst.start - pos, "", ()))
        cells.append(SliceCell(inst.size, inst.profile, inst.workloads))
        pos = inst.start + inst.size
    if pos < total:
        cells.append(SliceCell(total - pos, "", ()))
    return tuple(cells)


def _gpu_rows(planned: Sequence[PlannedGpu]) -> tuple[GpuRow, ...]:
    """One row per shared GPU; the whole GPUs of each model in one row (a fleet of 50 whole GPUs is one line)."""
    rows: list[GpuRow] = []
    whole: dict[str, list[PlannedGpu]] = {}
    for g in sorted(planned, key=lambda g: (g.gpu_model, g.index)):
        if g.mode == Mode.EXCLUSIVE:
            whole.setdefault(g.gpu_model, []).append(g)
            continue
        rows.append(GpuRow(g.gpu_model, (g.index,), g.mode, _gpu_heading(g), _cells(g), g.workloads))
    for model, gs in whole.items():
        counts = Counter(w for g in gs for w in g.workloads)
        names = tuple(w if n == 1 else f"{w} ×{n}" for w, n in counts.items())
        heading = "whole GPU" if len(gs) == 1 else f"{len(gs)} whole GPUs, one workload each"
        rows.append(GpuRow(model, tuple(g.index for g in gs), Mode.EXCLUSIVE, heading, (), names))
    return tuple(sorted(rows, key=lambda r: (r.gpu_model, r.indices[0])))


def build_view(
    rec: Recommendation, previous: Recommendation | None = None, backtest: BacktestResult | None = None
) -> ReportView:
    """Everything the report shows, computed once; ``previous`` adds the "what changed" section, ``backtest`` the
    replay of advice fitted on the history before an origin (without it the section says why there is none)."""
    plan = rec.plan
    unplaced = {(u.workload, u.gpu_model) for u in plan.unplaced}
    class_rows = _class_rows(rec)
    headline = Headline(
        gpus_now=plan.gpus_now,
        gpus_needed=plan.gpus_needed,
        gpus_lower_bound=plan.gpus_lower_bound,
        workloads=len({w.workload for w in rec.workloads}),
        classes=len(rec.classes),
        outliers=sum(1 for w in rec.workloads if w.outlier and (w.workload, w.gpu_model) not in unplaced),
        unplaced=len(plan.unplaced),
        memory_before=plan.utilisation_before.memory,
        memory_after=plan.utilisation_after.memory,
        compute_before=plan.utilisation_before.compute,
        compute_after=plan.utilisation_after.compute,
        gpus_busy_max=plan.gpus_busy_max,
    )
    gpus = _gpu_rows(plan.gpus)
    workloads = tuple(
        WorkloadRow(
            w.workload,
            w.class_id or "outlier",
            w.gpu_model,
            w.decision,
            w.features.memory_peak_bytes,
            w.features.compute_p95_gpu_fraction,
        )
        for w in sorted(rec.workloads, key=lambda w: (w.class_id or "~", w.workload, w.gpu_model))
        if (w.workload, w.gpu_model) not in unplaced
    )
    attachments = (*ATTACHMENTS, *(("configs/nos.yaml",) if rec.configs.nos is not None else ()))
    return ReportView(
        title="GPU sharing report",
        generated_at=rec.generated_at,
        window_start=rec.window.start,
        window_end=rec.window.end,
        source=rec.source,
        headline=headline,
        models=tuple(
            ModelRow(m.gpu_model, m.gpus_now, m.gpus_needed, m.gpus_lower_bound, m.method)
            for m in sorted(plan.models, key=lambda m: m.gpu_model)
        ),
        classes=tuple(class_rows),
        gpus=gpus,
        workloads=workloads,
        unplaced=tuple(UnplacedRow(u.workload, u.gpu_model, u.reason) for u in plan.unplaced),
        notes=rec.notes,
        method=rec.classification,
        changes=compare(previous, rec) if previous is not None else None,
        attachments=attachments,
        version=rec.version,
        backtest=backtest_section(backtest, rec.source),
    )

"""What changed since last week: GPUs needed, per-model counts, decisions, workloads that came and went.

Compares two recommendations by (workload, GPU model), the key features and decisions use, so a workload that
moved to another GPU model reads as gone from one and new on the other. The result is plain sentences that every
report format (HTML, Markdown, text, Slack) prints the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from advisor.model import Recommendation, WorkloadKey
from advisor.report.formatting import decision_detail, decision_title, pct, short_model, signed


@dataclass(frozen=True)
class DecisionChange:
    workload: str
    gpu_model: str
    before: str
    after: str


@dataclass(frozen=True)
class ModelChange:
    gpu_model: str
    now_before: int
    now_after: int
    needed_before: int
    needed_after: int


@dataclass(frozen=True)
class Changes:
    since: datetime  # when the previous recommendation was made
    gpus_now: tuple[int, int]
    gpus_needed: tuple[int, int]
    models: tuple[ModelChange, ...]  # only the models whose counts changed
    decisions: tuple[DecisionChange, ...]
    new_workloads: tuple[WorkloadKey, ...]
    gone_workloads: tuple[WorkloadKey, ...]
    memory_after: tuple[float, float]  # expected memory utilisation after the change, last week -> this week
    compute_after: tuple[float | None, float | None]

    @property
    def nothing_changed(self) -> bool:
        return (
            self.gpus_now[0] == self.gpus_now[1]
            and self.gpus_needed[0] == self.gpus_needed[1]
            and not self.models
            and not self.decisions
            and not self.new_workloads
            and not self.gone_workloads
        )

    def sentences(self) -> list[str]:
        """The changes as plain sentences, most important first."""
        if self.nothing_changed:
            return ["Nothing changed: the same workloads, the same decisions and the same number of GPUs."]
        out = []
        (nb, na), (wb, wa) = self.gpus_needed, self.gpus_now
        counts = []
        if nb != na:
            counts.append(f"GPUs needed: {nb} → {na} ({signed(na - nb)})")
        if wb != wa:
            counts.append(f"GPUs in use: {wb} → {wa} ({signed(wa - wb)})")
        if counts:
            out.append("; ".join(counts) + ".")
        for m in self.models:
            parts = []
            if m.needed_before != m.needed_after:
                parts.append(f"needed {m.needed_before} → {m.needed_after}")
            if m.now_before != m.now_after:
                parts.append(f"in use {m.now_before} → {m.now_after}")
            out.append(f"{short_model(m.gpu_model)}: {', '.join(parts)}.")
        for d in self.decisions:
            out.append(f"{d.workload} on {short_model(d.gpu_model)}: {d.before} → {d.after}.")
        if self.new_workloads:
            out.append("New this week: " + ", ".join(_names(self.new_workloads)) + ".")
        if self.gone_workloads:
            out.append("No longer seen: " + ", ".join(_names(self.gone_workloads)) + ".")
        (mb, ma), (cb, ca) = self.memory_after, self.compute_after
        if round(mb, 2) != round(ma, 2) or (cb is not None and ca is not None and round(cb, 2) != round(ca, 2)):
            out.append(
                f"Expected utilisation after the change: memory {pct(mb)} → {pct(ma)}, compute {pct(cb)} → {pct(ca)}."
            )
        return out


def _names(keys: tuple[WorkloadKey, ...]) -> list[str]:
    return [f"{k.workload} ({short_model(k.gpu_model)})" for k in keys]


def compare(previous: Recommendation, current: Recommendation) -> Changes:
    before = {WorkloadKey(w.workload, w.gpu_model): w for w in previous.workloads}
    after = {WorkloadKey(w.workload, w.gpu_model): w for w in current.workloads}
    decisions = []
    for key in sorted(before.keys() & after.keys()):
        old, new = before[key].decision, after[key].decision
        if decision_detail(old) != decision_detail(new):
            same_title = decision_title(old) == decision_title(new)
            describe = decision_detail if same_title else decision_title
            decisions.append(DecisionChange(key.workload, key.gpu_model, describe(old), describe(new)))
    old_models = {m.gpu_model: m for m in previous.plan.models}
    new_models = {m.gpu_model: m for m in current.plan.models}
    models = []
    for name in sorted(old_models.keys() | new_models.keys()):
        o, n = old_models.get(name), new_models.get(name)
        change = ModelChange(
            name,
            o.gpus_now if o else 0,
            n.gpus_now if n else 0,
            o.gpus_needed if o else 0,
            n.gpus_needed if n else 0,
        )
        if (change.now_before, change.needed_before) != (change.now_after, change.needed_after):
            models.append(change)
    return Changes(
        since=previous.generated_at,
        gpus_now=(previous.plan.gpus_now, current.plan.gpus_now),
        gpus_needed=(previous.plan.gpus_needed, current.plan.gpus_needed),
        models=tuple(models),
        decisions=tuple(decisions),
        new_workloads=tuple(sorted(after.keys() - before.keys())),
        gone_workloads=tuple(sorted(before.keys() - after.keys())),
        memory_after=(previous.plan.utilisation_after.memory, current.plan.utilisation_after.memory),
        compute_after=(previous.plan.utilisation_after.compute, current.plan.utilisation_after.compute),
    )

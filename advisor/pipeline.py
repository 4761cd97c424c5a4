"""The whole advisor in one call: source -> features -> classes -> decisions -> plan -> configs -> Recommendation.

``recommend(source, window, seed)`` is what ``slicewise advise``, ``slicewise demo`` and the weekly schedule call.
``source`` is a history file (Parquet/CSV), a Prometheus base URL (``http://`` or ``https://``) or a
``PrometheusConnection`` (URL plus basic auth or bearer token and a private CA); ``window`` the
length of history to use, counted back from the last sample (a file) or from now (Prometheus).
``recommend_from_features`` starts from features, for tests and benchmarks that build them by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from advisor.configs import NodeNow, build_configs, inventory_from_history
from advisor.decide import DEFAULT_RULES, Rules, decide
from advisor.decide.contention import CoBusy
from advisor.decide.shared_slices import SharedToday
from advisor.model import (
    RECOMMENDATION_VERSION,
    Configs,
    FleetPlan,
    Mode,
    Recommendation,
    Window,
    WorkloadFeatures,
    WorkloadRecommendation,
)
from advisor.plan import BusyGpus, Presence, plan_fleet
from advisor.plan.krr import krr_baseline
from advisor.plan.today import today_from_history
from slicewise import catalogue
from slicewise.catalogue.tables import DriverTable
from slicewise.errors import BadInput

if TYPE_CHECKING:
    import pandas as pd

    from advisor.history.connection import PrometheusConnection
    from advisor.history.prometheus import PrometheusClient

DEFAULT_WINDOW = timedelta(days=14)


@dataclass(frozen=True)
class SourceData:
    """What a source gives the advisor: features over a window, and the GPUs per model seen in it."""

    description: str  # the file's path or the Prometheus URL
    window: Window
    features: list[WorkloadFeatures]
    gpus_now: dict[str, int]  # NVML product name -> distinct GPUs (gpu_uuid) in the window
    gpus_per_node: dict[str, int] = field(default_factory=dict)  # NVML product name -> most GPUs on one node
    presence: Presence | None = None  # who ran at the same time (a history file); None: assume always
    today: str | None = None  # where today's sharing is over-committed, in a sentence (a history file)
    busy: BusyGpus | None = None  # the most GPUs with a workload at once (a history file)
    cobusy: CoBusy | None = None  # who was busy when (a history file): measured time-slicing contention
    shared_today: SharedToday | None = None  # who shared a MIG slice with others at once (a history file)
    inventory: tuple[NodeNow, ...] | None = None  # the nodes as they run now, for the rollout (a history file)
    profile_tables: tuple[DriverTable, ...] = ()  # driver-published MIG tables (advisor/history/profiles.py)
    rows: pd.DataFrame | None = None  # Prometheus: the samples behind its answers, for the backtest (timeline.py)


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def load_file(path: Path, window: timedelta | None) -> SourceData:
    from dataclasses import replace

    from advisor.history import read_history
    from advisor.history.profiles import read_beside

    data = from_history(read_history(path), str(path), window)
    return replace(data, profile_tables=tuple(read_beside(path)))


def from_history(
    history: pd.DataFrame, description: str, window: timedelta | None, *, for_replay: bool = False
) -> SourceData:
    """What a validated history (``read_history``'s frame) gives the advisor over the trailing ``window``
    (``None``: all of it). The backtest calls this with the history before an origin and ``for_replay``: it needs
    the decisions and the plan, not the report's sentence on today's fleet or the nodes for a rollout."""
    from advisor.features import compute_features, trailing_window

    if history.empty:
        raise BadInput(f"{description}: the history has no samples")
    if window is None:  # the whole history
        features = compute_features(history, None)
        span = Window(start=history["timestamp"].min().to_pydatetime(), end=history["timestamp"].max().to_pydatetime())
        rows = history
    else:
        span = trailing_window(history, window)
        features = compute_features(history, span)
        rows = history[(history["timestamp"] > span.start) & (history["timestamp"] <= span.end)]
        # report the span the history covers, not more: 14 days asked of 23 hours of history is 23 hours
        first = history["timestamp"].min().to_pydatetime()
        span = Window(start=max(span.start, first), end=span.end)
    gpus_now, per_node_counts = gpus_seen(rows)
    presence = Presence.from_history(rows)
    today = None if for_replay else today_from_history(rows).sentence()
    busy = BusyGpus.from_history(rows, presence.bin_s)
    cobusy = CoBusy.from_history(rows)
    shared = SharedToday.from_history(rows)
    return SourceData(
        description,
        span,
        features,
        gpus_now,
        per_node_counts,
        presence,
        today,
        busy,
        cobusy,
        shared,
        inventory=None if for_replay else tuple(inventory_from_history(rows)),
    )


def gpus_seen(rows: pd.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """Distinct GPUs per GPU model in the rows, and the most of them on one node: a (node x GPU) table of what was
    seen per model, from the categoricals' codes (a groupby's nunique over 28 M rows held 0.85 GiB more)."""
    import numpy as np

    from advisor.row_scans import label_codes

    model, models = label_codes(rows["gpu_model"])
    node, nodes = label_codes(rows["node"])
    uuid, uuids = label_codes(rows["gpu_uuid"])
    in_all: dict[str, int] = {}
    most_on_a_node: dict[str, int] = {}
    for m in np.flatnonzero(np.bincount(model.astype(np.int64), minlength=len(models))):
        mine = model == m
        seen = np.zeros((len(nodes), len(uuids)), dtype=bool)
        seen[node[mine], uuid[mine]] = True
        in_all[models[m]] = int(seen.any(axis=0).sum())
        most_on_a_node[models[m]] = int(seen.sum(axis=1).max())
    return in_all, most_on_a_node


# One series per GPU seen in the window, from slicewise's exporter and from dcgm-exporter (deduplicated by UUID).
# A subquery at a coarse step, not max_over_time over the raw samples: each step reads one sample per series, so the
# query stays cheap however long the window and however many GPUs (2,000 GPUs x 14 days at 15 s would be 161 M raw
# samples, over Prometheus's default --query.max-samples; at 15 min steps it evaluates 2.7 M points). A GPU seen for
# less than one step can be missed: it is not one the plan should count.
GPUS_STEP = timedelta(minutes=15)
GPUS_SLICEWISE = (
    "max by (model, gpu_uuid, node) "
    "(max_over_time((max by (model, gpu_uuid, node) (slicewise_gpu_info))[{range}:{step}]))"
)
GPUS_DCGM = (
    "max by (modelName, UUID, Hostname) "
    "(max_over_time((max by (modelName, UUID, Hostname) (DCGM_FI_DEV_FB_USED))[{range}:{step}]))"
)


def prometheus_gpus(client: PrometheusClient, span: Window) -> tuple[dict[str, int], dict[str, int]]:
    """Distinct GPUs (UUIDs) per GPU model that either exporter reported in the window, and the most of them on
    one node (where a node label is there)."""
    from advisor.history.promql import duration

    seen: dict[str, tuple[str, str]] = {}
    queries = ((GPUS_SLICEWISE, "gpu_uuid", "model", "node"), (GPUS_DCGM, "UUID", "modelName", "Hostname"))
    step = min(GPUS_STEP, span.end - span.start)
    for expr, uuid, model, node in queries:
        query = expr.format(range=duration(span.end - span.start), step=duration(step))
        for sample in client.query(query, span.end):
            if sample.labels.get(uuid) and sample.labels.get(model):
                seen.setdefault(sample.labels[uuid], (sample.labels[model], sample.labels.get(node, "")))
    per_node = Counter((model, node) for model, node in seen.values() if node)
    most: dict[str, int] = {}
    for (model, _), n in per_node.items():
        most[model] = max(most.get(model, 0), n)
    return dict(Counter(model for model, _ in seen.values())), most


def load_prometheus(
    prometheus: str | PrometheusConnection, window: timedelta | None, now: datetime | None = None
) -> SourceData:
    """Features computed server-side, and the GPUs seen, over the window ending ``now``."""
    from advisor.history.connection import PrometheusConnection

    connection = prometheus if isinstance(prometheus, PrometheusConnection) else PrometheusConnection(prometheus)
    end = now or datetime.now(UTC)
    span = Window(start=end - (window or DEFAULT_WINDOW), end=end)
    with connection.source() as source:
        features = source.features(span)
        rows, overflow = source.rows, source.rows_overflow
    from advisor.history.profiles import from_prometheus

    with connection.client() as client:
        gpus_now, gpus_per_node = prometheus_gpus(client, span)
        tables = tuple(from_prometheus(client, span.end))
    if rows is not None and not rows.empty:
        # the samples behind the answers: the same evidence as a history file (presence, contention, turns on
        # slices, nodes), and the GPUs Prometheus saw, idle ones included
        data = from_history(rows, connection.url, None)
        return replace(
            data, window=span, gpus_now=gpus_now, gpus_per_node=gpus_per_node, profile_tables=tables, rows=rows
        )
    today = (
        "The window holds more samples than the advisor keeps in memory (advisor/history/timeline.py): pools are "
        "sized as if every workload were always present, and contention is estimated from duty cycles."
        if overflow
        else None
    )
    return SourceData(connection.url, span, features, gpus_now, gpus_per_node, today=today, profile_tables=tables)


def load(
    source: str | Path | PrometheusConnection, window: timedelta | None = DEFAULT_WINDOW, now: datetime | None = None
) -> SourceData:
    """``source``: a history file, a Prometheus URL, or a Prometheus connection (with its authentication); ``now``
    ends a Prometheus window (default: now), a file's window ends at its last sample."""
    if not isinstance(source, str | Path) or is_url(source):
        return load_prometheus(source if not isinstance(source, Path) else str(source), window, now)
    path = Path(source)
    if not path.is_file():
        raise BadInput(f"{path}: no such history file")
    return load_file(path, window)


def recommend_from_features(
    features: Sequence[WorkloadFeatures],
    *,
    window: Window,
    source: str,
    gpus_now: Mapping[str, int],
    gpus_per_node: Mapping[str, int] | None = None,
    presence: Presence | None = None,
    today: str | None = None,
    busy: BusyGpus | None = None,
    cobusy: CoBusy | None = None,
    shared_today: SharedToday | None = None,
    inventory: Sequence[NodeNow] | None = None,
    seed: int = 0,
    rules: Rules = DEFAULT_RULES,
    generated_at: datetime | None = None,
    fallback: str | None = None,
    with_configs: bool = True,
) -> Recommendation:
    from advisor.classes import classify

    if not features:
        raise BadInput(f"{source}: no workload has samples in the window {window.start} .. {window.end}")
    classification = classify(list(features), seed=seed)
    span_s = (window.end - window.start).total_seconds()
    decisions = decide(classification, features, rules, span_s, cobusy, shared_today)
    plan = plan_fleet(
        decisions.workloads,
        gpus_now,
        decisions.unplaced,
        gpus_per_node=gpus_per_node,
        presence=presence,
        fallback=fallback,
        busy=busy,
    )
    configs = build_configs(plan, decisions.workloads, inventory) if with_configs else Configs("", "", "")
    notes = [
        headline(plan, len(decisions.workloads)),
        *([today] if today else []),
        risk_taken(decisions.workloads),
        *decisions.notes,
        *([nodes] if (nodes := node_sentence(plan, inventory)) else []),
        krr_baseline(features).sentence(),
    ]
    return Recommendation(
        version=RECOMMENDATION_VERSION,
        generated_at=generated_at or datetime.now(UTC),
        window=window,
        source=source,
        classification=classification.method,
        classes=decisions.classes,
        workloads=decisions.workloads,
        plan=plan,
        configs=configs,
        notes=tuple(notes),
    )


def headline(plan: FleetPlan, workloads: int) -> str:
    """GPUs needed against GPUs in the fleet, and against the most busy at once where the history shows it: the
    saving is measured against the fleet (every GPU seen in the window), and the busy figure says how much of that
    saving idle or replaced GPUs make."""
    saved = plan.gpus_now - plan.gpus_needed
    change = f"{saved} fewer" if saved >= 0 else f"{-saved} more"
    text = (
        f"{plan.gpus_needed} GPUs needed for {workloads} workloads, against {plan.gpus_now} GPUs in the fleet "
        f"({change}; every GPU seen in the window)"
    )
    if plan.gpus_busy_max is not None:
        busy_saved = plan.gpus_busy_max - plan.gpus_needed
        text += (
            f" and {plan.gpus_busy_max} busy at once at most ("
            + (f"{busy_saved} fewer" if busy_saved >= 0 else f"{-busy_saved} more")
            + ")"
        )
    return text + f"; no plan can use fewer than {plan.gpus_lower_bound} for these decisions."


def node_sentence(plan: FleetPlan, inventory: Sequence[NodeNow] | None) -> str | None:
    """Where the plan lays its GPUs on more nodes than run that model today: the device plugin's config is per node
    (plan/node_setup.py), so setups that cannot share a node need nodes of their own, and the rollout adds them."""
    if not inventory:
        return None
    now: Counter[str] = Counter(n.gpu_model for n in inventory)
    planned: dict[str, set[int]] = {}
    for g in plan.gpus:
        planned.setdefault(g.gpu_model, set()).add(g.node_slot if g.node_slot is not None else g.index)
    more = [(m, len(slots), now[m]) for m, slots in sorted(planned.items()) if now.get(m) and len(slots) > now[m]]
    if not more:
        return None
    parts = ", ".join(f"{m}: {p} nodes where {n} run today" for m, p, n in more)
    return (
        f"The plan lays its GPUs on more nodes than run today ({parts}): a node takes one device-plugin config, so "
        "MPS, time-sliced whole GPUs and differently shared MIG slices need nodes of their own; rollout.md adds them."
    )


def risk_taken(workloads: Sequence[WorkloadRecommendation]) -> str:
    """One sentence: what moving to shared GPUs risks, worst case over the workloads, with the numbers."""
    shared = [w for w in workloads if w.decision.mode != Mode.EXCLUSIVE]
    if not shared:
        return "The risk taken: none; every workload keeps a whole GPU."
    memory = max(w.decision.risk.memory_exceed_share for w in shared)
    compute = [w.decision.risk.compute_exceed_share for w in shared if w.decision.mode in (Mode.MIG, Mode.MPS)]
    known = [c for c in compute if c is not None]
    contention = [w.decision.risk.contention_share or 0.0 for w in shared if w.decision.mode == Mode.TIMESLICE]
    parts = [
        f"The risk taken: {len(shared)} of {len(workloads)} workloads move to a MIG slice, MPS or time-slicing",
        "no past sample of any of them exceeds its memory limit"
        if memory == 0
        else f"up to {memory:.1%} of a workload's past samples exceed its memory limit",
    ]
    if known:
        parts.append(f"at most {max(known):.1%} of a workload's samples wanted more compute than its slice gives")
    if len(known) < len(compute):
        parts.append(f"{len(compute) - len(known)} are sized by memory alone (compute not measured)")
    if contention:
        parts.append(f"a time-sliced burst finds another tenant busy up to {max(contention):.0%} of the time")
    return "; ".join(parts) + "."


def recommend_data(
    data: SourceData,
    seed: int = 0,
    *,
    rules: Rules = DEFAULT_RULES,
    generated_at: datetime | None = None,
    with_configs: bool = True,
) -> Recommendation:
    """The advice for what a source gave (``load``, ``from_history``). GPU models the catalogue lacks are advised
    from the driver's MIG tables the source carries; where those disagree with the catalogue, a note says so.
    ``with_configs=False`` (the backtest's fits) leaves the config files empty: a replay needs the plan only."""
    from dataclasses import replace

    from advisor.history.profiles import learn

    learned = learn(data.profile_tables)
    with catalogue.learned(learned.models):
        rec = _recommend_data(data, seed, rules=rules, generated_at=generated_at, with_configs=with_configs)
    return replace(rec, notes=(*rec.notes, *learned.warnings)) if learned.warnings else rec


def _recommend_data(
    data: SourceData, seed: int, *, rules: Rules, generated_at: datetime | None, with_configs: bool
) -> Recommendation:
    return recommend_from_features(
        data.features,
        window=data.window,
        source=data.description,
        gpus_now=data.gpus_now,
        gpus_per_node=data.gpus_per_node,
        presence=data.presence,
        today=data.today,
        busy=data.busy,
        cobusy=data.cobusy,
        shared_today=data.shared_today,
        inventory=data.inventory,
        seed=seed,
        rules=rules,
        generated_at=generated_at,
        with_configs=with_configs,
    )


def recommend(
    source: str | Path | PrometheusConnection,
    window: timedelta | None = DEFAULT_WINDOW,
    seed: int = 0,
    *,
    rules: Rules = DEFAULT_RULES,
    generated_at: datetime | None = None,
    now: datetime | None = None,
) -> Recommendation:
    """Everything ``slicewise advise`` reports, from a history file or Prometheus (a URL, or a connection with its
    authentication)."""
    return recommend_data(load(source, window, now), seed, rules=rules, generated_at=generated_at)

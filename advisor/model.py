"""Typed boundaries between the advisor's stages, and the recommendation they add up to.

features -> ``WorkloadFeatures``; classes -> ``Classification``; decide -> ``Decision`` per class and workload;
plan -> ``FleetPlan``; configs -> ``Configs``; all of it -> ``Recommendation``, whose JSON form is the contract in
DESIGN.md ("What a recommendation holds"). Serialisation goes through pydantic, so a previous week's
``recommendation.json`` reads back into the same types (the report's "what changed" needs that).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, TypeAdapter

from slicewise.history_schema import Sharing

RECOMMENDATION_VERSION = "1"

# Quantile levels every feature source (history file or Prometheus) reports, for sizing and for risk estimates.
QUANTILE_LEVELS: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99, 0.999)


def exceedance(quantiles: dict[float, float], peak: float, limit: float) -> float:
    """Estimated share of samples above ``limit``, by linear interpolation of the empirical quantile function.

    Exact at the quantile levels; 0 when the limit is at or above the peak. Used for the risk of a decision where
    only quantiles are known (Prometheus computes them server-side).
    """
    if limit >= peak:
        return 0.0
    levels = sorted(quantiles)
    values = [quantiles[q] for q in levels]
    if limit < values[0]:
        return 1.0 - levels[0] * (limit / values[0] if values[0] > 0 else 0.0)
    levels, values = [*levels, 1.0], [*values, peak]
    i = bisect.bisect_right(values, limit)  # values[i-1] <= limit < values[i]
    lo_v, hi_v, lo_q, hi_q = values[i - 1], values[i], levels[i - 1], levels[i]
    frac = 0.0 if hi_v == lo_v else (limit - lo_v) / (hi_v - lo_v)
    return max(0.0, 1.0 - (lo_q + frac * (hi_q - lo_q)))


@dataclass(frozen=True, order=True)
class WorkloadKey:
    """Features, classes and decisions are per workload and GPU model: a workload on two models is two rows."""

    workload: str
    gpu_model: str


@dataclass(frozen=True)
class WorkloadFeatures:
    """An honest picture of one workload on one GPU model over the window (formulas in the README)."""

    workload: str
    gpu_model: str  # NVML product name
    namespace: str
    samples: int
    coverage: float  # share of the window's sampling steps that have a sample, 0..1
    memory_peak_bytes: int
    memory_p99_bytes: int
    memory_p95_bytes: int
    memory_mean_bytes: int
    # compute demand in fractions of a whole GPU's SMs; None where it was not measured (A100/A30 MIG without DCGM)
    compute_peak_gpu_fraction: float | None
    compute_p99_gpu_fraction: float | None
    compute_p95_gpu_fraction: float | None
    compute_mean_gpu_fraction: float | None
    duty_cycle: float | None  # share of samples with compute above the idle threshold
    burstiness: float | None  # see features.py for the formula
    process_count: int  # most processes seen at once
    sharing: Sharing  # how it ran most of the time
    mig_profile: str  # the MIG profile it ran on most of the time, "" if none
    memory_quantiles: dict[float, int] = field(default_factory=dict)  # QUANTILE_LEVELS -> bytes
    compute_quantiles: dict[float, float] | None = None  # QUANTILE_LEVELS -> GPU fraction
    devices: int = 1  # most devices (replicas) it ran on at once: the plan places this many
    # evidence (a history file; None from Prometheus): seconds from its first to its last sample in the window, and
    # its peak over the first half of that span, so the advisor can see whether its peak was still growing
    span_seconds: float | None = None
    memory_peak_first_half_bytes: int | None = None

    @property
    def key(self) -> WorkloadKey:
        return WorkloadKey(self.workload, self.gpu_model)

    @property
    def compute_known(self) -> bool:
        return self.compute_p95_gpu_fraction is not None


@dataclass(frozen=True)
class ClassEnvelope:
    """What a class must be sized for: the worst of its members (how it is taken is documented in classes.py)."""

    memory_peak_bytes: int
    memory_p99_bytes: int
    compute_p95_gpu_fraction: float | None
    compute_mean_gpu_fraction: float | None
    duty_cycle: float | None
    burstiness: float | None


@dataclass(frozen=True)
class WorkloadClass:
    id: str  # "c1", "c2", ... stable for a seed
    label: str  # plain words for a person, e.g. "steady compute, large memory"
    members: tuple[WorkloadKey, ...]
    envelope: ClassEnvelope


@dataclass(frozen=True)
class Classification:
    classes: tuple[WorkloadClass, ...]
    outliers: tuple[WorkloadKey, ...]  # flagged, not forced into a class; each is decided on its own
    method: str  # the pipeline and how the number of classes was chosen, in one or two sentences

    def class_of(self, key: WorkloadKey) -> WorkloadClass | None:
        return next((c for c in self.classes if key in c.members), None)


class Mode(StrEnum):
    MIG = "mig"
    MPS = "mps"
    TIMESLICE = "timeslice"
    EXCLUSIVE = "exclusive"


@dataclass(frozen=True)
class Risk:
    """What the decision risks, measured against the window's samples."""

    level: str  # low | medium | high
    memory_exceed_share: float  # share of past samples above the memory limit
    compute_exceed_share: float | None  # share of past samples above the compute limit (None: compute unknown)
    summary: str  # one plain sentence, with the numbers
    # time-slicing: the chance that a burst finds another tenant busy too (None where it does not apply)
    contention_share: float | None = None


@dataclass(frozen=True)
class Decision:
    """How to share a GPU for a class (or one workload) on one GPU model."""

    mode: Mode
    gpu_model: str
    profile: str | None  # MIG profile name, e.g. 3g.40gb
    memory_limit_bytes: int  # MIG profile memory, MPS pinned limit, the GPU's, or the time-slicing share
    compute_limit_gpu_fraction: float
    replicas: int | None  # time-slicing (and MPS): workloads per GPU
    mps_active_thread_percentage: int | None
    headroom: float  # the margin its memory need holds over its own peak: 0.15, or more where the evidence says
    reasons: tuple[str, ...]  # plain sentences with their numbers
    risk: Risk
    # MPS: the trust domain (a namespace, or a class) whose workloads, and only those, may share an MPS server
    sharing_group: str | None = None
    # a few percent more or less usage would change the setting (decide/margin.py); the reasons say how
    near_line: bool = False


@dataclass(frozen=True)
class ClassRecommendation:
    id: str
    label: str
    members: tuple[str, ...]  # workload names
    envelope: ClassEnvelope
    decisions: tuple[Decision, ...]  # one per GPU model the members ran on
    gpu_models: tuple[str, ...]


@dataclass(frozen=True)
class WorkloadRecommendation:
    workload: str
    class_id: Annotated[str | None, Field(alias="class")]  # None for an outlier
    gpu_model: str
    features: WorkloadFeatures
    outlier: bool
    decision: Decision


@dataclass(frozen=True)
class MigInstance:
    """One GPU instance in a planned MIG geometry, with what runs on it."""

    profile: str
    start: int  # memory slice
    size: int  # memory slices
    workloads: tuple[str, ...]
    replicas: int | None = None  # time-sliced inside the slice (decide/shared_slices.py): tenants at once


@dataclass(frozen=True)
class PlannedGpu:
    """One GPU after the change: a MIG geometry, a sharing group (MPS, time-slicing) or one exclusive workload."""

    gpu_model: str
    index: int  # position among the plan's GPUs of this model
    mode: Mode
    mig_config: str | None  # the mig-parted config name this GPU takes (MIG only)
    mig_instances: tuple[MigInstance, ...]
    workloads: tuple[str, ...]
    replicas: int | None
    mps_active_thread_percentage: int | None
    memory_committed_bytes: int
    compute_committed_gpu_fraction: float
    sharing_group: str | None = None  # MPS: the trust domain whose workloads share this GPU's MPS server
    # where it goes: the plan's node slot for this model (nodes of the size the history shows, each holding GPUs of
    # one sharing setup, so one node label applies) and the GPU's index on that node
    node_slot: int | None = None
    device_index: int | None = None


@dataclass(frozen=True)
class ModelPlan:
    gpu_model: str
    gpus_now: int
    gpus_needed: int
    gpus_lower_bound: int  # proven: no packing can use fewer
    method: str  # e.g. "integer program (optimal)" or "first-fit decreasing (within 1 GPU of the bound)"
    gpus_per_node: int | None = None  # node size the plan lays GPUs out on (most GPUs of this model on one node)
    gpus_busy_max: int | None = None  # the most GPUs of this model with a workload at once (a history file)


@dataclass(frozen=True)
class Utilisation:
    """Mean over GPUs: memory in use (or committed) and compute demand, as fractions of the GPUs."""

    memory: float
    compute: float | None


@dataclass(frozen=True)
class Unplaced:
    """A workload that fits no GPU model the fleet has: reported, never silently dropped."""

    workload: str
    gpu_model: str
    reason: str


@dataclass(frozen=True)
class FleetPlan:
    gpus_now: int
    gpus_needed: int
    gpus_lower_bound: int
    models: tuple[ModelPlan, ...]
    gpus: tuple[PlannedGpu, ...]
    utilisation_before: Utilisation
    utilisation_after: Utilisation
    unplaced: tuple[Unplaced, ...] = ()
    # the most GPUs with a workload on them at once (a history file; None from Prometheus): gpus_now counts every
    # GPU seen in the window, so a GPU that stood idle or was replaced counts there but not here
    gpus_busy_max: int | None = None


@dataclass(frozen=True)
class Configs:
    """Files the usual tools apply, as text (YAML)."""

    mig_parted: str  # NVIDIA mig-parted config
    device_plugin: str  # NVIDIA k8s device plugin sharing config (time-slicing, MPS)
    resource_requests: str  # per-workload Kubernetes resource requests
    nos: str | None = None  # nebuly nos requests/annotations, where it applies
    # GPU Operator (advisor/configs/): the mig-parted file as the MIG manager's ConfigMap (key config.yaml), the
    # gpu-operator Helm values that go with both ConfigMaps, and the rollout plan node by node ("" in older files)
    mig_parted_configmap: str = ""
    operator_values: str = ""
    rollout_md: str = ""
    rollout_json: str = ""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Recommendation:
    version: str
    generated_at: datetime
    window: Window
    source: str  # the history file's path or the Prometheus URL
    classification: str  # Classification.method
    classes: tuple[ClassRecommendation, ...]
    workloads: tuple[WorkloadRecommendation, ...]
    plan: FleetPlan
    configs: Configs
    notes: tuple[str, ...] = ()  # caveats a reader must see, e.g. compute unknown for A100 MIG workloads

    def to_json(self) -> str:
        return _RECOMMENDATION.dump_json(self, by_alias=True, indent=2).decode()

    @staticmethod
    def from_json(text: str | bytes) -> Recommendation:
        return _RECOMMENDATION.validate_json(text)


_RECOMMENDATION: TypeAdapter[Recommendation] = TypeAdapter(Recommendation)

"""Every PromQL expression the advisor sends, in one place (the e2e test compares them with the recording rules).

Two layers:

1. **Per-sample series**, one per workload on one device at one instant — the Prometheus twin of a history row.
   ``workload_device_memory`` and ``workload_device_compute`` are the recording rules'
   ``workload_device:slicewise_memory_used_bytes:sum`` and ``workload_device:slicewise_sm_active:gpu_fraction``
   (deploy/prometheus/slicewise.rules.yml), written with the same joins and the same attribution rule:
   ``workload demand (GPU fraction) = device SM active ratio × device SMs ÷ GPU SMs``; on a MIG device the device's
   activity is split evenly among the workloads with a process on it in that sample. Two additions: a MIG device
   without GPM (A100, A30) takes its activity from dcgm-exporter's ``DCGM_FI_PROF_SM_ACTIVE`` (or
   ``DCGM_FI_PROF_GR_ENGINE_ACTIVE``) when Prometheus has it; and GPUs that only dcgm-exporter watches give
   series too, with the workload taken from dcgm-exporter's pod labels (``dcgm.py``).
   ``device_memory`` and ``device_compute`` give the same numbers without the joins that only add labels (GPU
   model, MIG profile): inside a subquery every join runs at every step, and those made queries 3-5x slower.
2. **What the reader sends** (``prometheus.py``): per chunk, range queries at the step of the raw process series
   (added up per workload and device client-side: Prometheus's aggregation in a range query costs 10x reading),
   of ``mig_activity`` and ``mps_gpus``, of dcgm-exporter's part (``dcgm_only_memory``, ``dcgm_only_compute``),
   or of the recording rules' series (``recorded_memory``, ``recorded_compute_lean``). ``over_time`` builds the
   one subquery left: the most processes per workload and device in recorded mode.

Every raw selector goes through a ``Sampler``. By default (``INSTANT``) it is the plain selector, as the rules
read it: at each subquery step Prometheus takes the latest sample within its lookback (5 min), and a series that
stopped ends at the staleness marker Prometheus writes when a scrape no longer has it — so a gap is a gap.
Data without staleness markers (backfilled with promtool, some push paths) would instead repeat a workload's last
sample for 5 minutes; ``Sampler(lookback=step − 1ms)`` reads ``last_over_time(selector[step − 1ms])``, the sample
of that step or nothing, at about 6x the server's work.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from advisor.history import dcgm

PROCESS_MEMORY = "slicewise_process_memory_used_bytes"
MIG_SM_ACTIVE = "slicewise_mig_sm_active_ratio"
PROCESS_LABELS = "pid, process, pod, container"  # dropped to get one series per workload on one device
MIG_PROCESS_MEMORY = 'slicewise_process_memory_used_bytes{gi!=""}'
GPU_PROCESS_MEMORY = 'slicewise_process_memory_used_bytes{gi=""}'
GPU_PROCESS_SM = 'slicewise_process_sm_active_ratio{gi=""}'
MPS_GPU_INFO = 'slicewise_gpu_info{mps="active"}'


def duration(value: timedelta) -> str:
    """A PromQL duration in milliseconds, e.g. ``59999ms`` (exact, and every PromQL dialect parses it)."""
    millis = round(value.total_seconds() * 1000)
    if millis <= 0:
        raise ValueError(f"not a positive duration: {value}")
    return f"{millis}ms"


@dataclass(frozen=True)
class Sampler:
    """How a raw selector is read at each evaluation time: plain (lookback and staleness markers), or strictly the
    samples within ``lookback`` (data without staleness markers; a step coarser than the scrape interval),
    combined by ``function``: ``last``, ``max`` (memory: nothing between two steps is missed) or ``avg``
    (compute: the step's mean)."""

    lookback: timedelta | None = None
    function: str = "last"

    def __call__(self, selector: str) -> str:
        if self.lookback is None:
            return selector
        return f"{self.function}_over_time({selector}[{duration(self.lookback)}])"

    @staticmethod
    def strict(step: timedelta) -> Sampler:
        """The samples scraped within each step, never an older one."""
        return Sampler(step - timedelta(milliseconds=1))

    def peak(self) -> Sampler:
        """The largest sample of each step (the same as the sample where a step holds one)."""
        return replace(self, function="max")

    def mean(self) -> Sampler:
        """The mean of each step's samples (the same as the sample where a step holds one)."""
        return replace(self, function="avg")


INSTANT = Sampler()


def over_time(function: str, expr: str, range_: timedelta, step: timedelta, *, quantile: float | None = None) -> str:
    """``<function>_over_time((expr)[range:step])``, e.g. the maximum of a per-sample series over a chunk."""
    argument = f"{quantile!r}, " if quantile is not None else ""
    return f"{function}_over_time({argument}({expr})[{duration(range_)}:{duration(step)}])"


# ------------------------------------------------------------------------------------------ slicewise exporter


def mig_device_gpm_fraction(s: Sampler) -> str:
    """A MIG device's GPM SM activity as a fraction of its whole GPU (rule ``mig_device:…:gpu_fraction``)."""
    return (
        f"{s('slicewise_mig_sm_active_ratio')} * {s('slicewise_mig_sm_count')}"
        f" / ignoring(gi, ci, profile) group_left() {s('slicewise_gpu_sm_count')}"
    )


def mig_device_dcgm_fraction(s: Sampler) -> str:
    """The same from dcgm-exporter's per-GPU-instance activity, for MIG devices without GPM (A100, A30).

    dcgm-exporter reports per GPU instance (``GPU_I_ID``); each compute instance of it gets the instance's ratio
    times its own SMs, so the compute instances of one GPU instance add up to the instance's activity.
    """
    activity = f"max by (gpu_uuid, gi) ({dcgm.as_slicewise_device(dcgm.activity(s), 'gi')})"  # one value per GI
    return (
        f"{s('slicewise_mig_sm_count')} * on(gpu_uuid, gi) group_left() {activity}"
        f" / ignoring(gi, ci, profile) group_left() {s('slicewise_gpu_sm_count')}"
    )


def mig_device_fraction(s: Sampler) -> str:
    """GPM where the GPU has it, else dcgm-exporter's activity, else nothing (compute unknown, never zero)."""
    return f"({mig_device_gpm_fraction(s)}) or on(job, instance, gpu_uuid, gi, ci) ({mig_device_dcgm_fraction(s)})"


def _mig_workloads(s: Sampler) -> str:
    return f"group without({PROCESS_LABELS}) ({s(MIG_PROCESS_MEMORY)})"


def _gpu_model(s: Sampler) -> str:
    # max by: a driver update changes the info series' labels; for one step both may be seen, and one is enough
    info = f"max by (job, instance, gpu_uuid, model) ({s('slicewise_gpu_info')})"
    return f"* on(job, instance, gpu_uuid) group_left(model) {info}"


def slicewise_workload_device_compute(s: Sampler) -> str:
    """Compute demand of one workload on one device, GPU fraction (rule ``workload_device:…:gpu_fraction``)."""
    workloads_on_device = f"count without(workload, namespace) ({_mig_workloads(s)})"
    split = f"({mig_device_fraction(s)}) / ignoring(profile) group_left() {workloads_on_device}"
    whole_gpu = f"sum without({PROCESS_LABELS}) ({s(GPU_PROCESS_SM)})"
    mig = f"{_mig_workloads(s)} * on(job, instance, gpu_uuid, gi, ci) group_left(profile) ({split})"
    return f"(({mig}) or ({whole_gpu})) {_gpu_model(s)}"


def _per_workload_device(s: Sampler, aggregation: str) -> str:
    """``aggregation`` (sum, count) of a workload's process series on each device, labelled with profile and model."""
    mig = (
        f"{aggregation} without({PROCESS_LABELS}) ({s(MIG_PROCESS_MEMORY)})"
        f" * on(job, instance, gpu_uuid, gi, ci) group_left(profile)"
        f" max by (job, instance, gpu_uuid, gi, ci, profile) ({s('slicewise_mig_info')})"
    )
    whole_gpu = f"{aggregation} without({PROCESS_LABELS}) ({s(GPU_PROCESS_MEMORY)})"
    return f"(({mig}) or ({whole_gpu})) {_gpu_model(s)}"


def slicewise_workload_device_memory(s: Sampler) -> str:
    """Memory of one workload on one device: its processes added up (rule ``workload_device:…_bytes:sum``)."""
    return _per_workload_device(s, "sum")


def slicewise_processes(s: Sampler) -> str:
    """Processes of one workload on one device (same labels as its memory series)."""
    return _per_workload_device(s, "count")


def slicewise_mps(memory: str, s: Sampler) -> str:
    """The per-sample memory series of workloads on a GPU with an MPS server (DESIGN.md: they are MPS clients)."""
    return f"({memory}) and on(job, instance, gpu_uuid) {s(MPS_GPU_INFO)}"


def slicewise_timeslice(memory: str, s: Sampler) -> str:
    """… of workloads sharing a whole GPU with another workload, without MPS: time-slicing."""
    crowded = f"count without(workload, namespace) (group without({PROCESS_LABELS}) ({s(GPU_PROCESS_MEMORY)})) > 1"
    return f"(({memory}) and on(job, instance, gpu_uuid) ({crowded})) unless ({slicewise_mps(memory, s)})"


# ------------------------------------------------------------------------------------------ both sources


def workload_device_memory(s: Sampler) -> str:
    """Per-sample memory per workload and device: slicewise's exporter, and dcgm-exporter for GPUs it alone sees."""
    dcgm_only = f"{dcgm.workload_device_memory(s)} unless on(gpu_uuid) {s('slicewise_gpu_info')}"
    return f"({slicewise_workload_device_memory(s)}) or ({dcgm_only})"


def workload_device_compute(s: Sampler) -> str:
    """Per-sample compute demand (GPU fraction) per workload and device, from either source."""
    dcgm_only = f"{dcgm.workload_device_compute(s)} unless on(gpu_uuid) {s('slicewise_gpu_info')}"
    return f"({slicewise_workload_device_compute(s)}) or ({dcgm_only})"


def mps_samples(s: Sampler) -> str:
    return slicewise_mps(slicewise_workload_device_memory(s), s)


def timeslice_samples(s: Sampler) -> str:
    dcgm_only = f"({dcgm.timeslice(dcgm.workload_device_memory(s))}) unless on(gpu_uuid) {s('slicewise_gpu_info')}"
    return f"({slicewise_timeslice(slicewise_workload_device_memory(s), s)}) or ({dcgm_only})"


def processes(s: Sampler) -> str:
    """Processes per workload and device (dcgm-exporter cannot see processes: it counts as 1 there)."""
    return slicewise_processes(s)


# ------------------------------------------------------------------------------------------ lean, for subqueries
# Labels of the lean slicewise series: gpu_uuid, gi, ci, workload, namespace (a GPU's UUID is unique fleet-wide);
# dcgm-only series also carry profile and model.

DEVICE = "gpu_uuid, gi, ci, workload, namespace"


@dataclass(frozen=True)
class Sources:
    """Which metric families Prometheus has in the window: expressions leave out what cannot match anything."""

    slicewise: bool = True  # slicewise_process_memory_used_bytes
    gpm: bool = True  # slicewise_mig_sm_active_ratio (Hopper MIG)
    dcgm_activity: bool = True  # DCGM_FI_PROF_SM_ACTIVE or DCGM_FI_PROF_GR_ENGINE_ACTIVE
    dcgm_memory: bool = True  # DCGM_FI_DEV_FB_USED

    @staticmethod
    def present(names: Iterable[str]) -> Sources:
        have = set(names)
        return Sources(
            slicewise="slicewise_process_memory_used_bytes" in have,
            gpm="slicewise_mig_sm_active_ratio" in have,
            dcgm_activity=bool(have & {dcgm.SM_ACTIVE, dcgm.ENGINE_ACTIVE}),
            dcgm_memory=dcgm.MEMORY in have,
        )


ALL_SOURCES = Sources()


def _union(parts: Iterable[str]) -> str:
    chosen = [f"({p})" for p in parts if p]
    return " or ".join(chosen) if chosen else "vector(0) < 0"  # an empty vector: nothing to read


def _dcgm_only(expr: str, s: Sampler, src: Sources) -> str:
    return f"{expr} unless on(gpu_uuid) {s('slicewise_gpu_info')}" if src.slicewise else expr


def _lean(s: Sampler, aggregation: str, selector: str) -> str:
    return f"{aggregation} by ({DEVICE}) ({s(selector)})"


def device_memory(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """Per-sample memory per workload and device, without model and profile labels (dcgm-only series have them)."""
    return _union(
        (
            _lean(s, "sum", "slicewise_process_memory_used_bytes") if src.slicewise else "",
            _dcgm_only(dcgm.workload_device_memory(s), s, src) if src.dcgm_memory else "",
        )
    )


def mig_device_fraction_lean(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """``mig_device_fraction`` labelled by (gpu_uuid, gi, ci) only: one series per MIG device, which the reader
    splits evenly among the workloads with a process on the device at each step (``reduce.py``)."""
    gpm = (
        f"max by (gpu_uuid, gi, ci) ({s('slicewise_mig_sm_active_ratio')} * {s('slicewise_mig_sm_count')}"
        f" / ignoring(gi, ci, profile) group_left() {s('slicewise_gpu_sm_count')})"
    )
    dcgm_activity = f"max by (gpu_uuid, gi, ci) ({mig_device_dcgm_fraction(s)})"
    return _union((gpm if src.gpm else "", dcgm_activity if src.dcgm_activity else ""))


def device_compute(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """Per-sample compute demand per workload and device (GPU fraction), same labels as ``device_memory``."""
    mig = ""
    if src.slicewise and (src.gpm or src.dcgm_activity):
        on_device = _lean(s, "group", MIG_PROCESS_MEMORY)
        split = f"({mig_device_fraction_lean(s, src)}) / count by (gpu_uuid, gi, ci) ({on_device})"
        mig = f"{on_device} * on(gpu_uuid, gi, ci) group_left() ({split})"
    return _union(
        (
            mig,
            _lean(s, "sum", GPU_PROCESS_SM) if src.slicewise else "",
            _dcgm_only(dcgm.workload_device_compute(s), s, src) if src.dcgm_memory or src.dcgm_activity else "",
        )
    )


def device_whole_compute(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """``device_compute`` without the MIG part: whole-GPU workloads (per-process activity) and dcgm-only devices
    (which need dcgm-exporter's memory series to be workloads at all)."""
    return _union(
        (
            _lean(s, "sum", GPU_PROCESS_SM) if src.slicewise else "",
            _dcgm_only(dcgm.workload_device_compute(s), s, src) if src.dcgm_memory else "",
        )
    )


def mig_activity(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """Each MIG device's activity relative to the device: GPM per compute instance (``gpu_uuid, gi, ci``), and
    dcgm-exporter's per GPU instance (``gpu_uuid, gi``). The reader scales it by the device's SMs over the GPU's
    (the catalogue's, from the device's profile and the GPU's model: no ``*_sm_count`` samples to read) and splits
    it evenly among the workloads on the device at each step — ``mig_device_fraction``, done client-side."""
    gpm = f"max by (gpu_uuid, gi, ci) ({s('slicewise_mig_sm_active_ratio')})"
    per_gi = f"max by (gpu_uuid, gi) ({dcgm.as_slicewise_device(dcgm.activity(s), 'gi')})"
    return _union((gpm if src.gpm else "", per_gi if src.dcgm_activity else ""))


def dcgm_only_memory(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """Memory per workload on the devices only dcgm-exporter watches (``device_memory``'s dcgm part)."""
    return _dcgm_only(dcgm.workload_device_memory(s), s, src)


def dcgm_only_compute(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """Compute per workload on the devices only dcgm-exporter watches (``device_compute``'s dcgm part)."""
    return _dcgm_only(dcgm.workload_device_compute(s), s, src)


def mps_gpus(s: Sampler) -> str:
    """1 per GPU at each step its MPS server is up (its workloads are MPS clients, DESIGN.md)."""
    return f"group by (gpu_uuid) ({s(MPS_GPU_INFO)})"


def _with_model(expr: str, s: Sampler) -> str:
    return f"{expr} * on(gpu_uuid) group_left(model) max by (gpu_uuid, model) ({s('slicewise_gpu_info')})"


def device_memory_with_model(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """``device_memory`` with the GPU model on every series (for counts per workload and model)."""
    return _union(
        (
            _with_model(_lean(s, "sum", "slicewise_process_memory_used_bytes"), s) if src.slicewise else "",
            _dcgm_only(dcgm.workload_device_memory(s), s, src) if src.dcgm_memory else "",
        )
    )


def device_processes(s: Sampler) -> str:
    """Processes per workload and device, same labels as ``device_memory``."""
    return _lean(s, "count", "slicewise_process_memory_used_bytes")


def device_mps(s: Sampler) -> str:
    """``device_memory``'s slicewise series on a GPU with an MPS server: MPS clients."""
    return f"{_lean(s, 'sum', GPU_PROCESS_MEMORY)} and on(gpu_uuid) {s(MPS_GPU_INFO)}"


def device_timeslice(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """``device_memory``'s series of workloads sharing a whole GPU (or, dcgm-only, a device) with another."""
    slicewise = ""
    if src.slicewise:
        memory = _lean(s, "sum", GPU_PROCESS_MEMORY)
        crowded = f"count by (gpu_uuid) ({memory}) > 1"
        slicewise = f"({memory} and on(gpu_uuid) ({crowded})) unless on(gpu_uuid) {s(MPS_GPU_INFO)}"
    return _union(
        (
            slicewise,
            _dcgm_only(f"({dcgm.timeslice(dcgm.workload_device_memory(s))})", s, src) if src.dcgm_memory else "",
        )
    )


# ------------------------------------------------------------------------------------------ recorded
# With deploy/prometheus/slicewise.rules.yml loaded, Prometheus stores the per-sample series as it scrapes; reading
# them is a plain selector per step instead of an aggregation and joins per step.
# Their labels include model and profile. The rules have no dcgm-exporter fallback, so that part stays computed.

RECORDED_MEMORY = "workload_device:slicewise_memory_used_bytes:sum"
RECORDED_COMPUTE = "workload_device:slicewise_sm_active:gpu_fraction"


def recorded_memory(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """``device_memory`` from the recording rule (and dcgm-exporter for GPUs only it watches)."""
    return _union((s(RECORDED_MEMORY), _dcgm_only(dcgm.workload_device_memory(s), s, src) if src.dcgm_memory else ""))


def recorded_compute(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """``device_compute`` from the recording rule, plus dcgm-exporter's activity where the rule has none."""
    dcgm_mig = ""
    if src.dcgm_activity:
        on_device = _lean(s, "group", MIG_PROCESS_MEMORY)
        activity = f"max by (gpu_uuid, gi, ci) ({mig_device_dcgm_fraction(s)})"
        split = f"({activity}) / count by (gpu_uuid, gi, ci) ({on_device})"
        attributed = f"{on_device} * on(gpu_uuid, gi, ci) group_left() ({split})"
        dcgm_mig = f"({attributed}) unless on(gpu_uuid, gi, ci) {s(RECORDED_COMPUTE)}"
    return _union(
        (
            s(RECORDED_COMPUTE),
            dcgm_mig,
            _dcgm_only(dcgm.workload_device_compute(s), s, src) if src.dcgm_memory or src.dcgm_activity else "",
        )
    )


def recorded_compute_lean(s: Sampler, src: Sources = ALL_SOURCES) -> str:
    """The rule's compute series, and dcgm-only devices'; MIG devices the rules cannot measure (no GPM) get
    dcgm-exporter's activity client-side (``mig_activity``), where the rule has no series for them."""
    return _union((s(RECORDED_COMPUTE), _dcgm_only(dcgm.workload_device_compute(s), s, src) if src.dcgm_memory else ""))


def gpu_models(range_: timedelta) -> str:
    """GPU model per GPU seen by slicewise's exporter in the range ending at the evaluation time."""
    return f"max by (gpu_uuid, model) (last_over_time(slicewise_gpu_info[{duration(range_)}]))"


def mig_profiles(range_: timedelta) -> str:
    """MIG profile per MIG device (GPU, GPU instance, compute instance) in the range."""
    return f"max by (gpu_uuid, gi, ci, profile) (last_over_time(slicewise_mig_info[{duration(range_)}]))"


def devices(memory: str, by: str = "workload, model") -> str:
    """Devices each workload runs on at one instant (per GPU model where ``memory`` has it): its replicas."""
    return f"count by ({by}) ({memory})"


def presence(memory: str, by: str = "workload, model") -> str:
    """1 per workload (and GPU model) at each instant it was seen at all: counting these gives its coverage."""
    return f"group by ({by}) ({memory})"


def active(compute: str, idle_gpu_fraction: float) -> str:
    """The per-sample compute series where the workload computes at all (above the idle threshold)."""
    return f"({compute}) > {idle_gpu_fraction!r}"


def squared(compute: str) -> str:
    return f"({compute}) ^ 2"


def exists(metrics: Iterable[str]) -> str:
    """1 if any of the metrics has a series now (a cheap check before choosing what to ask)."""
    return " or ".join(f"count({m}) > 0" for m in metrics)

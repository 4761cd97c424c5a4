"""dcgm-exporter's series, read as slicewise's: device labels, workloads from pod labels, whole-GPU fractions.

Many clusters already run NVIDIA's dcgm-exporter. Its series give the advisor two things:

- compute for MIG devices that slicewise's exporter cannot measure (A100, A30: no GPM), joined to slicewise's MIG
  devices by GPU UUID and GPU-instance id (``promql.mig_device_dcgm_fraction``);
- everything, on GPUs that only dcgm-exporter watches: memory from ``DCGM_FI_DEV_FB_USED`` (MiB), compute from
  ``DCGM_FI_PROF_SM_ACTIVE`` (or ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` where SM activity is not collected; it is
  an upper bound of it), the workload from the pod labels dcgm-exporter attaches to the device a pod holds.

Labels read: ``UUID``, ``GPU_I_ID``, ``GPU_I_PROFILE``, ``modelName`` and ``pod``/``namespace`` — or
``exported_pod``/``exported_namespace``, the names Prometheus gives them when the scrape's own target labels are
called the same (a ServiceMonitor without ``honorLabels``). A device not held by a pod has no workload and is not
read. DCGM reports per device, not per process: two pods time-slicing one GPU each see the whole GPU's memory and
activity, so dcgm-only time-sliced workloads are over-stated (slicewise's exporter measures them per process).

Workload identity follows DESIGN.md: ``<namespace>/<owner>``, the owner being the pod's name without the suffixes
Kubernetes adds to replicas (``OWNER_PATTERN``): ``api-7d9f8b6c5d-x2k4p`` (Deployment) → ``api``,
``etl-29301840-q8z7m`` (CronJob) → ``etl``, ``db-2`` (StatefulSet) → ``db``, ``train-x2k4p`` (Job, DaemonSet) →
``train``. Kubernetes draws those suffixes from the alphabet ``bcdfghjklmnpqrstvwxz2456789``, so names that merely
end in a dash and a word are left alone unless the word is made only of those characters.

MIG fractions: DCGM's activity on a MIG device is relative to that device, so it is multiplied by the profile's
SMs over the GPU's SMs, from the catalogue (``slicewise.catalogue``), e.g. 16/132 for ``1g.10gb`` on an H100.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from slicewise.catalogue import models

if TYPE_CHECKING:
    from advisor.history.promql import Sampler

MIB = 1024 * 1024
MEMORY = "DCGM_FI_DEV_FB_USED"  # MiB
SM_ACTIVE = "DCGM_FI_PROF_SM_ACTIVE"  # 0..1 of the device's SMs busy
ENGINE_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"  # 0..1 of the time the graphics engine was busy
METRICS = (MEMORY, SM_ACTIVE, ENGINE_ACTIVE)

_SUFFIX_CHARS = "[bcdfghjklmnpqrstvwxz2456789]"
# CronJob (scheduled minute, then pod), Deployment (template hash, then pod), StatefulSet (ordinal), Job/DaemonSet
OWNER_PATTERN = (
    rf"(.+?)(?:-[0-9]{{8,}}-{_SUFFIX_CHARS}{{5}}"
    rf"|-{_SUFFIX_CHARS}{{6,10}}-{_SUFFIX_CHARS}{{5}}"
    rf"|-[0-9]+"
    rf"|-{_SUFFIX_CHARS}{{5}})"
)
_OWNER = re.compile(OWNER_PATTERN)
_DEVICE_LABELS = "workload, namespace, gpu_uuid, gi, profile, model"


def owner_of(pod: str) -> str:
    """The pod's owner by name, as the PromQL below computes it (for tests and documentation)."""
    match = _OWNER.fullmatch(pod)
    return match.group(1) if match else pod


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _selector(metric: str, matchers: str) -> str:
    return f"{metric}{{{matchers}}}" if matchers else metric


def _with_pod(s: Sampler, metric: str, matchers: str = "") -> str:
    """The series of ``metric`` held by a pod, whichever name the pod labels got in Prometheus."""
    plain = _selector(metric, ",".join(m for m in (matchers, 'pod!=""') if m))
    exported = _selector(metric, ",".join(m for m in (matchers, 'exported_pod!=""') if m))
    return f"({s(plain)} or {s(exported)})"


def _as_workload_device(expr: str) -> str:
    """slicewise's label names on a dcgm-exporter series: device, model, namespace and workload."""
    out = expr
    for source, target in (("exported_pod", "pod"), ("exported_namespace", "namespace")):
        out = f'label_replace({out}, "{target}", "$1", "{source}", "(.+)")'
    out = f'label_replace({out}, "owner", "$1", "pod", "(.*)")'
    out = f'label_replace({out}, "owner", "$1", "owner", {_quoted(OWNER_PATTERN)})'
    out = f'label_join({out}, "workload", "/", "namespace", "owner")'
    return as_slicewise_device(out, "gi", "profile", "model")


def as_slicewise_device(expr: str, *labels: str) -> str:
    """Copy dcgm-exporter's ``UUID`` to ``gpu_uuid`` and, as asked, ``GPU_I_ID`` → ``gi``,
    ``GPU_I_PROFILE`` → ``profile``, ``modelName`` → ``model``."""
    names = {"gi": "GPU_I_ID", "profile": "GPU_I_PROFILE", "model": "modelName"}
    out = f'label_replace({expr}, "gpu_uuid", "$1", "UUID", "(.+)")'
    for label in labels:
        out = f'label_replace({out}, "{label}", "$1", "{names[label]}", "(.+)")'
    return out


def activity(s: Sampler, matchers: str = 'GPU_I_ID!=""') -> str:
    """A device's activity ratio: SM activity, or the graphics engine's where SM activity is not collected."""
    return f"({s(_selector(SM_ACTIVE, matchers))} or on(UUID, GPU_I_ID) {s(_selector(ENGINE_ACTIVE, matchers))})"


@cache
def mig_fractions() -> tuple[tuple[str, str, float], ...]:
    """(NVML model name, MIG profile, profile SMs ÷ GPU SMs) for every model and profile in the catalogue."""
    return tuple(
        (name, profile.name, profile.sm_count / model.sm_count)
        for model in models()
        for name in model.nvml_names
        for profile in model.profiles
    )


def _fraction_table() -> str:
    """The catalogue's MIG fractions as a PromQL vector labelled by ``modelName`` and ``GPU_I_PROFILE``."""
    rows = [
        f'label_replace(label_replace(vector({fraction!r}), "modelName", {_quoted(model)}, "", ""),'
        f' "GPU_I_PROFILE", {_quoted(profile)}, "", "")'
        for model, profile, fraction in mig_fractions()
    ]
    return "(" + " or ".join(rows) + ")"


def workload_device_memory(s: Sampler) -> str:
    """Memory per workload and device from dcgm-exporter, bytes (a device's memory, whichever pod holds it)."""
    return f"max by ({_DEVICE_LABELS}) ({_as_workload_device(_with_pod(s, MEMORY))}) * {MIB}"


def workload_device_compute(s: Sampler) -> str:
    """Compute demand per workload and device from dcgm-exporter, as a fraction of the whole GPU."""
    whole_gpu, mig_device = 'GPU_I_PROFILE=""', 'GPU_I_PROFILE!=""'
    whole = f"({_with_pod(s, SM_ACTIVE, whole_gpu)} or on(UUID) {_with_pod(s, ENGINE_ACTIVE, whole_gpu)})"
    mig_ratio = (
        f"({_with_pod(s, SM_ACTIVE, mig_device)} or on(UUID, GPU_I_ID) {_with_pod(s, ENGINE_ACTIVE, mig_device)})"
    )
    mig = f"{mig_ratio} * on(modelName, GPU_I_PROFILE) group_left() {_fraction_table()}"
    return f"max by ({_DEVICE_LABELS}) ({_as_workload_device(f'({whole} or {mig})')})"


def timeslice(memory: str) -> str:
    """The dcgm-only memory series of devices that more than one workload holds at once.

    On a whole GPU that is time-slicing; on a MIG device the reader counts the series as MIG (its ``gi`` says so).
    """
    return f"({memory}) and on(gpu_uuid, gi) (count by (gpu_uuid, gi) ({memory}) > 1)"

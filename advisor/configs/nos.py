"""Requests for nebuly nos (dynamic MIG and MPS partitioning): only what nos can apply, and the Helm values it needs.

With nos, pods ask for ``nvidia.com/mig-<profile>: 1`` (MIG nodes) or ``nvidia.com/gpu-<N>gb: 1`` with
``hostIPC: true`` (MPS nodes), nodes carry ``nos.nebuly.com/gpu-partitioning=mig|mps``, and nos's partitioner picks
each GPU's geometry from the pending pods, writing ``nos.nebuly.com/spec-gpu-<index>-<profile>`` annotations itself.
What nos cannot serve, from its source (nebuly-ai/nos @12e0a72):
- a GPU whose ``nvidia.com/gpu.product`` is not in ``gpuPartitioner.knownMigGeometries`` ("is not associated with
  any known GPU": ``pkg/gpu/mig/gpu.go``, ``NewGPU``), and a geometry not listed there (``GetAllowedGeometries``).
  The chart's default lists A30 and A100 only, so the values below list every planned geometry of every model
  with nos MIG workloads. Helm replaces a list whole: add the chart's entries back for models not planned here.
- ``+me`` profiles: nos reads a pod's MIG request with ``nvidia\\.com\\/mig-\\d+g\\.\\d+gb``
  (``pkg/constant/constants.go``), which takes ``mig-1g.10gb+me`` for ``1g.10gb``;
- an MPS slice larger than the GPU's memory.
nos does not manage time-slicing or whole GPUs (``notManaged``). The project has had no commit since April 2024.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Literal

from advisor.configs.naming import namespace_of, product_label
from advisor.configs.nodes import family, geometry
from advisor.configs.schema import (
    NOS_PARTITIONING,
    ContainerResources,
    NosGeometry,
    NosHelmValues,
    NosKnownGeometries,
    NosNodeLabels,
    NosNotServed,
    NosPartitionerValues,
    NosPlan,
    NosWorkload,
)
from advisor.configs.yaml_text import dump
from advisor.model import FleetPlan, Mode, WorkloadRecommendation
from slicewise.catalogue import find_model

GB = 1000**3
NOS_PROFILE = re.compile(r"^\d+g\.\d+gb$")


def nos_mps_resource(w: WorkloadRecommendation) -> str:
    """``nvidia.com/gpu-<N>gb`` with N whole GB covering the workload's peak plus headroom (GB or GiB alike)."""
    return f"nvidia.com/gpu-{_mps_gb(w)}gb"


def _mps_gb(w: WorkloadRecommendation) -> int:
    need = w.features.memory_peak_bytes * (1 + w.decision.headroom)
    return max(1, math.ceil(need / GB))


def _why_not(w: WorkloadRecommendation) -> str | None:
    gpu = find_model(w.gpu_model)
    assert gpu is not None
    d = w.decision
    if d.mode == Mode.MIG and not NOS_PROFILE.match(d.profile or ""):
        return f"nos reads a request for nvidia.com/mig-{d.profile} as another profile (no +me profiles)"
    if d.mode == Mode.MPS and _mps_gb(w) * GB > gpu.memory_total_bytes:
        return f"an MPS slice of {_mps_gb(w)} GB is more than the {gpu.key}'s memory"
    return None


def nos_plan(plan: FleetPlan, workloads: Sequence[WorkloadRecommendation]) -> str | None:
    """The nos requests, or None when the plan has no MIG or MPS workload (nos would have nothing to do)."""
    unplaced = {(u.workload, u.gpu_model) for u in plan.unplaced}
    entries: list[NosWorkload] = []
    not_managed: list[str] = []
    not_served: list[NosNotServed] = []
    kinds: dict[str, set[Literal["mig", "mps"]]] = defaultdict(set)
    for w in workloads:
        if (w.workload, w.gpu_model) in unplaced or find_model(w.gpu_model) is None:
            continue
        d = w.decision
        if d.mode not in (Mode.MIG, Mode.MPS):
            not_managed.append(w.workload)
            continue
        reason = _why_not(w)
        if reason is not None:
            not_served.append(NosNotServed(workload=w.workload, gpu_model=w.gpu_model, reason=reason))
            continue
        kind: Literal["mig", "mps"]
        if d.mode == Mode.MIG:
            resources, host_ipc, kind = {f"nvidia.com/mig-{d.profile}": 1}, False, "mig"
        else:
            resources, host_ipc, kind = {nos_mps_resource(w): 1}, True, "mps"
        kinds[w.gpu_model].add(kind)
        entries.append(
            NosWorkload(
                workload=w.workload,
                namespace=namespace_of(w.features),
                gpu_model=w.gpu_model,
                partitioning=kind,
                resources=ContainerResources(limits=resources),
                hostIPC=host_ipc,
            )
        )
    if not entries and not not_served:
        return None
    geometries: Counter[tuple[str, tuple[tuple[str, int], ...]]] = Counter()
    for g in plan.gpus:
        geo = tuple(geometry(g).items())
        if g.mode == Mode.MIG and "mig" in kinds[g.gpu_model] and all(NOS_PROFILE.match(p) for p, _ in geo):
            geometries[(g.gpu_model, geo)] += 1
    known = _known_geometries(geometries)
    doc = NosPlan(
        version="v1",
        nodeLabels=[
            NosNodeLabels(gpu_model=m, labels={NOS_PARTITIONING: k}) for m in sorted(kinds) for k in sorted(kinds[m])
        ],
        workloads=entries,
        geometries=[
            NosGeometry(
                gpu_model=m,
                gpus=n,
                migDevices=dict(geo),
                specAnnotations={f"nos.nebuly.com/spec-gpu-0-{p}": str(c) for p, c in geo},
            )
            for (m, geo), n in sorted(geometries.items())
        ],
        helmValues=NosHelmValues(gpuPartitioner=NosPartitionerValues(knownMigGeometries=known)) if known else None,
        notServed=not_served,
        notManaged=sorted(not_managed),
    )
    header = [
        "# nebuly nos requests written by slicewise: MIG and MPS workloads that nos can serve (notServed says why",
        "# not, per workload; notManaged lists the time-sliced and whole-GPU ones, which nos does not manage).",
        f"# Label nodes: kubectl label node <node> {NOS_PARTITIONING}=mig|mps; give each pod its `resources`",
        "# (and hostIPC: true for MPS). nos writes the spec-gpu annotations itself; `geometries` are the ones the",
        "# plan expects it to reach (specAnnotations shown for GPU index 0 of a node). Install nos with helmValues:",
        "# its knownMigGeometries list every planned geometry, keyed by nvidia.com/gpu.product; Helm replaces the",
        "# chart's default list, so add back the chart's entries for any other MIG model nos should partition.",
    ]
    return dump(doc.model_dump(exclude_none=True), header)


def _known_geometries(
    geometries: Counter[tuple[str, tuple[tuple[str, int], ...]]],
) -> list[NosKnownGeometries]:
    """One entry per GPU family: every product label its NVML names give, and the planned geometries."""
    by_family: dict[str, set[tuple[tuple[str, int], ...]]] = defaultdict(set)
    for gpu_model, geo in geometries:
        gpu = find_model(gpu_model)
        assert gpu is not None
        by_family[min(m.key for m in family(gpu))].add(geo)  # nos groups by model: one entry per family
    out = []
    for key, geos in sorted(by_family.items()):
        gpu = find_model(key)
        assert gpu is not None
        out.append(
            NosKnownGeometries(
                models=sorted({product_label(n) for m in family(gpu) for n in m.nvml_names}),
                allowedGeometries=[dict(g) for g in sorted(geos)],
            )
        )
    return out

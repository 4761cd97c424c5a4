"""Requests for nebuly nos (dynamic MIG and MPS partitioning), where the plan uses MIG or MPS.

With nos, pods ask for ``nvidia.com/mig-<profile>: 1`` (MIG nodes) or ``nvidia.com/gpu-<N>gb: 1`` with
``hostIPC: true`` (MPS nodes), nodes carry ``nos.nebuly.com/gpu-partitioning=mig|mps``, and nos's partitioner picks
each GPU's geometry from the pending pods, writing ``nos.nebuly.com/spec-gpu-<index>-<profile>`` annotations itself.
The geometries listed are the ones the plan expects it to reach. nos does not manage time-slicing or whole GPUs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Literal

from advisor.configs.naming import namespace_of
from advisor.configs.schema import (
    NOS_PARTITIONING,
    ContainerResources,
    NosGeometry,
    NosNodeLabels,
    NosPlan,
    NosWorkload,
)
from advisor.configs.yaml_text import dump
from advisor.model import FleetPlan, Mode, WorkloadRecommendation
from slicewise.catalogue import find_model

GB = 1000**3


def nos_mps_resource(w: WorkloadRecommendation) -> str:
    """``nvidia.com/gpu-<N>gb`` with N whole GB covering the workload's peak plus headroom (GB or GiB alike)."""
    need = w.features.memory_peak_bytes * (1 + w.decision.headroom)
    return f"nvidia.com/gpu-{max(1, math.ceil(need / GB))}gb"


def nos_plan(plan: FleetPlan, workloads: Sequence[WorkloadRecommendation]) -> str | None:
    """The nos requests, or None when the plan has no MIG or MPS workload (nos would have nothing to do)."""
    unplaced = {(u.workload, u.gpu_model) for u in plan.unplaced}
    entries: list[NosWorkload] = []
    not_managed: list[str] = []
    kinds: dict[str, set[Literal["mig", "mps"]]] = defaultdict(set)
    for w in workloads:
        if (w.workload, w.gpu_model) in unplaced or find_model(w.gpu_model) is None:
            continue
        d = w.decision
        kind: Literal["mig", "mps"]
        if d.mode == Mode.MIG:
            resources, host_ipc, kind = {f"nvidia.com/mig-{d.profile}": 1}, False, "mig"
        elif d.mode == Mode.MPS:
            resources, host_ipc, kind = {nos_mps_resource(w): 1}, True, "mps"
        else:
            not_managed.append(w.workload)
            continue
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
    if not entries:
        return None
    geometries: Counter[tuple[str, tuple[tuple[str, int], ...]]] = Counter()
    for g in plan.gpus:
        if g.mode == Mode.MIG:
            geometries[(g.gpu_model, tuple(sorted(Counter(i.profile for i in g.mig_instances).items())))] += 1
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
        notManaged=sorted(not_managed),
    )
    header = [
        "# nebuly nos requests written by slicewise (MIG and MPS workloads only: nos does not manage the rest).",
        f"# Label nodes: kubectl label node <node> {NOS_PARTITIONING}=mig|mps; give each pod its `resources`",
        "# (and hostIPC: true for MPS). nos writes the spec-gpu annotations itself; the geometries below are the ones",
        "# the plan expects it to reach (specAnnotations shown for GPU index 0 of a node).",
    ]
    return dump(doc.model_dump(), header)

"""Per-workload Kubernetes resource requests: what each workload's pod template should ask for, and where it lands.

MIG: ``nvidia.com/mig-<profile>: 1`` (device plugin ``mixed`` strategy) on a node whose GFD product label is the
plain GPU name. Time-slicing and MPS: ``nvidia.com/gpu: 1`` (one replica) on a node whose product label ends in
``-SHARED`` (GFD appends it to a replicated GPU: NVIDIA/k8s-device-plugin ``internal/lm/resource.go``,
``getProductName``) and whose ``nvidia.com/device-plugin.config`` gives that replica count. Whole GPUs:
``nvidia.com/gpu: 1`` on an ``exclusive`` node (on a time-sliced node ``nvidia.com/gpu: 1`` is one replica). MPS
workloads also get ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` and ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``, equal to the
device plugin's even split (the client's setting can only tighten the daemon's). ``nodes`` names the nodes the
plan puts the workload on (rollout.md), whose labels after the rollout match the selector.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from advisor.configs.gfd import labels_after
from advisor.configs.naming import DEVICE_PLUGIN_LABEL, PRODUCT_LABEL, device_plugin_key, namespace_of, product_label
from advisor.configs.nodes import PlannedNode
from advisor.configs.schema import ContainerResources, EnvVar, ResourceRequests, WorkloadRequest
from advisor.configs.yaml_text import dump
from advisor.model import Mode, Unplaced, WorkloadRecommendation
from slicewise.catalogue import MIB, find_model


def mps_memory_limit(limit_bytes: int) -> str:
    """``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` for device 0 in MiB (``M``), rounded down: never above the plugin's."""
    return f"0={limit_bytes // MIB}M"


def node_selector(w: WorkloadRecommendation, nodes: Sequence[PlannedNode] = ()) -> dict[str, str]:
    """The labels that pin the workload to its planned nodes: their product and device-plugin key after the rollout
    (gfd.labels_after), those all of them share; MIG pods need no key (their resource names the profile). Without
    planned nodes, the labels its decision implies."""
    if nodes:
        keys = (PRODUCT_LABEL, DEVICE_PLUGIN_LABEL)  # MIG too: slices time-sliced inside are a node setting
        after = [labels_after(n) for n in nodes]
        return {k: after[0][k] for k in keys if all(a.get(k) == after[0].get(k) for a in after)}
    gpu = find_model(w.gpu_model)
    assert gpu is not None
    d = w.decision
    if d.mode == Mode.MIG:
        if d.replicas:
            key = device_plugin_key(gpu, Mode.MIG, None, mig_time_slicing={d.profile or "": d.replicas})
            return {PRODUCT_LABEL: product_label(w.gpu_model), DEVICE_PLUGIN_LABEL: key}
        return {PRODUCT_LABEL: product_label(w.gpu_model)}
    shared = d.mode in (Mode.TIMESLICE, Mode.MPS) and (d.replicas or 1) > 1
    return {
        PRODUCT_LABEL: product_label(w.gpu_model, shared=shared),
        DEVICE_PLUGIN_LABEL: device_plugin_key(gpu, d.mode, d.replicas, d.sharing_group),
    }


def workload_request(
    w: WorkloadRecommendation, nodes: Sequence[tuple[str, PlannedNode]] = ()
) -> WorkloadRequest | None:
    if find_model(w.gpu_model) is None:
        return None
    d = w.decision
    env: list[EnvVar] | None = None
    resource = f"nvidia.com/mig-{d.profile}" if d.mode == Mode.MIG else "nvidia.com/gpu"
    if d.mode == Mode.MPS:
        env = [
            EnvVar(name="CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", value=str(d.mps_active_thread_percentage)),
            EnvVar(name="CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", value=mps_memory_limit(d.memory_limit_bytes)),
        ]
    return WorkloadRequest(
        workload=w.workload,
        namespace=namespace_of(w.features),
        gpu_model=w.gpu_model,
        mode=d.mode.value,
        profile=d.profile,
        memory_limit_bytes=d.memory_limit_bytes,
        nodes=sorted(name for name, _ in nodes) or None,
        nodeSelector=node_selector(w, [n for _, n in nodes]),
        resources=ContainerResources(limits={resource: 1}),
        env=env,
    )


def resource_requests(
    workloads: Sequence[WorkloadRecommendation],
    unplaced: Sequence[Unplaced],
    nodes_of: Mapping[tuple[str, str], Sequence[tuple[str, PlannedNode]]] | None = None,
) -> str:
    """``nodes_of``: (workload, GPU model) -> the nodes the plan puts it on, with their names."""
    skip = {(u.workload, u.gpu_model) for u in unplaced}
    where = nodes_of or defaultdict(list)
    requests = [
        r
        for w in workloads
        if (w.workload, w.gpu_model) not in skip
        and (r := workload_request(w, where.get((w.workload, w.gpu_model), ()))) is not None
    ]
    doc = ResourceRequests(version="v1", workloads=requests)
    header = [
        "# Per-workload GPU requests written by slicewise. Put `resources` (and `env`, for MPS) in the workload's",
        "# GPU container and `nodeSelector` in its pod template, at the rollout step that lists the workload, e.g.:",
        "#   kubectl -n <namespace> patch deployment <owner> --type strategic -p \\",
        '#     \'{"spec":{"template":{"spec":{"nodeSelector":{...},',
        '#       "containers":[{"name":"<c>","resources":{...}}]}}}}\'',
        "# nodeSelector uses the labels GPU Feature Discovery sets once the node has its config: the product name,",
        "# with -SHARED on time-sliced and MPS GPUs, and nvidia.com/device-plugin.config for the replica count.",
        "# nodes: where the plan puts the workload (rollout.md). memory_limit_bytes is never below its observed peak.",
        *(f"# Not planned (kept as it runs): {u.workload} on {u.gpu_model}" for u in unplaced),
    ]
    return dump(doc.model_dump(exclude_none=True), header)

"""Per-workload Kubernetes resource requests: what each workload's pod template should ask for.

MIG: ``nvidia.com/mig-<profile>: 1`` (device plugin ``mixed`` strategy); time-slicing, MPS and whole GPUs:
``nvidia.com/gpu: 1`` with a node selector for the device-plugin config that gives that meaning (on a time-sliced
node ``nvidia.com/gpu: 1`` is one replica, so a whole-GPU workload must select ``exclusive`` nodes). MPS workloads
also get ``CUDA_MPS_ACTIVE_THREAD_PERCENTAGE`` and ``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT``, equal to the device
plugin's even split (the client's setting can only tighten the daemon's).
"""

from __future__ import annotations

from collections.abc import Sequence

from advisor.configs.naming import DEVICE_PLUGIN_LABEL, PRODUCT_LABEL, device_plugin_key, namespace_of, product_label
from advisor.configs.schema import ContainerResources, EnvVar, ResourceRequests, WorkloadRequest
from advisor.configs.yaml_text import dump
from advisor.model import Mode, Unplaced, WorkloadRecommendation
from slicewise.catalogue import MIB, find_model


def mps_memory_limit(limit_bytes: int) -> str:
    """``CUDA_MPS_PINNED_DEVICE_MEM_LIMIT`` for device 0 in MiB (``M``), rounded down: never above the plugin's."""
    return f"0={limit_bytes // MIB}M"


def workload_request(w: WorkloadRecommendation) -> WorkloadRequest | None:
    gpu = find_model(w.gpu_model)
    if gpu is None:
        return None
    d = w.decision
    selector = {PRODUCT_LABEL: product_label(w.gpu_model)}
    env: list[EnvVar] | None = None
    if d.mode == Mode.MIG:
        resource = f"nvidia.com/mig-{d.profile}"
    else:
        resource = "nvidia.com/gpu"
        selector[DEVICE_PLUGIN_LABEL] = device_plugin_key(gpu, d.mode, d.replicas, d.sharing_group)
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
        nodeSelector=selector,
        resources=ContainerResources(limits={resource: 1}),
        env=env,
    )


def resource_requests(workloads: Sequence[WorkloadRecommendation], unplaced: Sequence[Unplaced]) -> str:
    skip = {(u.workload, u.gpu_model) for u in unplaced}
    requests = [
        r for w in workloads if (w.workload, w.gpu_model) not in skip and (r := workload_request(w)) is not None
    ]
    doc = ResourceRequests(version="v1", workloads=requests)
    header = [
        "# Per-workload GPU requests written by slicewise. Put `resources` (and `env`, for MPS) in the workload's",
        "# GPU container and `nodeSelector` in its pod template, e.g.:",
        "#   kubectl -n <namespace> patch deployment <owner> --type strategic -p \\",
        '#     \'{"spec":{"template":{"spec":{"nodeSelector":{...},',
        '#       "containers":[{"name":"<c>","resources":{...}}]}}}}\'',
        "# memory_limit_bytes is what the workload may use under the decision; it is never below its observed peak.",
        *(f"# Not planned (kept as it runs): {u.workload} on {u.gpu_model}" for u in unplaced),
    ]
    return dump(doc.model_dump(exclude_none=True), header)

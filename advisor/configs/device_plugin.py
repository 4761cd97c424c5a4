"""The NVIDIA k8s device plugin configs, as one ConfigMap with a key per sharing setup in the plan.

Point the GPU Operator at it (``devicePlugin.config.name=slicewise-device-plugin``) and label each node with the
key its GPUs take: ``nvidia.com/device-plugin.config=<key>``. Time-slicing and MPS replicas are per node config, so
each (GPU model, mode, replicas) the plan uses gets its own key; MIG nodes take ``mig-mixed`` (each profile its
own resource, nvidia.com/mig-<profile>); whole-GPU nodes take ``exclusive``.
"""

from __future__ import annotations

from collections import defaultdict

from advisor.configs.naming import DEVICE_PLUGIN_LABEL, device_plugin_key
from advisor.configs.schema import (
    DevicePluginConfig,
    DevicePluginConfigMap,
    Flags,
    Mps,
    ObjectMeta,
    SharedResource,
    Sharing,
    TimeSlicing,
)
from advisor.configs.yaml_text import dump
from advisor.model import FleetPlan, Mode, PlannedGpu
from slicewise.catalogue import find_model

CONFIGMAP_NAME = "slicewise-device-plugin"
CONFIGMAP_NAMESPACE = "gpu-operator"


def _config_for(g: PlannedGpu) -> DevicePluginConfig:
    if g.mode == Mode.MIG:
        return DevicePluginConfig(version="v1", flags=Flags(migStrategy="mixed"))
    if g.mode == Mode.EXCLUSIVE or g.replicas is None:
        return DevicePluginConfig(version="v1", flags=Flags(migStrategy="none"))
    resources = [SharedResource(name="nvidia.com/gpu", replicas=g.replicas)]
    if g.mode == Mode.TIMESLICE:
        # a request for 2 replicas would not get more memory or compute, only a bigger share of turns: refuse it
        sharing = Sharing(timeSlicing=TimeSlicing(failRequestsGreaterThanOne=True, resources=resources))
    else:
        sharing = Sharing(mps=Mps(resources=resources))
    return DevicePluginConfig(version="v1", flags=Flags(migStrategy="none"), sharing=sharing)


def device_plugin_configmap(plan: FleetPlan) -> str:
    data: dict[str, str] = {}
    takers: dict[str, list[str]] = defaultdict(list)
    for g in plan.gpus:
        gpu = find_model(g.gpu_model)
        if gpu is None:
            continue
        key = device_plugin_key(gpu, g.mode, g.replicas, g.sharing_group)
        slot = f"{gpu.key} node {g.node_slot if g.node_slot is not None else g.index}"
        if slot not in takers[key]:
            takers[key].append(slot)
        if key not in data:
            data[key] = dump(_config_for(g).model_dump(exclude_none=True))
    configmap = DevicePluginConfigMap(
        apiVersion="v1",
        kind="ConfigMap",
        metadata=ObjectMeta(
            name=CONFIGMAP_NAME,
            namespace=CONFIGMAP_NAMESPACE,
            labels={"app.kubernetes.io/managed-by": "slicewise"},
        ),
        data=dict(sorted(data.items())),
    )
    header = [
        "# NVIDIA k8s device plugin configs written by slicewise, one key per sharing setup in the plan.",
        "# kubectl apply -f device-plugin.yaml; then point the GPU Operator at it:",
        f"#   helm upgrade gpu-operator nvidia/gpu-operator -n {CONFIGMAP_NAMESPACE} --reuse-values \\",
        f"#     --set devicePlugin.config.name={CONFIGMAP_NAME}",
        f"# and label each node with its key: kubectl label node <node> {DEVICE_PLUGIN_LABEL}=<key> --overwrite",
        "# Time-slicing gives no memory or fault isolation; MPS splits memory and SMs evenly across replicas.",
        "# Planned node slots per key (each node slot holds GPUs of one setup; see the plan's GPUs):",
        *(f"#   {key}: {', '.join(gpus)}" for key, gpus in sorted(takers.items())),
    ]
    return dump(configmap.model_dump(), header)

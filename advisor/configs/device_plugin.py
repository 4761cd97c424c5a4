"""The NVIDIA k8s device plugin configs, as one ConfigMap with a key per sharing setup in the plan and a default.

Point the GPU Operator at it (``devicePlugin.config.name``, ``devicePlugin.config.default=default``: the Helm values
in gpu-operator-values.yaml) and label each node with the key its GPUs take: ``nvidia.com/device-plugin.config``.
- Without a label a node takes ``devicePlugin.config.default``; with neither, the config manager fails on that node
  (NVIDIA/k8s-device-plugin ``cmd/config-manager/main.go``, ``updateConfigName``). ``default`` is
  ``migStrategy: mixed`` with no sharing: whole GPUs stay ``nvidia.com/gpu`` and any MIG devices the node already
  has are advertised too, so a node outside the plan keeps what it offers.
- Each node's ``migStrategy`` decides only when the operator sets no ``MIG_STRATEGY`` (a flag from the environment
  beats the file: ``api/config/v1/flags.go``, ``updateFromCLIFlag``); the operator sets none when Helm's
  ``mig.strategy`` is empty (NVIDIA/gpu-operator ``controllers/object_controls.go``, ``applyMIGConfiguration``;
  ``templates/clusterpolicy.yaml`` renders ``strategy`` only when set).
- MPS is refused with ``migStrategy: mixed`` (``cmd/nvidia-device-plugin/main.go``, ``validateFlags``), so MPS keys
  say ``none`` and MIG nodes take ``mig-mixed``; no key asks for both. Time-slicing and MPS replicas are per node
  config, so each (GPU model, mode, replicas, MPS trust domain) the plan uses gets its own key.
"""

from __future__ import annotations

from collections import defaultdict

from advisor.configs.naming import (
    DEFAULT_KEY,
    DEVICE_PLUGIN_CONFIGMAP,
    DEVICE_PLUGIN_LABEL,
    OPERATOR_NAMESPACE,
)
from advisor.configs.nodes import NodeLayout, PlannedNode
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
from advisor.model import Mode

# kept for callers of the old names
CONFIGMAP_NAME = DEVICE_PLUGIN_CONFIGMAP
CONFIGMAP_NAMESPACE = OPERATOR_NAMESPACE


def _config_for(node: PlannedNode) -> DevicePluginConfig:
    if node.mode == Mode.MIG:
        shared = node.setup.time_sliced
        if not shared:
            return DevicePluginConfig(version="v1", flags=Flags(migStrategy="mixed"))
        # whole GPUs and MIG slices time-sliced on a MIG node: each resource is advertised as `replicas` units
        # (GPU Operator docs, "Time-Slicing GPUs in Kubernetes": resources may name nvidia.com/gpu and
        # nvidia.com/mig-<profile> under mixed)
        resources = [SharedResource(name=name, replicas=k) for name, k in shared.items()]
        return DevicePluginConfig(
            version="v1",
            flags=Flags(migStrategy="mixed"),
            sharing=Sharing(timeSlicing=TimeSlicing(failRequestsGreaterThanOne=True, resources=resources)),
        )
    if node.mode == Mode.EXCLUSIVE or node.replicas is None:
        return DevicePluginConfig(version="v1", flags=Flags(migStrategy="none"))
    resources = [SharedResource(name="nvidia.com/gpu", replicas=node.replicas)]
    if node.mode == Mode.TIMESLICE:
        # a request for 2 replicas would not get more memory or compute, only a bigger share of turns: refuse it
        sharing = Sharing(timeSlicing=TimeSlicing(failRequestsGreaterThanOne=True, resources=resources))
    else:
        sharing = Sharing(mps=Mps(resources=resources))
    return DevicePluginConfig(version="v1", flags=Flags(migStrategy="none"), sharing=sharing)


def device_plugin_configmap(layout: NodeLayout) -> str:
    default = DevicePluginConfig(version="v1", flags=Flags(migStrategy="mixed"))
    data = {DEFAULT_KEY: dump(default.model_dump(exclude_none=True))}
    takers: dict[str, list[str]] = defaultdict(list)
    for node in layout.nodes:
        takers[node.device_plugin_config].append(node.slot_name)
        data.setdefault(node.device_plugin_config, dump(_config_for(node).model_dump(exclude_none=True)))
    configmap = DevicePluginConfigMap(
        apiVersion="v1",
        kind="ConfigMap",
        metadata=ObjectMeta(
            name=DEVICE_PLUGIN_CONFIGMAP,
            namespace=OPERATOR_NAMESPACE,
            labels={"app.kubernetes.io/managed-by": "slicewise"},
        ),
        data=dict(sorted(data.items())),
    )
    header = [
        "# NVIDIA k8s device plugin configs written by slicewise, one key per sharing setup in the plan, and",
        f"# '{DEFAULT_KEY}' for GPU nodes without a label. kubectl apply -f device-plugin.yaml, with the Helm values",
        f"# in gpu-operator-values.yaml (devicePlugin.config.name={DEVICE_PLUGIN_CONFIGMAP},",
        f"# devicePlugin.config.default={DEFAULT_KEY}, mig.strategy empty so that each key's migStrategy decides).",
        f"# Each node picks its key with {DEVICE_PLUGIN_LABEL}=<key> (rollout.md says which, node by node).",
        "# Time-slicing gives no memory or fault isolation; MPS splits memory and SMs evenly across replicas.",
        "# Planned nodes per key:",
        *(f"#   {key}: {', '.join(nodes)}" for key, nodes in sorted(takers.items())),
    ]
    return dump(configmap.model_dump(), header)

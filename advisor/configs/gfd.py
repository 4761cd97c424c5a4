"""The labels and resources a planned node carries once its configs are applied, as the consumers set them.

Used to check that every planned pod schedules where the plan puts it, and written into the rollout plan (what to
expect on the node). The rules, from NVIDIA/k8s-device-plugin @1b826ac:
- ``internal/lm/resource.go`` (``baseLabeler``, ``getProductName``): ``nvidia.com/gpu.product`` is the sanitised
  NVML name, with ``-SHARED`` appended when the GPU's resource has replicas > 1 and is not renamed;
  ``nvidia.com/gpu.replicas`` and ``nvidia.com/gpu.sharing-strategy`` (``none``, ``time-slicing``, ``mps``:
  ``api/config/v1/sharing.go``) go with it.
- ``internal/lm/mig-strategy.go``: MIG-enabled GPUs are labelled without sharing (plain product); under
  ``mixed`` every MIG profile gets ``nvidia.com/mig-<profile>.count`` and the node ``nvidia.com/mig.strategy``.
- Resources: MIG under ``mixed`` is ``nvidia.com/mig-<profile>``; whole and replicated GPUs ``nvidia.com/gpu``
  (replicas count once each).
``nvidia.com/mig.config`` and ``nvidia.com/device-plugin.config`` are the labels the rollout sets itself, and the
MIG manager reports ``nvidia.com/mig.config.state=success`` once the geometry is applied.
"""

from __future__ import annotations

from collections import Counter

from advisor.configs.naming import (
    DEVICE_PLUGIN_LABEL,
    MIG_CONFIG_LABEL,
    MIG_CONFIG_STATE_LABEL,
    MIG_STRATEGY_LABEL,
    PRODUCT_LABEL,
    REPLICAS_LABEL,
    SHARING_STRATEGY_LABEL,
    product_label,
)
from advisor.configs.nodes import PlannedNode
from advisor.model import Mode

SHARING_STRATEGY = {Mode.TIMESLICE: "time-slicing", Mode.MPS: "mps"}


def labels_after(node: PlannedNode) -> dict[str, str]:
    """The node's labels after the rollout: the two it is given, the MIG manager's state, and GFD's."""
    labels = {
        MIG_CONFIG_LABEL: node.mig_config,
        MIG_CONFIG_STATE_LABEL: "success",
        DEVICE_PLUGIN_LABEL: node.device_plugin_config,
    }
    if node.mode == Mode.MIG:
        whole = node.setup.whole_replicas if node.setup.whole == "ts" else None
        labels[PRODUCT_LABEL] = product_label(node.gpu_model, shared=bool(whole and whole > 1))
        labels[MIG_STRATEGY_LABEL] = "mixed"
        if whole and whole > 1:  # time-sliced whole GPUs beside the MIG ones
            labels[REPLICAS_LABEL] = str(whole)
            labels[SHARING_STRATEGY_LABEL] = "time-slicing"
        sliced = node.mig_time_slicing
        for resource, count in resources_after(node).items():
            if resource.startswith("nvidia.com/mig-") and "+" not in resource:  # "+" is no valid label key
                profile = resource.removeprefix("nvidia.com/mig-")
                labels[f"{resource}.count"] = str(count // sliced.get(profile, 1))
                if profile in sliced:  # time-sliced MIG devices: replicas and strategy per resource
                    labels[f"{resource}.replicas"] = str(sliced[profile])
                    labels[f"{resource}.sharing-strategy"] = "time-slicing"
        return labels
    replicas = (node.replicas or 1) if node.mode in SHARING_STRATEGY else 1
    shared = replicas > 1
    labels[PRODUCT_LABEL] = product_label(node.gpu_model, shared=shared)
    labels[REPLICAS_LABEL] = str(replicas)
    labels[SHARING_STRATEGY_LABEL] = SHARING_STRATEGY[node.mode] if shared else "none"
    return labels


def resources_after(node: PlannedNode) -> dict[str, int]:
    """What the device plugin advertises on the node: MIG instances by profile, or GPUs times their replicas.

    A non-MIG node's config applies to every GPU on it, so a node with fewer planned GPUs than it holds offers the
    rest too; a MIG node's other GPUs (spare or planned whole) have MIG disabled and are whole ``nvidia.com/gpu``."""
    if node.mode == Mode.MIG:
        sliced = node.mig_time_slicing
        counts: Counter[str] = Counter()
        for g in node.gpus:
            for i in g.mig_instances:
                counts[f"nvidia.com/mig-{i.profile}"] += sliced.get(i.profile, 1)
        spare = node.gpus_per_node - node.mig_gpus  # MIG disabled: whole GPUs under ``mixed``
        if spare:
            whole = node.setup.whole_replicas if node.setup.whole == "ts" else None
            counts["nvidia.com/gpu"] = spare * (whole or 1)
        return dict(sorted(counts.items()))
    replicas = (node.replicas or 1) if node.mode in SHARING_STRATEGY else 1
    return {"nvidia.com/gpu": node.gpus_per_node * replicas}

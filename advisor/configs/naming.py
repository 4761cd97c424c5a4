"""Names the configs share: ConfigMaps, device-plugin config keys, node labels, GPU product labels, namespaces.

Label names and values follow the consumers' source (shared/reference/gpu_operator_rollout.md):
NVIDIA/k8s-device-plugin ``cmd/config-manager/main.go`` (``nvidia.com/device-plugin.config``, the ``default`` key),
``internal/lm/resource.go`` (GFD's ``nvidia.com/gpu.product`` with ``-SHARED``, ``sanitise``), NVIDIA/mig-parted and
the GPU Operator (``nvidia.com/mig.config``, ``nvidia.com/mig.config.state``).
"""

from __future__ import annotations

import re

from advisor.model import Mode, WorkloadFeatures
from advisor.plan.node_setup import NodeSetup
from slicewise.catalogue import GpuModel

OPERATOR_NAMESPACE = "gpu-operator"
MIG_PARTED_CONFIGMAP = "slicewise-mig-parted"  # migManager.config.name; its key must be config.yaml
MIG_PARTED_KEY = "config.yaml"
DEVICE_PLUGIN_CONFIGMAP = "slicewise-device-plugin"  # devicePlugin.config.name

DEFAULT_KEY = "default"  # devicePlugin.config.default: what unlabelled GPU nodes take
EXCLUSIVE_KEY = "exclusive"
MIG_KEY = "mig-mixed"
ALL_DISABLED = "all-disabled"  # mig-parted config for nodes without MIG; also migManager.config.default

PRODUCT_LABEL = "nvidia.com/gpu.product"  # set by GPU Feature Discovery
REPLICAS_LABEL = "nvidia.com/gpu.replicas"
SHARING_STRATEGY_LABEL = "nvidia.com/gpu.sharing-strategy"
MIG_STRATEGY_LABEL = "nvidia.com/mig.strategy"
DEVICE_PLUGIN_LABEL = "nvidia.com/device-plugin.config"  # picks a key of the device plugin ConfigMap per node
MIG_CONFIG_LABEL = "nvidia.com/mig.config"  # picks a mig-parted config per node (GPU Operator's mig-manager)
MIG_CONFIG_STATE_LABEL = "nvidia.com/mig.config.state"  # pending | rebooting | success | failed


def device_plugin_key(
    gpu: GpuModel,
    mode: Mode,
    replicas: int | None,
    group: str | None = None,
    mig_time_slicing: dict[str, int] | None = None,
) -> str:
    """The ConfigMap key a node's GPUs take: ``exclusive``, ``mig-mixed``, ``mig-mixed-ts-1g.5gbx2`` (MIG slices
    time-sliced inside, decide/shared_slices.py), ``h100-80gb-ts-4``, or for MPS, whose server only one trust
    domain may share, ``h100-80gb-mps-4-<namespace or class>``."""
    if mode == Mode.EXCLUSIVE:
        return EXCLUSIVE_KEY
    if mode == Mode.MIG:
        if not mig_time_slicing:
            return MIG_KEY
        shared = "-".join(f"{p}x{k}" for p, k in sorted(mig_time_slicing.items()))
        return f"{MIG_KEY}-ts-{shared}"[:63].rstrip("-.")
    if mode == Mode.TIMESLICE:
        return f"{gpu.key.lower()}-ts-{replicas}"
    domain = re.sub(r"[^a-z0-9]+", "-", (group or "shared").lower()).strip("-") or "shared"
    return f"{gpu.key.lower()}-mps-{replicas}-{domain}"[:63].rstrip("-.")


def node_key(gpu: GpuModel, setup: NodeSetup) -> str:
    """The ConfigMap key of a node's whole setup (plan/node_setup.py): ``mig-mixed`` plus what it time-slices
    (``mig-mixed-ts-gpux4-1g.5gbx2``), or for a node without MIG, as ``device_plugin_key``."""
    if setup.mps is not None:
        return device_plugin_key(gpu, Mode.MPS, setup.mps[0], setup.mps[1])
    if not setup.mig:
        if setup.whole == "ts":
            return device_plugin_key(gpu, Mode.TIMESLICE, setup.whole_replicas)
        return EXCLUSIVE_KEY
    parts = [f"{name.removeprefix('nvidia.com/').removeprefix('mig-')}x{k}" for name, k in setup.time_sliced.items()]
    return f"{MIG_KEY}-ts-{'-'.join(parts)}"[:63].rstrip("-.") if parts else MIG_KEY


def product_label(nvml_name: str, shared: bool = False) -> str:
    """GPU Feature Discovery's ``nvidia.com/gpu.product`` value for a GPU: the NVML name with characters outside
    ``[A-Za-z0-9-_. ]`` dropped and blanks as dashes (``sanitise``), plus ``-SHARED`` when the GPU is advertised as
    replicas (time-slicing or MPS, not renamed: ``getProductName``), e.g. ``NVIDIA-H100-80GB-HBM3-SHARED``."""
    value = "-".join(re.sub(r"[^A-Za-z0-9\-_. ]", "", nvml_name).split())
    return f"{value}-SHARED" if shared else value


def namespace_of(f: WorkloadFeatures) -> str:
    """The workload's namespace, or the part before '/' of its name (``<namespace>/<owner>``), else empty."""
    if f.namespace:
        return f.namespace
    return f.workload.split("/", 1)[0] if "/" in f.workload else ""

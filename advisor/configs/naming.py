"""Names the configs share: device-plugin config keys, GPU product labels, namespaces of workloads."""

from __future__ import annotations

import re

from advisor.model import Mode, WorkloadFeatures
from slicewise.catalogue import GpuModel

EXCLUSIVE_KEY = "exclusive"
MIG_KEY = "mig-mixed"
PRODUCT_LABEL = "nvidia.com/gpu.product"  # set by GPU Feature Discovery
DEVICE_PLUGIN_LABEL = "nvidia.com/device-plugin.config"  # picks a key of the device plugin ConfigMap per node
MIG_CONFIG_LABEL = "nvidia.com/mig.config"  # picks a mig-parted config per node (GPU Operator's mig-manager)


def device_plugin_key(gpu: GpuModel, mode: Mode, replicas: int | None, group: str | None = None) -> str:
    """The ConfigMap key a node's GPUs take: ``exclusive``, ``mig-mixed``, ``h100-80gb-ts-4``, or for MPS, whose
    server only one trust domain may share, ``h100-80gb-mps-4-<namespace or class>``."""
    if mode == Mode.EXCLUSIVE:
        return EXCLUSIVE_KEY
    if mode == Mode.MIG:
        return MIG_KEY
    if mode == Mode.TIMESLICE:
        return f"{gpu.key.lower()}-ts-{replicas}"
    domain = re.sub(r"[^a-z0-9]+", "-", (group or "shared").lower()).strip("-") or "shared"
    return f"{gpu.key.lower()}-mps-{replicas}-{domain}"[:63].rstrip("-.")


def product_label(nvml_name: str) -> str:
    """GPU Feature Discovery's product label value: the NVML name with spaces as dashes, e.g. NVIDIA-H100-80GB-HBM3."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", nvml_name.strip()).strip("-_.")
    return value[:63].rstrip("-_.")


def namespace_of(f: WorkloadFeatures) -> str:
    """The workload's namespace, or the part before '/' of its name (``<namespace>/<owner>``), else empty."""
    if f.namespace:
        return f.namespace
    return f.workload.split("/", 1)[0] if "/" in f.workload else ""

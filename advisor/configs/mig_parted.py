"""The NVIDIA mig-parted config: one named config per planned geometry, and one per node layout with its devices
mapped to their geometries.

The plan lays its GPUs out on node slots (plan/fleet.py). A MIG node whose GPUs all take one geometry takes that
geometry's config (``devices: all``); a node with several geometries, or fewer planned GPUs than it has, takes a
``<model>-node-layout-<n>`` config whose entries map device indices (``devices: [0, 1]``) to geometries and
leave the rest with MIG disabled. Every entry is filtered by the model's PCI device id from the catalogue.

Apply on a node with ``nvidia-mig-parted apply -f mig-parted.yaml -c <name>``, or under the GPU Operator by loading
the file into mig-manager's ConfigMap and labelling the node ``nvidia.com/mig.config=<name>``. ``all-disabled`` is
for nodes whose GPUs the plan shares whole (time-slicing, MPS) or gives to one workload each.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from advisor.configs.naming import MIG_CONFIG_LABEL
from advisor.configs.schema import MigPartedConfig
from advisor.configs.yaml_text import dump
from advisor.model import FleetPlan, Mode, PlannedGpu
from slicewise.catalogue import GpuModel, find_model

ALL_DISABLED = "all-disabled"
Entry = dict[str, object]


def _geometry(g: PlannedGpu) -> dict[str, int]:
    return dict(sorted(Counter(i.profile for i in g.mig_instances).items()))


def _node_configs(gpu: GpuModel, node: Sequence[PlannedGpu], per_node: int) -> list[Entry]:
    by_config: dict[str, list[PlannedGpu]] = defaultdict(list)
    for g in node:
        by_config[g.mig_config or ""].append(g)
    entries: list[Entry] = [
        {
            "device-filter": gpu.pci_device_id,
            "devices": sorted(g.device_index or 0 for g in gpus),
            "mig-enabled": True,
            "mig-devices": _geometry(gpus[0]),
        }
        for _, gpus in sorted(by_config.items())
    ]
    unused = sorted(set(range(per_node)) - {g.device_index or 0 for g in node})
    if unused:
        entries.append({"device-filter": gpu.pci_device_id, "devices": unused, "mig-enabled": False})
    return entries


def mig_parted_config(plan: FleetPlan) -> str:
    configs: dict[str, list[Entry]] = {ALL_DISABLED: [{"devices": "all", "mig-enabled": False}]}
    takers: dict[str, list[str]] = defaultdict(list)
    per_node = {m.gpu_model: m.gpus_per_node or 1 for m in plan.models}
    nodes: dict[tuple[str, int], list[PlannedGpu]] = defaultdict(list)
    for g in plan.gpus:
        nodes[(g.gpu_model, g.node_slot if g.node_slot is not None else g.index)].append(g)
    layouts: dict[tuple[str, tuple[tuple[int, str], ...]], str] = {}
    for (gpu_model, slot), node in sorted(nodes.items()):
        gpu = find_model(gpu_model)
        where = f"{gpu.key if gpu else gpu_model} node {slot} (GPUs #{node[0].index}-#{node[-1].index})"
        if gpu is None or node[0].mode != Mode.MIG:
            takers[ALL_DISABLED].append(where)
            continue
        for g in node:  # the per-geometry configs, for nodes of one geometry throughout
            if g.mig_config is not None and g.mig_config not in configs:
                configs[g.mig_config] = [
                    {
                        "device-filter": gpu.pci_device_id,
                        "devices": "all",
                        "mig-enabled": True,
                        "mig-devices": _geometry(g),
                    }
                ]
        names = {g.mig_config for g in node}
        if len(names) == 1 and len(node) == per_node[gpu_model] and node[0].mig_config is not None:
            takers[node[0].mig_config].append(where)
            continue
        layout = tuple(sorted((g.device_index or 0, g.mig_config or "") for g in node))
        if (gpu_model, layout) not in layouts:
            count = sum(1 for m, _ in layouts if m == gpu_model)
            layouts[(gpu_model, layout)] = f"{gpu.key.lower()}-node-layout-{count + 1}"
        name = layouts[(gpu_model, layout)]
        configs.setdefault(name, _node_configs(gpu, node, per_node[gpu_model]))
        takers[name].append(where)
    config = MigPartedConfig.model_validate({"version": "v1", "mig-configs": configs})
    header = [
        "# NVIDIA mig-parted config written by slicewise: one named config per MIG geometry in the plan, and one per",
        "# node layout (devices mapped to geometries) where a node's GPUs differ.",
        "# Apply on a node: nvidia-mig-parted apply -f mig-parted.yaml -c <name> (check: nvidia-mig-parted assert)",
        f"# GPU Operator:    kubectl label node <node> {MIG_CONFIG_LABEL}=<name> --overwrite",
        "# Reconfiguring MIG needs the GPU idle: drain the node's GPU pods first.",
        "# Planned node slots per config (GPU model, node slot, the plan's GPU numbers):",
        *(f"#   {name}: {', '.join(nodes_)}" for name, nodes_ in takers.items()),
    ]
    return dump(config.model_dump(by_alias=True, exclude_none=True), header)

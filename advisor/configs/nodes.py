"""The plan node by node: which GPUs each planned node holds and the two labels it takes.

The plan lays its GPUs out on node slots of ``gpus_per_node`` GPUs, one sharing setup per node (plan/fleet.py).
Each node takes one mig-parted config (``nvidia.com/mig.config``) and one device-plugin config
(``nvidia.com/device-plugin.config``). A MIG node whose GPUs all take one geometry takes that geometry's config
(``devices: all``); a node with several geometries, or fewer planned GPUs than it has, takes a
``<model>-node-layout-<n>`` config whose entries map device indices to geometries and leave the rest with MIG
disabled. Every MIG entry is filtered by every PCI id of the model family (mig-parted skips a GPU whose id no
entry names, silently: ``cmd/nvidia-mig-parted/assert/assert.go``), so SXM, PCIe and NVL variants all match.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from advisor.configs.naming import ALL_DISABLED, node_key
from advisor.model import FleetPlan, Mode, PlannedGpu
from advisor.plan.node_setup import NodeSetup, node_setup
from slicewise.catalogue import GpuModel, model, models

Entry = dict[str, object]


@dataclass(frozen=True)
class PlannedNode:
    """One node after the change, as the plan lays it out."""

    gpu_model: str  # NVML product name of its GPUs
    slot: int  # the plan's node slot for this model
    gpus_per_node: int
    gpus: tuple[PlannedGpu, ...]
    mig_config: str  # nvidia.com/mig.config
    device_plugin_config: str  # nvidia.com/device-plugin.config

    @property
    def catalogue(self) -> GpuModel:
        return model(self.gpu_model)

    @property
    def slot_name(self) -> str:
        """A stable name for the slot, e.g. ``h100-80gb-node-3``, used where no real node is known for it."""
        return f"{self.catalogue.key.lower()}-node-{self.slot}"

    @cached_property
    def setup(self) -> NodeSetup:
        """What its device-plugin config must say (plan/node_setup.py); worked out once, the configs ask often."""
        return node_setup(self.gpus)

    @property
    def mode(self) -> Mode:
        """MIG when any GPU is (its other GPUs then have MIG disabled and are whole GPUs under ``mixed``)."""
        return Mode.MIG if any(g.mode == Mode.MIG for g in self.gpus) else self.gpus[0].mode

    @property
    def replicas(self) -> int | None:
        """Replicas of its whole GPUs (time-slicing or MPS), None where they are not shared."""
        setup = self.setup
        return setup.mps[0] if setup.mps else setup.whole_replicas

    @property
    def whole_mode(self) -> Mode | None:
        """How its whole (MIG-disabled) GPUs are shared: time-slicing, MPS, exclusive, or None with none."""
        whole = [g.mode for g in self.gpus if g.mode != Mode.MIG]
        return whole[0] if whole else None

    @property
    def mig_time_slicing(self) -> dict[str, int]:
        """MIG profiles whose slices are time-sliced on this node, and how many ways (one setting per node)."""
        return {p: k for p, k in self.setup.mig_sharing.items() if k}

    @property
    def mig_gpus(self) -> int:
        return sum(1 for g in self.gpus if g.mode == Mode.MIG)

    @property
    def workloads(self) -> tuple[str, ...]:
        return tuple(sorted({w for g in self.gpus for w in g.workloads}))


@dataclass(frozen=True)
class NodeLayout:
    nodes: tuple[PlannedNode, ...]
    mig_configs: dict[str, list[Entry]]  # mig-parted name -> entries, ``all-disabled`` first


def geometry(g: PlannedGpu) -> dict[str, int]:
    return dict(sorted(Counter(i.profile for i in g.mig_instances).items()))


def family(gpu: GpuModel) -> tuple[GpuModel, ...]:
    """The catalogue models a MIG config of ``gpu`` fits as written: the same profile names on the same memory
    slices (H100 SXM, PCIe and H800; A100 80GB SXM and PCIe). ``gpu`` first."""

    def shape(m: GpuModel) -> tuple[int, frozenset[str]]:
        return m.memory_slices, frozenset(p.name for p in m.profiles)

    return (gpu, *(m for m in models() if m.key != gpu.key and shape(m) == shape(gpu)))


def pci_filter(gpu: GpuModel) -> list[str]:
    """Every PCI id of the family, as mig-parted's config-default.yaml groups them: a GPU whose id no entry names is
    skipped silently, so a filter of one id would leave the other variants unconfigured."""
    ids: list[str] = []
    for m in family(gpu):
        ids.extend(i for i in m.pci_device_ids if i not in ids)
    return ids


_filter = pci_filter


def _layout_entries(gpu: GpuModel, node: Sequence[PlannedGpu], per_node: int) -> list[Entry]:
    by_config: dict[str, list[PlannedGpu]] = defaultdict(list)
    for g in node:
        if g.mode == Mode.MIG:
            by_config[g.mig_config or ""].append(g)
    entries: list[Entry] = [
        {
            "device-filter": _filter(gpu),
            "devices": sorted(g.device_index or 0 for g in gpus),
            "mig-enabled": True,
            "mig-devices": geometry(gpus[0]),
        }
        for _, gpus in sorted(by_config.items())
    ]
    unused = sorted(set(range(per_node)) - {g.device_index or 0 for gpus in by_config.values() for g in gpus})
    if unused:  # spare GPUs, and whole GPUs beside MIG ones (the ``mixed`` strategy offers them as nvidia.com/gpu)
        entries.append({"device-filter": _filter(gpu), "devices": unused, "mig-enabled": False})
    return entries


def _check_one_config(gpu_model: str, slot: int, gpus: Sequence[PlannedGpu]) -> None:
    """A node takes one device-plugin config (plan/node_setup.py says which GPUs can share one)."""
    try:
        node_setup(tuple(gpus))
    except ValueError as e:
        raise ValueError(f"{gpu_model} node slot {slot}: {e}: a node takes one device-plugin config") from e


def plan_nodes(plan: FleetPlan) -> NodeLayout:
    configs: dict[str, list[Entry]] = {ALL_DISABLED: [{"devices": "all", "mig-enabled": False}]}
    per_node = {m.gpu_model: m.gpus_per_node or 1 for m in plan.models}
    grouped: dict[tuple[str, int], list[PlannedGpu]] = defaultdict(list)
    for g in plan.gpus:
        grouped[(g.gpu_model, g.node_slot if g.node_slot is not None else g.index)].append(g)
    layouts: dict[tuple[str, tuple[tuple[int, str], ...]], str] = {}
    nodes: list[PlannedNode] = []
    for (gpu_model, slot), gpus in sorted(grouped.items()):
        _check_one_config(gpu_model, slot, gpus)
        gpu = model(gpu_model)
        size = max(per_node.get(gpu_model, 1), *(1 + (g.device_index or 0) for g in gpus))
        mig = [g for g in gpus if g.mode == Mode.MIG]
        key = node_key(gpu, node_setup(tuple(gpus)))
        if not mig:
            nodes.append(PlannedNode(gpu_model, slot, size, tuple(gpus), ALL_DISABLED, key))
            continue
        for g in mig:  # the per-geometry configs, for nodes of one geometry throughout
            if g.mig_config is not None and g.mig_config not in configs:
                configs[g.mig_config] = [
                    {"device-filter": _filter(gpu), "devices": "all", "mig-enabled": True, "mig-devices": geometry(g)}
                ]
        names = {g.mig_config for g in mig}
        if len(names) == 1 and len(mig) == size and mig[0].mig_config is not None:
            nodes.append(PlannedNode(gpu_model, slot, size, tuple(gpus), mig[0].mig_config, key))
            continue
        layout = tuple(sorted((g.device_index or 0, g.mig_config or "") for g in mig))
        if (gpu_model, layout) not in layouts:
            count = sum(1 for m, _ in layouts if m == gpu_model)
            layouts[(gpu_model, layout)] = f"{gpu.key.lower()}-node-layout-{count + 1}"
        name = layouts[(gpu_model, layout)]
        configs.setdefault(name, _layout_entries(gpu, gpus, size))
        nodes.append(PlannedNode(gpu_model, slot, size, tuple(gpus), name, key))
    return NodeLayout(tuple(nodes), configs)

"""The fleet as it runs now, node by node: what the rollout starts from.

Read from the history the advisor was given (its ``node``, ``gpu_uuid``, ``mig_profile`` and ``sharing`` columns)
over the same window. What a GPU runs is seen, not its configured labels: a MIG GPU shows the profiles its
workloads used (not instances nobody used), and a whole GPU shows MPS or not. That is enough to tell a node whose
GPUs the plan leaves as they are (only labelled, never drained) from one it reconfigures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from advisor.model import Mode, PlannedGpu


@dataclass(frozen=True)
class GpuNow:
    uuid: str
    setup: str  # "mig:<profiles seen, sorted>", "mps" or "whole" (time-sliced or one workload)
    workloads: tuple[str, ...]


@dataclass(frozen=True)
class NodeNow:
    name: str
    gpu_model: str  # NVML product name (the node's most common, where it has several)
    gpus: tuple[GpuNow, ...]
    labels: dict[str, str] = field(default_factory=dict)  # nvidia.com/* labels where known (not from a history)

    @property
    def workloads(self) -> tuple[str, ...]:
        return tuple(sorted({w for g in self.gpus for w in g.workloads}))

    @property
    def setups(self) -> Counter[str]:
        return Counter(g.setup for g in self.gpus if g.workloads)


def planned_setup(g: PlannedGpu) -> str:
    """The setup of a planned GPU in the terms a history shows."""
    if g.mode == Mode.MIG:
        return "mig:" + ",".join(sorted({i.profile for i in g.mig_instances}))
    return "mps" if g.mode == Mode.MPS else "whole"


def _setup(rows: pd.DataFrame) -> str:
    profiles = sorted({str(p) for p in rows["mig_profile"] if str(p)})
    if profiles:
        return "mig:" + ",".join(profiles)
    return "mps" if (rows["sharing"] == "mps").any() else "whole"


def inventory_from_history(rows: pd.DataFrame) -> tuple[NodeNow, ...]:
    """One ``NodeNow`` per node in the rows (a validated history, already cut to the window)."""
    columns = ["node", "gpu_uuid", "gpu_model", "workload", "mig_profile", "sharing"]
    seen = rows[columns].drop_duplicates().astype(str)  # one row per distinct fact: a 14-day history is millions
    nodes: list[NodeNow] = []
    for node, per_node in seen.groupby("node", sort=True):
        gpu_model = str(per_node.groupby("gpu_model")["gpu_uuid"].nunique().idxmax())
        mine = per_node[per_node["gpu_model"] == gpu_model]
        gpus = tuple(
            GpuNow(str(uuid), _setup(g), tuple(sorted({str(w) for w in g["workload"]})))
            for uuid, g in mine.groupby("gpu_uuid", sort=True)
        )
        nodes.append(NodeNow(str(node), gpu_model, gpus))
    return tuple(nodes)

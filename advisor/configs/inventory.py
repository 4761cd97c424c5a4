"""The fleet as it runs now, node by node: what the rollout starts from.

Read from the history the advisor was given (its ``node``, ``gpu_uuid``, ``mig_profile`` and ``sharing`` columns)
over the same window. What a GPU runs is seen, not its configured labels: a MIG GPU shows the profiles its
workloads used (not instances nobody used), and a whole GPU shows MPS or not. That is enough to tell a node whose
GPUs the plan leaves as they are (only labelled, never drained) from one it reconfigures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
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


def inventory_from_history(rows: pd.DataFrame) -> tuple[NodeNow, ...]:
    """One ``NodeNow`` per node in the rows (a validated history, already cut to the window).

    A 14-day history is millions of rows but a few thousand facts: the rows are reduced to integer codes, and to
    the distinct (node, GPU, model) slots and what each slot showed, before any string is looked at."""
    from advisor.row_scans import combined_key, dense_codes, label_codes, split_key

    if rows.empty:
        return ()
    node, nodes = label_codes(rows["node"])
    gpu, uuids = label_codes(rows["gpu_uuid"])
    model, models = label_codes(rows["gpu_model"])
    sizes = [len(nodes), len(uuids), len(models)]
    slot, slots = dense_codes(combined_key([node, gpu, model], sizes))  # a slot: a GPU on a node, as one model
    node_of, gpu_of, model_of = split_key(slots, sizes)
    workloads = _seen(slot, len(slots), rows["workload"])
    profiles = _seen(slot, len(slots), rows["mig_profile"])
    sharing = _seen(slot, len(slots), rows["sharing"])
    out: list[NodeNow] = []
    for n in sorted(set(node_of.tolist()), key=lambda n: nodes[n]):
        mine = np.flatnonzero(node_of == n)
        gpus_per_model = Counter(models[m] for m in model_of[mine].tolist())  # slots are distinct GPUs
        gpu_model = max(sorted(gpus_per_model), key=lambda m: gpus_per_model[m])  # ties: alphabetical first
        on_model = [s for s in mine.tolist() if models[model_of[s]] == gpu_model]
        on_model.sort(key=lambda s: uuids[gpu_of[s]])
        gpus = tuple(
            GpuNow(uuids[gpu_of[s]], _setup(profiles[s], sharing[s]), tuple(sorted(workloads[s]))) for s in on_model
        )
        out.append(NodeNow(nodes[n], gpu_model, gpus))
    return tuple(out)


def _seen(slot: np.ndarray, n_slots: int, values: pd.Series) -> list[set[str]]:
    """Per slot, the distinct values of a column in its rows."""
    from advisor.row_scans import combined_key, distinct_keys, label_codes

    codes, labels = label_codes(values)
    out: list[set[str]] = [set() for _ in range(n_slots)]
    for pair in distinct_keys(combined_key([slot, codes], [n_slots, len(labels)])).tolist():
        out[pair // len(labels)].add(labels[pair % len(labels)])
    return out


def _setup(profiles: set[str], sharing: set[str]) -> str:
    named = sorted(p for p in profiles if p)
    if named:
        return "mig:" + ",".join(named)
    return "mps" if "mps" in sharing else "whole"

"""Configs the usual tools apply, and the rollout plan that applies them node by node.

- mig-parted: the file (by hand) and the GPU Operator's MIG manager ConfigMap (key ``config.yaml``);
- the k8s device plugin ConfigMap, one key per sharing setup and a ``default``;
- the gpu-operator Helm values that point the operator at both and let each node's config decide its MIG strategy;
- per-workload requests that select the labels GPU Feature Discovery sets on the planned node;
- nebuly nos requests and the ``knownMigGeometries`` it needs;
- the rollout plan (markdown and JSON).
Each is built through the strict models in schema.py, so what is written has the shape its tool reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from advisor.configs.device_plugin import device_plugin_configmap
from advisor.configs.inventory import NodeNow, inventory_from_history
from advisor.configs.mig_parted import mig_parted_config, mig_parted_configmap
from advisor.configs.nodes import PlannedNode, plan_nodes
from advisor.configs.nos import nos_plan
from advisor.configs.operator_values import operator_values
from advisor.configs.requests import resource_requests
from advisor.configs.rollout import build_rollout, rollout_json, rollout_markdown
from advisor.model import Configs, FleetPlan, WorkloadRecommendation


def build_configs(
    plan: FleetPlan, workloads: Sequence[WorkloadRecommendation], inventory: Sequence[NodeNow] | None = None
) -> Configs:
    """``inventory``: the nodes as they run now (``inventory_from_history``), for a rollout plan with real node
    names that leaves unchanged nodes alone; without it the plan's node slots stand in for nodes."""
    layout = plan_nodes(plan)
    rollout, placed = build_rollout(layout, inventory, plan.unplaced)
    nodes_of: dict[tuple[str, str], list[tuple[str, PlannedNode]]] = defaultdict(list)
    for pl in placed:
        for w in pl.planned.workloads:
            nodes_of[(w, pl.planned.gpu_model)].append((pl.name, pl.planned))
    return Configs(
        mig_parted=mig_parted_config(layout),
        device_plugin=device_plugin_configmap(layout),
        resource_requests=resource_requests(workloads, plan.unplaced, nodes_of),
        nos=nos_plan(plan, workloads),
        mig_parted_configmap=mig_parted_configmap(layout),
        operator_values=operator_values(),
        rollout_md=rollout_markdown(rollout),
        rollout_json=rollout_json(rollout),
    )


__all__ = ["NodeNow", "build_configs", "inventory_from_history"]

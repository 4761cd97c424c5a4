"""Configs the usual tools apply: mig-parted, the k8s device plugin, per-workload requests, nebuly nos.

Each is built through the strict models in schema.py, so what is written has the shape its tool reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from advisor.configs.device_plugin import device_plugin_configmap
from advisor.configs.mig_parted import mig_parted_config
from advisor.configs.nos import nos_plan
from advisor.configs.requests import resource_requests
from advisor.model import Configs, FleetPlan, WorkloadRecommendation


def build_configs(plan: FleetPlan, workloads: Sequence[WorkloadRecommendation]) -> Configs:
    return Configs(
        mig_parted=mig_parted_config(plan),
        device_plugin=device_plugin_configmap(plan),
        resource_requests=resource_requests(workloads, plan.unplaced),
        nos=nos_plan(plan, workloads),
    )


__all__ = ["build_configs"]

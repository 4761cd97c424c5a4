"""A plan with MIG, MPS, time-slicing and whole GPUs on H100 and A100, and its configs, shared by the tests."""

from __future__ import annotations

import pytest

from advisor.configs import build_configs
from advisor.decide import decide
from advisor.model import Configs, FleetPlan, WorkloadRecommendation
from advisor.plan import plan_fleet
from tests.advisor.plan.fleet_fixtures import A100, H100, classify_by_prefix, features, mixed_fleet

Planned = tuple[FleetPlan, tuple[WorkloadRecommendation, ...], Configs]


def make_plan() -> tuple[FleetPlan, tuple[WorkloadRecommendation, ...]]:
    tiny = [features(f"embed/tiny-{i}", peak_gib=2.0 + 0.05 * i, c95=0.03, duty=0.7) for i in range(20)]
    fleet = mixed_fleet(4) + tiny
    result = decide(classify_by_prefix(fleet), fleet)
    plan = plan_fleet(result.workloads, {H100: 40, A100: 4}, result.unplaced, gpus_per_node={H100: 4})
    return plan, result.workloads


@pytest.fixture(scope="package")
def planned() -> Planned:
    plan, workloads = make_plan()
    return plan, workloads, build_configs(plan, workloads)

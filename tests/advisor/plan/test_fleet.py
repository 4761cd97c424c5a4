"""The fleet plan: every workload placed as many times as it has replicas, on valid MIG geometries or sharing
groups, GPUs counted per model against the proven bound, and utilisation before and after."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from advisor.decide import decide
from advisor.model import FleetPlan, Mode
from advisor.plan import plan_fleet
from advisor.plan.krr import krr_baseline
from slicewise import catalogue
from slicewise.catalogue import Placement, check_geometry
from tests.advisor.plan.fleet_fixtures import (
    A100,
    GIB,
    H100,
    classify_by_prefix,
    features,
    mixed_fleet,
    notebook,
    training,
)


def _plan(fleet, gpus_now, outliers=()) -> tuple[FleetPlan, object]:
    result = decide(classify_by_prefix(fleet, outliers), fleet)
    return plan_fleet(result.workloads, gpus_now, result.unplaced), result


@pytest.fixture(scope="module")
def mixed() -> tuple[FleetPlan, object]:
    return _plan(mixed_fleet(4), {H100: 32, A100: 4})


def test_every_workload_is_placed_once_per_replica(mixed) -> None:
    plan, result = mixed
    placed = Counter(w for g in plan.gpus for w in g.workloads)
    assert placed == Counter({w.workload: w.features.devices for w in result.workloads})


def test_mig_gpus_have_valid_geometries_holding_their_workloads(mixed) -> None:
    plan, result = mixed
    decided = {w.workload: w.decision for w in result.workloads}
    for g in plan.gpus:
        if g.mode != Mode.MIG:
            assert not g.mig_instances
            continue
        gpu = catalogue.model(g.gpu_model)
        check_geometry(gpu, [Placement(gpu.profile(i.profile), i.start) for i in g.mig_instances])
        assert g.mig_config is not None and g.mig_config.startswith(gpu.key.lower())
        for inst in g.mig_instances:
            (owner,) = inst.workloads
            assert decided[owner].profile == inst.profile  # each workload on the slice it was sized for
            assert inst.size == gpu.profile(inst.profile).size


def test_sharing_groups_hold_at_most_their_replicas(mixed) -> None:
    plan, _ = mixed
    for g in plan.gpus:
        if g.mode in (Mode.TIMESLICE, Mode.MPS):
            assert g.replicas is not None and 1 <= len(g.workloads) <= g.replicas
            assert g.memory_committed_bytes <= catalogue.model(g.gpu_model).memory_total_bytes
        if g.mode == Mode.EXCLUSIVE:
            assert len(g.workloads) == 1


def test_gpu_counts_and_bounds_per_model(mixed) -> None:
    plan, result = mixed
    by_model = {m.gpu_model: m for m in plan.models}
    h100 = by_model[H100]
    assert (h100.gpus_now, by_model[A100].gpus_now) == (32, 4)
    assert h100.gpus_needed == sum(1 for g in plan.gpus if g.gpu_model == H100)
    assert h100.gpus_lower_bound <= h100.gpus_needed
    assert "integer program (optimal)" in h100.method
    trainers = sum(1 for w in result.workloads if w.workload.startswith("train/"))
    notebooks = sum(1 for w in result.workloads if w.workload.startswith("research/"))
    replicas = next(w.decision.replicas for w in result.workloads if w.workload.startswith("research/"))
    assert sum(1 for g in plan.gpus if g.mode == Mode.EXCLUSIVE) == trainers
    assert sum(1 for g in plan.gpus if g.mode == Mode.TIMESLICE) == -(-notebooks // replicas)
    assert plan.gpus_now == 36 and plan.gpus_needed == sum(m.gpus_needed for m in plan.models)
    assert plan.gpus_lower_bound <= plan.gpus_needed < plan.gpus_now


def test_utilisation_rises_when_the_same_demand_uses_fewer_gpus(mixed) -> None:
    plan, _ = mixed
    before, after = plan.utilisation_before, plan.utilisation_after
    assert 0 < before.memory < after.memory <= 1
    assert before.compute is not None and after.compute is not None and before.compute < after.compute
    ratio = plan.gpus_now / plan.gpus_needed
    assert after.compute == pytest.approx(before.compute * ratio, rel=0.01)


def test_replicas_are_placed_as_often_as_they_ran() -> None:
    server = dataclasses.replace(features("serving/ranker-0", peak_gib=14.0, c95=0.18, duty=0.97), devices=5)
    plan, _ = _plan([server], {H100: 5})
    instances = [i for g in plan.gpus for i in g.mig_instances]
    assert len(instances) == 5 and {i.profile for i in instances} == {"1g.20gb"}
    assert plan.gpus_needed == 2  # at most 4 x 1g.20gb per H100


def test_unplaced_workloads_keep_their_gpus_and_unknown_models_are_kept_as_they_are() -> None:
    odd = features("lab/sim-0", "NVIDIA L40S", peak_gib=30.0, c95=0.5)
    huge = features("lab/sim-1", A100, peak_gib=120.0, c95=0.9)  # spans two 80 GB GPUs
    plan, _ = _plan([odd, huge, training(0, A100)], {"NVIDIA L40S": 3, A100: 3}, outliers=("lab/sim-0", "lab/sim-1"))
    by_model = {m.gpu_model: m for m in plan.models}
    assert by_model["NVIDIA L40S"].gpus_needed == 3 and "not planned" in by_model["NVIDIA L40S"].method
    assert by_model[A100].gpus_needed == 1 + 2  # training exclusive + 2 GPUs kept for the 120 GiB workload
    assert {u.workload for u in plan.unplaced} == {"lab/sim-0", "lab/sim-1"}
    assert all("lab/" not in w for g in plan.gpus for w in g.workloads)


def test_mps_groups_never_mix_trust_domains() -> None:
    team_a = [features(f"alpha/tiny-{i}", peak_gib=2.0, c95=0.03, duty=0.7) for i in range(20)]
    team_b = [features(f"beta/tiny-{i}", peak_gib=2.0, c95=0.03, duty=0.7) for i in range(20)]
    plan, _ = _plan(team_a + team_b, {H100: 40})
    mps = [g for g in plan.gpus if g.mode == Mode.MPS]
    assert mps
    for g in mps:
        assert len({w.split("/")[0] for w in g.workloads}) == 1
        assert g.sharing_group in ("alpha", "beta")


def test_krr_baseline_packs_by_memory_alone_and_counts_what_it_risks() -> None:
    fleet = [notebook(i) for i in range(8)] + [training(i) for i in range(2)]
    krr = krr_baseline(fleet)
    # a notebook squeezes in beside each trainer (69 + 8.1 and 74.8 + 4.6 of 79.6 GiB), the other six share a
    # third GPU: krr needs 3 GPUs, and puts bursting notebooks beside a trainer at p95 0.95
    assert krr.gpus == 3
    assert krr.overcommitted_gpus >= 1  # a trainer at p95 0.95 beside bursting notebooks
    plan, _ = _plan(fleet, {H100: 10})
    assert plan.gpus_needed >= krr.gpus  # slicewise pays for isolation and contention limits
    assert "krr" in krr.sentence() and f"{krr.gpus} GPUs" in krr.sentence()


def test_memory_committed_never_exceeds_a_gpu(mixed) -> None:
    plan, _ = mixed
    for g in plan.gpus:
        assert g.memory_committed_bytes <= catalogue.model(g.gpu_model).memory_total_bytes
        assert g.compute_committed_gpu_fraction <= 1.0 + 1e-9


def test_gib_constant_matches() -> None:
    assert GIB == 1024**3

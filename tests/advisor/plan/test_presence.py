"""Pools sized for their busiest moment: workloads that never run at the same time share slots, replicas count,
and today's over-commitment is read from the history."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from advisor.decide import decide
from advisor.model import Mode, WorkloadKey
from advisor.plan import Presence, plan_fleet
from advisor.plan.today import today_from_history
from tests.advisor.plan.fleet_fixtures import H100, classify_by_prefix, features

GIB = 1024**3
T0 = pd.Timestamp("2026-11-16T00:00:00Z")


def rows(
    workload: str,
    hours: tuple[float, float],
    *,
    devices: int = 1,
    gpu: str = "GPU-a",
    profile: str = "",
    sm: float = 0.1,
    day: int = 0,
) -> pd.DataFrame:
    """One-minute samples of a workload present from hours[0] to hours[1] on ``day``, on ``devices`` devices."""
    minutes = np.arange(int(hours[0] * 60), int(hours[1] * 60))
    times = T0 + pd.to_timedelta(day * 1440 + minutes, unit="min")
    frames = [
        pd.DataFrame(
            {
                "timestamp": times,
                "workload": workload,
                "node": "n1",
                "gpu_uuid": f"{gpu}-{d}",
                "gpu_model": H100,
                "mig_profile": profile,
                "sharing": "mig" if profile else "exclusive",
                "memory_used_bytes": 4 * GIB,
                "sm_active_gpu_fraction": sm,
            }
        )
        for d in range(devices)
    ]
    return pd.concat(frames, ignore_index=True)


def test_peak_counts_only_who_is_there_together() -> None:
    history = pd.concat(
        [
            rows("research/nb-0", (9, 12)),
            rows("research/nb-1", (13, 17)),  # never with nb-0
            rows("research/nb-2", (11, 14)),  # overlaps both
            rows("train/job-0", (0, 24), devices=4),
        ]
    )
    presence = Presence.from_history(history)
    key = lambda w: WorkloadKey(w, H100)  # noqa: E731
    assert presence.peak([key("research/nb-0"), key("research/nb-1")]) == 1
    assert presence.peak([key("research/nb-0"), key("research/nb-1"), key("research/nb-2")]) == 2
    assert presence.peak([key("train/job-0")]) == 4  # four devices at once
    assert presence.peak([key("nobody/here")]) is None


def test_a_pool_of_alternating_workloads_needs_fewer_slots() -> None:
    """Eight batch jobs, two at a time (a morning pair, a noon pair, ...): 2 MIG slices, not 8; each slice lists the
    jobs that take turns on it."""
    jobs = [features(f"embed/job-{i}", peak_gib=12.0, c95=0.2, duty=0.9) for i in range(8)]
    history = pd.concat([rows(f"embed/job-{i}", (3 * (i // 2), 3 * (i // 2) + 2.5)) for i in range(8)])
    result = decide(classify_by_prefix(jobs), jobs)
    assert {w.decision.profile for w in result.workloads} == {"2g.20gb"}
    always = plan_fleet(result.workloads, {H100: 8})
    turns = plan_fleet(result.workloads, {H100: 8}, presence=Presence.from_history(history))
    slices = [i for g in turns.gpus for i in g.mig_instances]
    assert len(slices) == 2 and sum(len(i.mig_instances) for i in always.gpus) == 8
    assert sorted(w for i in slices for w in i.workloads) == sorted(f.workload for f in jobs)
    assert turns.gpus_needed == 1 < always.gpus_needed == 3
    assert "present at once" in turns.models[0].method


def test_replicas_of_one_workload_never_share_a_slot() -> None:
    server = dataclasses.replace(features("serving/api-0", peak_gib=14.0, c95=0.18, duty=0.97), devices=3)
    helper = features("serving/api-1", peak_gib=14.0, c95=0.18, duty=0.97)
    history = pd.concat([rows("serving/api-0", (0, 24), devices=3), rows("serving/api-1", (0, 24))])
    result = decide(classify_by_prefix([server, helper]), [server, helper])
    plan = plan_fleet(result.workloads, {H100: 4}, presence=Presence.from_history(history))
    slots = [i.workloads for g in plan.gpus for i in g.mig_instances]
    assert len(slots) == 4 and all(len(s) == 1 for s in slots)


def test_time_sliced_and_whole_gpu_pools_use_presence_too() -> None:
    trainers = [features(f"train/llm-{i}", peak_gib=60.0, c95=0.95, duty=0.99) for i in range(4)]
    history = pd.concat([rows(f"train/llm-{i}", (0, 24), day=i) for i in range(4)])  # one per day
    result = decide(classify_by_prefix(trainers), trainers)
    plan = plan_fleet(result.workloads, {H100: 4}, presence=Presence.from_history(history))
    assert [g.mode for g in plan.gpus] == [Mode.EXCLUSIVE]
    assert len(plan.gpus[0].workloads) == 4


def test_today_finds_shared_mig_slices_and_saturated_gpus() -> None:
    history = pd.concat(
        [
            *(rows(f"nb/{i}", (9, 17), gpu="GPU-m", profile="1g.10gb") for i in range(9)),  # 9 on 7 slices
            rows("a/x", (0, 24), gpu="GPU-s", sm=0.6),
            rows("b/y", (0, 24), gpu="GPU-s", sm=0.5),  # 1.1 of a GPU together: saturated
            rows("c/z", (0, 24), gpu="GPU-q", sm=0.2),
            rows("d/w", (0, 24), gpu="GPU-q", sm=0.2),  # shared, not saturated
        ]
    )
    today = today_from_history(history)
    assert today.mig_gpus_oversubscribed == 1 and today.most_on_instances == (9, 7, "1g.10gb")
    assert today.shared_gpus_saturated == 1 and today.worst_saturated_share == pytest.approx(1.0)
    sentence = today.sentence()
    assert sentence is not None and "2 of 3 GPUs are over-committed" in sentence and "9 at once" in sentence
    calm = today_from_history(rows("c/z", (0, 24), gpu="GPU-q", sm=0.2))
    assert calm.sentence() is None

"""The replay against known truth: memory that grows after the origin, a time-sliced pair over the GPU's memory,
contention measured from busy samples, a workload new after the origin, and totals that add up."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from advisor.backtest import BacktestResult, run_backtest
from advisor.backtest.origins import cuts
from advisor.backtest.replay import replay, step_seconds
from advisor.backtest.run import _split
from advisor.history import read_history
from advisor.model import MigInstance, Mode, PlannedGpu, Recommendation, Risk
from advisor.pipeline import from_history, recommend_data
from tests.advisor.backtest.histories import A100, GIB, STEP_S, hand_built, simulated


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return read_history(simulated(tmp_path_factory.mktemp("sim") / "fleet.parquet"))


def _origin(history: pd.DataFrame, fraction: float = 0.5) -> datetime:
    start, end = history["timestamp"].min().to_pydatetime(), history["timestamp"].max().to_pydatetime()
    return cuts(start, end, (fraction,))[0].origin


def _after(history: pd.DataFrame, origin: datetime) -> np.ndarray:
    return (history["timestamp"] > pd.Timestamp(origin)).to_numpy()


def test_memory_that_grows_after_the_origin_is_caught_as_oom_samples(fleet: pd.DataFrame) -> None:
    origin = _origin(fleet)
    base = run_backtest(fleet, (origin,), source="sim").origins[0]
    limited = [w for w in base.workloads if w.mode in ("mig", "mps") and w.samples >= 60]
    assert limited, "the mixed fleet has MIG/MPS decisions"
    target = max(limited, key=lambda w: w.samples)

    grown = fleet.copy()
    rows = np.flatnonzero(_after(grown, origin) & (grown["workload"] == target.workload).to_numpy())
    hit = rows[:40]  # its first 40 samples after the origin grow 1 GiB over its limit (the truth)
    memory = grown["memory_used_bytes"].to_numpy().copy()
    memory[hit] = target.memory_limit_bytes + GIB
    grown["memory_used_bytes"] = memory
    after = run_backtest(grown, (origin,), source="sim").origins[0]

    caught = next(w for w in after.workloads if w.key == target.key)
    assert caught.mode == target.mode and caught.memory_limit_bytes == target.memory_limit_bytes  # same fit
    expected = int((memory[rows] > target.memory_limit_bytes).sum())
    assert caught.oom_samples == expected >= len(hit)
    assert caught.memory_peak_bytes == target.memory_limit_bytes + GIB
    for before, now in zip(base.workloads, after.workloads, strict=True):
        if before.key != target.key:
            assert now == before
    assert after.totals.oom_samples == base.totals.oom_samples + caught.oom_samples - target.oom_samples
    assert "OOM" in after.sentence and after.totals.oom_workloads >= 1


def _timesliced_pair(rec: Recommendation, a: str, b: str) -> Recommendation:
    """``rec`` with ``a`` and ``b`` time-sliced together on one A100 (2 replicas) and nothing else planned."""
    workloads = []
    for w in rec.workloads:
        if w.workload in (a, b):
            d = dataclasses.replace(
                w.decision,
                mode=Mode.TIMESLICE,
                profile=None,
                memory_limit_bytes=40 * GIB,
                compute_limit_gpu_fraction=1.0,
                replicas=2,
                risk=Risk("low", 0.0, None, "forced by the test"),
            )
            workloads.append(dataclasses.replace(w, decision=d))
        else:
            workloads.append(w)
    gpu = PlannedGpu(A100, 0, Mode.TIMESLICE, None, (), (a, b), 2, None, 80 * GIB, 1.0)
    plan = dataclasses.replace(rec.plan, gpus=(gpu,))
    return dataclasses.replace(rec, workloads=tuple(workloads), plan=plan)


def test_a_time_sliced_pair_over_the_gpus_memory_and_its_contention_are_counted() -> None:
    history = hand_built()
    a, b = "research/notebook-0", "research/notebook-1"
    origin = _origin(history)
    start = history["timestamp"].min().to_pydatetime()
    step = step_seconds(history)
    cut = cuts(start, history["timestamp"].max().to_pydatetime(), (origin,))[0]
    before, after = _split(history, cut)
    rec = _timesliced_pair(recommend_data(from_history(before, "hand", None)), a, b)

    after = after.reset_index(drop=True)
    memory = after["memory_used_bytes"].to_numpy().copy()
    sm = after["sm_active_gpu_fraction"].to_numpy().copy()
    name = after["workload"].astype(str).to_numpy()
    step_of = ((after["timestamp"] - after["timestamp"].min()).dt.total_seconds() // step).astype(int).to_numpy()
    for w in (a, b):
        mine = name == w
        memory[mine] = 30 * GIB
        memory[mine & (step_of < 10)] = 45 * GIB  # 10 steps with 90 GiB on an 80 GB GPU: all of them OOM
        sm[mine] = 0.0
        sm[mine & (step_of >= 20) & (step_of < 40)] = 0.5  # 20 steps both busy: contended
    sm[(name == a) & (step_of >= 50) & (step_of < 55)] = 0.5  # 5 steps only a is busy: not contended
    after["memory_used_bytes"], after["sm_active_gpu_fraction"] = memory, sm

    r = replay(after, rec, start, step)
    by = {w.workload: w for w in r.workloads}
    assert r.timeslice_oom_gpu_steps == 10
    assert by[a].timeslice_oom_samples == by[b].timeslice_oom_samples == 10
    assert by[a].timeslice_busy_samples == 25 and by[b].timeslice_busy_samples == 20
    assert by[a].contended_samples == by[b].contended_samples == 20
    assert by[a].oom_samples == 0  # time-slicing has no per-workload limit to exceed
    # the two share one GPU with 2 replicas: never more present than slots
    assert by[a].queued_samples == by[b].queued_samples == 0
    others = [w for w in r.workloads if w.workload not in (a, b)]
    assert all(w.timeslice_oom_samples == w.contended_samples == 0 for w in others)


def test_a_pool_with_more_present_than_slots_queues() -> None:
    history = hand_built()
    a, b = "research/notebook-0", "research/notebook-1"
    start = history["timestamp"].min().to_pydatetime()
    cut = cuts(start, history["timestamp"].max().to_pydatetime(), (0.5,))[0]
    before, after = _split(history, cut)
    rec = _timesliced_pair(recommend_data(from_history(before, "hand", None)), a, b)
    gpu = dataclasses.replace(rec.plan.gpus[0], replicas=1)  # one slot for two always-present notebooks
    rec = dataclasses.replace(rec, plan=dataclasses.replace(rec.plan, gpus=(gpu,)))
    r = replay(after, rec, start, step_seconds(history))
    by = {w.workload: w for w in r.workloads}
    assert by[a].queued_samples == by[a].samples > 0
    assert by[b].queued_samples == by[b].samples


def test_a_workload_new_after_the_origin_is_reported(fleet: pd.DataFrame) -> None:
    origin = _origin(fleet, 0.7)
    late = fleet[_after(fleet, origin)]
    late = late[late["workload"] == late["workload"].iloc[0]].copy()
    late = late.iloc[: len(late) // 2]
    late["workload"] = "late/new-job"
    late["gpu_uuid"] = "GPU-ffffffff-0000-0000-0000-000000000000"
    late["memory_used_bytes"] = 7 * GIB
    history = pd.concat([fleet.astype({"workload": str, "gpu_uuid": str}), late.astype(str)], ignore_index=True)
    history = history.astype({"workload": "category", "gpu_uuid": "category"})
    history["memory_used_bytes"] = history["memory_used_bytes"].astype(np.int64)
    history["timestamp"] = pd.to_datetime(history["timestamp"], utc=True)
    history["sm_active_gpu_fraction"] = history["sm_active_gpu_fraction"].astype(float)

    base = run_backtest(fleet, (origin,)).origins[0]
    o = run_backtest(history, (origin,)).origins[0]
    new = {(n.workload, n.gpu_model): n for n in o.new}
    found = new[("late/new-job", str(late["gpu_model"].iloc[0]))]
    assert found.samples == len(late) and found.memory_peak_bytes == 7 * GIB
    assert found.first_seen == late["timestamp"].min().to_pydatetime()
    assert "late/new-job" not in {w.workload for w in o.workloads}
    assert o.totals.new_workloads == base.totals.new_workloads + 1
    assert o.totals.new_workload_samples == base.totals.new_workload_samples + len(late)
    assert o.totals.gpus_in_use == base.totals.gpus_in_use + 1


def test_totals_are_the_sums_of_the_workloads_and_the_json_reads_back(fleet: pd.DataFrame) -> None:
    result = run_backtest(fleet, (0.5, 0.7), source="fleet.parquet")
    assert [o.origin for o in result.origins] == sorted(o.origin for o in result.origins)
    for o in result.origins:
        t = o.totals
        assert t.samples == sum(w.samples for w in o.workloads) > 0
        assert t.oom_samples == sum(w.oom_samples for w in o.workloads)
        assert t.slowed_samples == sum(w.slowed_samples for w in o.workloads)
        assert t.timeslice_oom_samples == sum(w.timeslice_oom_samples for w in o.workloads)
        assert t.contended_samples == sum(w.contended_samples for w in o.workloads) <= t.timeslice_busy_samples
        assert t.queued_samples == sum(w.queued_samples for w in o.workloads)
        assert t.slowed_share == (t.slowed_samples / t.measured_samples if t.measured_samples else 0.0)
        # every sample after the origin is either an advised workload's or a new workload's
        rows = int(((fleet["timestamp"] > pd.Timestamp(o.origin)) & (fleet["timestamp"] <= o.replay_end)).sum())
        assert t.samples + t.new_workload_samples == rows
        assert t.gpus_busy_at_once_max <= t.gpus_in_use
        assert sum(o.modes.values()) == len(o.workloads)

    text = result.to_json()
    data = json.loads(text)
    assert data["version"] == "1" and data["source"] == "fleet.parquet"
    first = data["origins"][0]
    assert set(first) >= {"origin", "totals", "workloads", "new", "modes", "step_s", "replay_end"}
    assert set(first["totals"]) >= {
        "oom_samples",
        "timeslice_oom_samples",
        "slowed_samples",
        "slowed_share",
        "contended_share",
        "gpus_needed",
        "gpus_busy_at_once_max",
        "new_workloads",
    }
    assert first["workloads"][0].keys() >= {"workload", "gpu_model", "mode", "oom_samples", "slowed_samples"}
    assert BacktestResult.from_json(text) == result
    assert result.headline.startswith("Backtest: advice fitted before ")


def test_origins_in_the_replay_rows_align_on_the_sampling_step() -> None:
    """An origin half way between two sample times (287 steps, cut at 50 %) must not fold two samples into one
    step, which would make every pool look twice as full."""
    history = hand_built(days=1)
    result = run_backtest(history, (0.5,))
    o = result.origins[0]
    assert o.step_s == 300
    assert o.totals.queued_samples == 0


def test_a_time_sliced_mig_slice_is_judged_by_its_summed_memory_not_the_share() -> None:
    """Two notebooks time-sliced 2 ways in one 1g.10gb slice (decide/shared_slices.py): each one's limit is half the
    slice, a share with no isolation; they fail together only when their memory adds up past the slice's."""
    from slicewise.catalogue import find_model

    history = hand_built()
    a, b = "research/notebook-0", "research/notebook-1"
    start = history["timestamp"].min().to_pydatetime()
    cut = cuts(start, history["timestamp"].max().to_pydatetime(), (0.5,))[0]
    before, after = _split(history, cut)
    rec = recommend_data(from_history(before, "hand", None))
    gpu = find_model(A100)
    assert gpu is not None
    slice_bytes = gpu.profile("1g.10gb").memory_bytes
    workloads = []
    for w in rec.workloads:
        if w.workload in (a, b):
            d = dataclasses.replace(
                w.decision, mode=Mode.MIG, profile="1g.10gb", memory_limit_bytes=slice_bytes // 2, replicas=2
            )
            workloads.append(dataclasses.replace(w, decision=d))
        else:
            workloads.append(w)
    instance = MigInstance("1g.10gb", 0, 1, (a, b), replicas=2)
    planned = PlannedGpu(A100, 0, Mode.MIG, "x", (instance,), (a, b), None, None, slice_bytes, 0.14)
    rec = dataclasses.replace(rec, workloads=tuple(workloads), plan=dataclasses.replace(rec.plan, gpus=(planned,)))

    after = after.reset_index(drop=True)
    memory = after["memory_used_bytes"].to_numpy().copy()
    name = after["workload"].astype(str).to_numpy()
    step_of = ((after["timestamp"] - after["timestamp"].min()).dt.total_seconds() // STEP_S).astype(int).to_numpy()
    for tenant in (a, b):
        memory[name == tenant] = slice_bytes // 2 + GIB  # both over their share all the time: not an OOM alone
    memory[(name == a) & (step_of >= 30)] = GIB  # from step 30 on, the pair fits the slice
    after["memory_used_bytes"] = memory

    r = replay(after, rec, start, step_seconds(history))
    by = {w.workload: w for w in r.workloads}
    assert by[a].oom_samples == by[b].oom_samples == 0
    assert by[a].timeslice_oom_samples == by[b].timeslice_oom_samples == 30 == r.timeslice_oom_gpu_steps
    assert by[a].queued_samples == 0  # two slots (replicas) for the two of them

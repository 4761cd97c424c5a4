"""Archetypes behave as their names say, with spread between members."""

from __future__ import annotations

import numpy as np

from exporter.simulate.archetypes import DAY, GB, HOUR, Archetype, Params, draw, evaluate
from exporter.simulate.clock import ANCHOR


def _week(archetype: Archetype, n: int = 12, budget: float = 80 * GB, capacity: float = 1.0):
    rng = np.random.default_rng(42)
    behaviours = [draw(archetype, rng, 1000 + i, budget_bytes=budget, capacity=capacity, tz_s=0.0) for i in range(n)]
    t = (ANCHOR + np.arange(0, 7 * DAY, 60.0))[None, :]
    return behaviours, t, evaluate(archetype, Params(behaviours), t)


def test_online_inference_is_always_up_diurnal_and_steady_in_memory() -> None:
    _, t, act = _week(Archetype.ONLINE_INFERENCE)
    assert act.present.all()
    hour = (t[0] % DAY) / HOUR
    afternoon = (hour >= 13) & (hour < 16)
    night = (hour >= 1) & (hour < 4)
    assert (act.demand[:, afternoon].mean(axis=1) > 1.5 * act.demand[:, night].mean(axis=1)).all()
    spread = act.memory.std(axis=1) / act.memory.mean(axis=1)
    assert (spread < 0.05).all()


def test_training_fills_memory_and_sms_with_gaps_between_jobs() -> None:
    behaviours, _, act = _week(Archetype.TRAINING)
    running = act.present
    assert 0.4 < running.mean() < 0.95
    peak_memory = np.array([act.memory[i, running[i]].max() for i in range(len(behaviours))])
    assert (peak_memory > 0.7 * 80 * GB).all()
    assert np.median(act.demand[running]) > 0.6


def test_notebooks_are_mostly_idle_and_bursty() -> None:
    _, t, act = _week(Archetype.NOTEBOOK)
    alive = act.present
    assert 0.1 < alive.mean() < 0.8
    demand = act.demand[alive]
    assert np.median(demand) < 0.02
    assert np.quantile(demand, 0.99) > 0.15
    weekend = ((np.floor(t[0] / DAY).astype(int) + 3) % 7) >= 5
    assert alive[:, weekend].mean() < alive[:, ~weekend].mean()


def test_batch_inference_runs_on_schedule() -> None:
    _, _, act = _week(Archetype.BATCH_INFERENCE)
    assert 0.02 < act.present.mean() < 0.5
    runs_per_week = [len(np.unique(act.run[i, act.present[i]])) for i in range(act.run.shape[0])]
    assert min(runs_per_week) >= 6


def test_hpc_runs_hot_and_fine_tuning_moderate() -> None:
    _, _, hpc = _week(Archetype.HPC)
    _, _, ft = _week(Archetype.FINE_TUNING)
    assert np.median(hpc.demand[hpc.present]) > 0.8
    assert np.median(ft.demand[ft.present]) < np.median(hpc.demand[hpc.present])
    assert ft.memory[ft.present].max() < hpc.memory[hpc.present].max() * 1.2


def test_members_differ_and_demand_respects_capacity() -> None:
    behaviours, _, act = _week(Archetype.ONLINE_INFERENCE, capacity=16 / 132, budget=9 * GB)
    assert len({round(b.memory) for b in behaviours}) == len(behaviours)
    assert act.demand.max() <= 16 / 132 + 1e-9 or act.demand.max() <= 0.7
    assert act.memory.max() <= 9 * GB


def test_same_inputs_same_values() -> None:
    _, _, one = _week(Archetype.NOTEBOOK)
    _, _, two = _week(Archetype.NOTEBOOK)
    assert np.array_equal(one.memory, two.memory) and np.array_equal(one.demand, two.demand)

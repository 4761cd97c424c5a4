"""Workload archetypes: how memory and compute demand move over time, as vectorised pure functions of time.

Each workload has a ``Behaviour`` (parameters drawn once from the scenario's seed, with spread between members of
an archetype) and its archetype turns times into presence (is the process running?), memory in bytes, demand in
fractions of a whole GPU, and a run number (a new run is a new process, so a new pid). The live fake NVML evaluates
one instant for every process of a node; the history writer evaluates weeks at once; both call ``evaluate``, so the
history is exactly what the live fleet would have shown.

Shapes: parameters are ``(k, 1)`` arrays (one row per workload member), times ``(1, T)``; results are ``(k, T)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.simulate import noise

F64 = npt.NDArray[np.float64]
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
GB = 1e9


class Archetype(StrEnum):
    """The workload kinds a platform team runs on shared GPUs (the truth file names them with these values)."""

    ONLINE_INFERENCE = "online-inference"  # a service: always up, diurnal load, steady memory
    BATCH_INFERENCE = "batch-inference"  # scheduled scoring runs: on for hours, off between
    TRAINING = "training"  # long jobs: most of the GPU's memory, high SM, eval and checkpoint dips
    FINE_TUNING = "fine-tuning"  # shorter jobs, moderate memory and compute
    NOTEBOOK = "notebook"  # interactive: alive during the working day (or forgotten overnight), mostly idle
    HPC = "hpc"  # simulation under a batch scheduler: near-full SM for hours, I/O phases


@dataclass(frozen=True)
class Behaviour:
    """One workload's parameters. Field meaning per archetype is in each ``_evaluate_*`` function."""

    archetype: Archetype
    key: int  # noise key (64-bit)
    memory: float  # bytes: steady or peak level
    memory_low: float  # bytes: level while loading (jobs) or the base level (notebooks)
    demand: float  # fraction of a whole GPU: peak (services), running level (jobs), burst level (notebooks)
    demand_low: float  # trough ratio (services), dip ratio (jobs), idle level (notebooks)
    noise: float  # relative amplitude of drift
    period_s: float  # rollout period (services), schedule period (batch), job cycle (jobs)
    duty: float  # share of the period running (jobs, batch); burst probability per 5 minutes (notebooks)
    offset_s: float  # phase of the cycle
    peak_hour: float  # local hour of peak load (services) or of the working day's start (notebooks)
    tz_s: float  # offset of local time from UTC
    weekend: float  # load ratio at weekends (services), chance of a weekend session (notebooks)
    dip_every_s: float  # eval / checkpoint / I/O dips of jobs
    dip_len_s: float
    forget: float  # notebooks: chance a session is left running overnight
    occupancy: float  # warps resident per active SM (GPM SM occupancy = activity x this)
    dram: float  # DRAM bandwidth per unit of SM activity (GPM DRAM activity)


_NUMERIC = tuple(f.name for f in fields(Behaviour) if f.name not in ("archetype", "key"))


@dataclass(frozen=True)
class Activity:
    """What a set of workload members do at a set of times; all ``(k, T)``."""

    present: npt.NDArray[np.bool_]
    memory: F64  # bytes (0 where absent)
    demand: F64  # fraction of a whole GPU wanted (0 where absent), before capacity and contention
    run: npt.NDArray[np.int64]  # run number: a new run is a new process


class Params:
    """Behaviours of one archetype stacked into ``(k, 1)`` arrays, one attribute per numeric field."""

    def __init__(self, behaviours: list[Behaviour]) -> None:
        self.count = len(behaviours)
        self.key = np.array([b.key for b in behaviours], dtype=np.uint64)[:, None]
        for name in _NUMERIC:
            setattr(self, name, np.array([getattr(b, name) for b in behaviours], dtype=np.float64)[:, None])

    def __getattr__(self, name: str) -> F64:  # for type checkers: the fields set in __init__
        raise AttributeError(name)


def _sub(key: npt.NDArray[np.uint64], salt: int) -> npt.NDArray[np.uint64]:
    return noise.mix(key ^ np.uint64(salt))


def _cycles(p: Params, t: F64) -> tuple[npt.NDArray[np.int64], F64, F64]:
    """Job cycles: the cycle number, the time into it, and this cycle's running length (varies per cycle)."""
    shifted = t - p.offset_s
    cycle = np.floor(shifted / p.period_s).astype(np.int64)
    phase = shifted - cycle * p.period_s
    length = np.minimum(p.duty * p.period_s * (0.7 + 0.6 * noise.uniform(_sub(p.key, 1), cycle)), 0.98 * p.period_s)
    return cycle, phase, length


def _evaluate_online(p: Params, t: F64) -> Activity:
    """Always up; pid changes at each rollout (every ``period_s``); diurnal load with weekends; steady memory."""
    run = np.floor((t - p.offset_s) / p.period_s).astype(np.int64)
    since_rollout = (t - p.offset_s) - run * p.period_s
    local = t + p.tz_s
    hour = (local % DAY) / HOUR
    weekday = (np.floor(local / DAY).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    diurnal = 0.5 + 0.5 * np.cos(2 * np.pi * (hour - p.peak_hour) / 24.0)
    level = p.demand_low + (1 - p.demand_low) * diurnal
    level = np.where(weekday >= 5, level * p.weekend, level)
    wobble = 1 + p.noise * noise.smooth(_sub(p.key, 2), t, 900.0) + 0.5 * p.noise * noise.smooth(p.key, t, 120.0)
    demand = np.clip(p.demand * level * wobble, 0.0, 1.0)
    ramp = np.clip(since_rollout / 180.0, 0.0, 1.0)
    memory = (p.memory_low + (p.memory - p.memory_low) * ramp) * (1 + 0.01 * noise.smooth(_sub(p.key, 3), t, 1800.0))
    present = np.ones(np.broadcast_shapes(p.key.shape, t.shape), dtype=bool)
    return Activity(present, memory, demand * np.minimum(1.0, ramp * 2), run)


def _evaluate_batch(p: Params, t: F64) -> Activity:
    """A scheduled run every ``period_s`` (at ``offset_s``), lasting ``duty`` of it; steady while it runs."""
    cycle, phase, length = _cycles(p, t)
    present = phase < length
    ramp = np.clip(phase / 120.0, 0.0, 1.0)
    memory = (p.memory_low + (p.memory - p.memory_low) * ramp) * (1 + 0.01 * noise.smooth(p.key, t, 600.0))
    demand = p.demand * (1 + p.noise * noise.smooth(_sub(p.key, 4), t, 300.0)) * np.clip(phase / 60.0, 0.1, 1.0)
    return Activity(present, np.where(present, memory, 0.0), np.where(present, np.clip(demand, 0, 1), 0.0), cycle)


def _evaluate_job(p: Params, t: F64) -> Activity:
    """Training, fine-tuning and HPC: jobs of ``duty`` x ``period_s`` (varying), then a gap for the next one.

    Memory loads in the first five minutes and then holds; compute runs at ``demand`` with dips of ``dip_len_s``
    every ``dip_every_s`` (evaluation, checkpoints, I/O) down to ``demand_low`` of it.
    """
    cycle, phase, length = _cycles(p, t)
    present = phase < length
    ramp = np.clip(phase / 300.0, 0.0, 1.0)
    memory = (p.memory_low + (p.memory - p.memory_low) * ramp) * (1 + 0.008 * noise.smooth(p.key, t, 600.0))
    in_dip = (phase % p.dip_every_s) >= (p.dip_every_s - p.dip_len_s)
    drift = 1 + p.noise * noise.smooth(_sub(p.key, 5), t, 240.0)
    demand = p.demand * drift * np.where(in_dip, p.demand_low, 1.0) * np.maximum(ramp, 0.05)
    return Activity(present, np.where(present, memory, 0.0), np.where(present, np.clip(demand, 0, 1), 0.0), cycle)


def _evaluate_notebook(p: Params, t: F64) -> Activity:
    """A kernel alive from a working-day start for 4-10 h (or left overnight), mostly idle, with bursts of work.

    Memory steps up as the user loads data and models (four steps over three hours) and stays until the kernel
    ends; compute idles at ``demand_low`` except bursts (5-minute blocks, probability ``duty``) in working hours.
    """
    local = t + p.tz_s
    day = np.floor(local / DAY).astype(np.int64)
    seconds = local - day * DAY

    def session(d: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.bool_], F64, F64]:
        weekend = (d + 3) % 7 >= 5
        chance = np.where(weekend, p.weekend, 0.92)
        has = noise.uniform(p.key, d) < chance
        start = (p.peak_hour + 2 * noise.uniform(_sub(p.key, 6), d) - 1) * HOUR
        length = (4 + 6 * noise.uniform(_sub(p.key, 7), d)) * HOUR
        length = np.where(noise.uniform(_sub(p.key, 8), d) < p.forget, length + 14 * HOUR, length)
        return has, start, length

    has_today, start_today, len_today = session(day)
    has_yday, start_yday, len_yday = session(day - 1)
    today = has_today & (seconds >= start_today) & (seconds < start_today + len_today)
    yesterday = has_yday & (seconds + DAY < start_yday + len_yday)
    present = today | yesterday
    run = np.where(today, day, day - 1)
    elapsed = np.where(today, seconds - start_today, seconds + DAY - start_yday)
    peak = p.memory_low + (p.memory - p.memory_low) * (0.4 + 0.6 * noise.uniform(_sub(p.key, 9), run))
    steps = np.minimum(np.floor(elapsed / (45 * MINUTE)), 4.0) / 4.0
    memory = p.memory_low + (peak - p.memory_low) * steps
    block = np.floor(t / 300.0).astype(np.int64)
    burst = (noise.uniform(_sub(p.key, 10), block) < p.duty) & (elapsed < 9 * HOUR)
    level = np.where(burst, p.demand * (0.4 + 0.6 * noise.uniform(_sub(p.key, 11), block)), p.demand_low)
    demand = level * (0.5 + noise.uniform(_sub(p.key, 12), np.floor(t / 60.0).astype(np.int64)))
    return Activity(present, np.where(present, memory, 0.0), np.where(present, np.clip(demand, 0, 1), 0.0), run)


_EVALUATORS = {
    Archetype.ONLINE_INFERENCE: _evaluate_online,
    Archetype.BATCH_INFERENCE: _evaluate_batch,
    Archetype.TRAINING: _evaluate_job,
    Archetype.FINE_TUNING: _evaluate_job,
    Archetype.HPC: _evaluate_job,
    Archetype.NOTEBOOK: _evaluate_notebook,
}


def evaluate(archetype: Archetype, params: Params, t: F64) -> Activity:
    """Activity of ``params.count`` members of one archetype at times ``t`` (shape ``(1, T)``)."""
    return _EVALUATORS[archetype](params, t)


# --- drawing parameters ---------------------------------------------------------------------------------------------


def draw(
    archetype: Archetype,
    rng: np.random.Generator,
    key: int,
    *,
    budget_bytes: float,
    capacity: float,
    tz_s: float,
) -> Behaviour:
    """Parameters for one workload of ``archetype`` placed where it may use ``budget_bytes`` of memory and at most
    ``capacity`` of a whole GPU's SMs (1 for a whole GPU, SMs of the MIG device / SMs of the GPU otherwise).

    Spread is deliberate: members of one archetype differ in size and intensity as real teams' jobs do, so the
    advisor has classes to find rather than identical copies.
    """
    u = rng.uniform

    def capped_demand(low: float, high: float) -> float:
        return float(min(u(low, high), capacity * u(0.7, 1.0)))

    def model_memory(median_gb: float, share: tuple[float, float]) -> float:
        absolute = rng.lognormal(np.log(median_gb * GB), 0.6)
        return float(min(absolute, budget_bytes * u(*share)))

    common: dict[str, Any] = {"key": key, "tz_s": tz_s, "forget": 0.0, "weekend": 1.0, "peak_hour": 14.0}
    if archetype is Archetype.ONLINE_INFERENCE:
        memory = model_memory(6.0, (0.55, 0.9))
        period = u(2, 10) * DAY
        return Behaviour(
            archetype,
            memory=memory,
            memory_low=memory * u(0.85, 0.95),
            demand=float(min(rng.lognormal(np.log(0.15), 0.7), 0.7, capacity * u(0.75, 1.0))),
            demand_low=u(0.1, 0.35),
            noise=u(0.05, 0.15),
            period_s=period,
            duty=1.0,
            offset_s=u(0, period),
            dip_every_s=HOUR,
            dip_len_s=0.0,
            occupancy=u(0.2, 0.45),
            dram=u(0.4, 0.9),
            **{**common, "peak_hour": u(13, 16), "weekend": u(0.5, 0.85)},
        )
    if archetype is Archetype.BATCH_INFERENCE:
        memory = model_memory(8.0, (0.6, 0.9))
        period = float(rng.choice([6 * HOUR, 12 * HOUR, 24 * HOUR]))
        start_hour = u(0, 5)
        return Behaviour(
            archetype,
            memory=memory,
            memory_low=memory * 0.9,
            demand=capped_demand(0.35, 0.95),
            demand_low=1.0,
            noise=u(0.05, 0.12),
            period_s=period,
            duty=u(0.06, 0.25) * (DAY / period) ** 0.5,
            offset_s=(start_hour * HOUR - tz_s) % period,
            dip_every_s=HOUR,
            dip_len_s=0.0,
            occupancy=u(0.4, 0.7),
            dram=u(0.3, 0.7),
            **common,
        )
    if archetype in (Archetype.TRAINING, Archetype.FINE_TUNING, Archetype.HPC):
        shapes = {
            # memory share of budget, demand range, noise, period range (h), duty range, dip every (min), dip len
            # (min), dip level, occupancy, dram
            Archetype.TRAINING: ((0.75, 0.95), (0.75, 0.98), 0.04, (36, 120), (0.6, 0.9), (30, 90), (2, 6), (0.15, 0.4),
                                 (0.5, 0.8), (0.4, 0.7)),
            Archetype.FINE_TUNING: ((0.3, 0.65), (0.35, 0.8), 0.12, (12, 48), (0.15, 0.5), (15, 45), (1, 3),
                                    (0.25, 0.5), (0.35, 0.6), (0.3, 0.6)),
            Archetype.HPC: ((0.35, 0.9), (0.85, 1.0), 0.02, (8, 72), (0.7, 0.95), (60, 180), (2, 8), (0.05, 0.15),
                            (0.5, 0.9), (0.5, 0.95)),
        }  # fmt: skip
        mem, dem, drift, per, duty, every, length, dip, occ, dram = shapes[archetype]
        memory = budget_bytes * u(*mem)
        period = u(*per) * HOUR
        return Behaviour(
            archetype,
            memory=memory,
            memory_low=memory * u(0.25, 0.5),
            demand=capped_demand(*dem),
            demand_low=u(*dip),
            noise=drift,
            period_s=period,
            duty=u(*duty),
            offset_s=u(0, period),
            dip_every_s=u(*every) * MINUTE,
            dip_len_s=u(*length) * MINUTE,
            occupancy=u(*occ),
            dram=u(*dram),
            **common,
        )
    if archetype is Archetype.NOTEBOOK:
        memory = model_memory(5.0, (0.5, 0.85))
        return Behaviour(
            archetype,
            memory=memory,
            memory_low=min(memory * 0.5, u(0.3, 1.0) * GB),
            demand=capped_demand(0.2, 0.8),
            demand_low=u(0.0, 0.01),
            noise=0.0,
            period_s=DAY,
            duty=u(0.03, 0.15),
            offset_s=0.0,
            dip_every_s=HOUR,
            dip_len_s=0.0,
            occupancy=u(0.2, 0.5),
            dram=u(0.2, 0.6),
            **{**common, "peak_hour": u(8, 10), "weekend": u(0.05, 0.3), "forget": u(0.1, 0.45)},
        )
    raise ValueError(f"unknown archetype {archetype!r}")


def peak_memory(b: Behaviour) -> float:
    """An upper bound of the memory a behaviour can reach (for checking it fits where it is placed)."""
    return max(b.memory, b.memory_low) * 1.02

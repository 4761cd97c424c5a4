"""Evaluate many workload members on their devices at many times: presence, memory, and the SM activity they get.

Shared by the live fake NVML (one node, a few instants per scrape) and the history writer (the whole fleet, weeks
of samples), so both report the same numbers for the same member at the same time.

Contention: members on one device (time-sliced, MPS clients, several processes in one MIG device) want ``demand``
(fractions of the whole GPU); a device can deliver at most its ``capacity`` (its SMs / the GPU's SMs). When the
members present want more than that, each gets its demand scaled by capacity / total, so the device is exactly full.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from exporter.simulate.archetypes import Archetype, Behaviour, Params, evaluate

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Evaluation:
    """Members x times (and devices x times) at the evaluated instants."""

    present: npt.NDArray[np.bool_]  # (k, T)
    memory: F64  # (k, T) bytes
    realised: F64  # (k, T) fraction of the whole GPU's SMs the member kept busy
    run: npt.NDArray[np.int64]  # (k, T)
    device_ratio: F64  # (D, T) SM-active ratio of each device (0..1)
    occupancy: F64  # (D, T) GPM SM occupancy ratio of each device
    dram: F64  # (D, T) GPM DRAM activity ratio of each device


class MemberTable:
    """Members (each a Behaviour on a device index) and device capacities, grouped for vectorised evaluation."""

    def __init__(self, behaviours: Sequence[Behaviour], device_of: npt.ArrayLike, capacity: npt.ArrayLike) -> None:
        self.count = len(behaviours)
        self.device_of = np.asarray(device_of, dtype=np.int64)
        self.capacity = np.asarray(capacity, dtype=np.float64)
        self.devices = len(self.capacity)
        self._groups: list[tuple[Archetype, Params, npt.NDArray[np.int64]]] = []
        by_archetype: dict[Archetype, list[int]] = {}
        for i, b in enumerate(behaviours):
            by_archetype.setdefault(b.archetype, []).append(i)
        for archetype, rows in by_archetype.items():
            self._groups.append((archetype, Params([behaviours[i] for i in rows]), np.asarray(rows, dtype=np.int64)))
        self.occupancy_factor = np.array([b.occupancy for b in behaviours], dtype=np.float64)[:, None]
        self.dram_factor = np.array([b.dram for b in behaviours], dtype=np.float64)[:, None]
        # members sorted by device, and where each device's run of members starts, for np.add.reduceat
        self._order = np.argsort(self.device_of, kind="stable")
        sorted_devices = self.device_of[self._order]
        self._used_devices, self._starts = np.unique(sorted_devices, return_index=True)

    def _per_device(self, values: F64) -> F64:
        """Sum a (k, T) member array into (D, T) per device."""
        out = np.zeros((self.devices, values.shape[1]), dtype=np.float64)
        if self.count:
            out[self._used_devices] = np.add.reduceat(values[self._order], self._starts, axis=0)
        return out

    def evaluate(self, times: npt.ArrayLike) -> Evaluation:
        t = np.asarray(times, dtype=np.float64).reshape(1, -1)
        k, n = self.count, t.shape[1]
        present = np.zeros((k, n), dtype=bool)
        memory = np.zeros((k, n), dtype=np.float64)
        demand = np.zeros((k, n), dtype=np.float64)
        run = np.zeros((k, n), dtype=np.int64)
        for archetype, params, rows in self._groups:
            act = evaluate(archetype, params, t)
            present[rows] = act.present
            memory[rows] = act.memory
            demand[rows] = np.where(act.present, act.demand, 0.0)
            run[rows] = act.run
        capacity = self.capacity[:, None]
        wanted = self._per_device(demand)
        scale = np.where(wanted > capacity, capacity / np.maximum(wanted, 1e-12), 1.0)
        realised = demand * scale[self.device_of]
        device_ratio = np.clip(self._per_device(realised) / capacity, 0.0, 1.0)
        occupancy = np.clip(self._per_device(realised * self.occupancy_factor) / capacity, 0.0, 1.0)
        dram = np.clip(self._per_device(realised * self.dram_factor) / capacity, 0.0, 1.0)
        return Evaluation(present, np.where(present, memory, 0.0), realised, run, device_ratio, occupancy, dram)

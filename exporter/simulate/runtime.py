"""A node's live state at the clock's current second: which processes run where, with what memory and activity.

The fake NVML asks the runtime for everything it reports. The runtime advances in whole seconds: when the clock has
moved on, it evaluates every member on the node at each second since the last evaluation (at most 60 instants;
longer gaps are sampled evenly) and accumulates what GPM counts (SM-active, occupancy and DRAM-active seconds per
device) and what the driver keeps for ``nvmlDeviceGetProcessUtilization`` (per-process samples, the last 20).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from exporter.attribution.sources import PodMeta
from exporter.simulate import identity as ident
from exporter.simulate import topology
from exporter.simulate.activity import Evaluation, MemberTable
from exporter.simulate.faults import FaultKind
from exporter.simulate.noise import hash2, stable_key
from exporter.simulate.topology import Device, Gpu

if TYPE_CHECKING:
    from exporter.simulate.fleet import Node

PID_BASE = 10_000
PID_STRIDE = 4096  # each member owns a block of pids, so two live processes never share one
MAX_GRID = 60
UTIL_SAMPLES = 20
MIB = 1 << 20
MPS_SERVER_MEMORY = 32 * MIB
GPU_BASELINE_MEMORY = 4 * MIB  # what a GPU with no processes still shows as used (v2 accounting)


@dataclass(frozen=True, slots=True)
class LiveProcess:
    pid: int
    member: int  # index into node.members; -1 for an MPS server
    device: int  # index into Tick.devices
    memory: int  # bytes, whole MiB as the driver reports
    mps_client: bool = False
    run: int = 0


@dataclass
class Tick:
    """The node at one second."""

    time: float
    devices: list[Device]
    processes: list[list[LiveProcess]]  # per device: its processes (MPS clients included, the server not)
    mps_servers: dict[int, LiveProcess]  # device -> its MPS server
    by_pid: dict[int, LiveProcess]
    device_ratio: npt.NDArray[np.float64]  # (D,) SM-active ratio
    device_memory: npt.NDArray[np.int64]  # (D,) bytes used
    device_dram: npt.NDArray[np.float64]  # (D,)
    by_gpu: dict[int, list[int]]  # GPU index -> indices of its devices
    gone: set[int] = field(default_factory=set)  # pids that exited after being listed (process_exit faults)


@dataclass
class Counters:
    """GPM's cumulative counters per device, in active-seconds, since the device was created."""

    sm: npt.NDArray[np.float64]
    occupancy: npt.NDArray[np.float64]
    dram: npt.NDArray[np.float64]
    graphics: npt.NDArray[np.float64]

    @classmethod
    def zeros(cls, n: int) -> Counters:
        return cls(*(np.zeros(n) for _ in range(4)))


@dataclass
class UtilSamples:
    """The driver's per-process utilization buffer of one non-MIG device: timestamps (us) and per-pid values."""

    entries: list[tuple[int, int, int, int]] = field(default_factory=list)  # (timestamp_us, pid, sm%, mem%)


class NodeRuntime:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.lock = threading.RLock()
        self._signature: tuple[object, ...] = ()
        self._seen_change = -1
        self._tick: Tick | None = None
        self._last: int | None = None
        self._restarts = np.zeros(len(node.members), dtype=np.int64)
        self._member_keys = np.array([stable_key(m.workload.key, m.replica) for m in node.members], dtype=np.uint64)
        # By member: the facts of its current process, and which (run, restarts) they are for. One entry per member,
        # replaced when it restarts, so pods and containers of exited processes are dropped, not kept forever.
        self._facts: dict[int, tuple[tuple[int, int], ident.ProcFacts]] = {}
        self._pods: dict[str, PodMeta] = {}
        self._containers: dict[str, str] = {}
        if len(node.members) * PID_STRIDE + PID_BASE > 4_194_304:
            raise ValueError(f"{node.name}: too many processes for one node's pid space")

    # --- structure ------------------------------------------------------------------------------------------------

    def _rebuild(self) -> None:
        devices = self.node.devices()
        index = {d.key: i for i, d in enumerate(devices)}
        old = self._signature
        self._devices = devices
        self._device_index = index
        self._device_of_member = np.array([index.get(m.device_key, -1) for m in self.node.members], dtype=np.int64)
        placed = np.flatnonzero(self._device_of_member >= 0)
        self._placed = placed
        self._table = MemberTable(
            [self.node.members[i].behaviour for i in placed],
            self._device_of_member[placed],
            [d.capacity for d in devices],
        )
        self._counters = Counters.zeros(len(devices))
        self._util = [UtilSamples() for _ in devices]
        self._signature = self._current_signature()
        self._by_gpu: dict[int, list[int]] = {}
        for i, d in enumerate(devices):
            self._by_gpu.setdefault(d.gpu.index, []).append(i)
        if old:  # instances were re-created: their processes restarted
            generations = dict(zip(old[::2], old[1::2], strict=True))
            for i, m in enumerate(self.node.members):
                gpu = self._gpu_of_key(m.device_key)
                if gpu is not None and generations.get(gpu.index) != gpu.generation:
                    self._restarts[i] += 1

    def _gpu_of_key(self, key: str) -> Gpu | None:
        index = int(key.split("/")[1])
        return next((g for g in self.node.gpus if g.index == index), None)

    def _current_signature(self) -> tuple[object, ...]:
        sig: list[object] = []
        for g in self.node.gpus:
            sig += [g.index, g.generation]
        return tuple(sig)

    # --- time -----------------------------------------------------------------------------------------------------

    def state(self) -> Tick:
        """The node now (re-evaluated when the clock has moved to a later second)."""
        with self.lock:
            if self._seen_change != topology.CHANGES[0]:
                self._seen_change = topology.CHANGES[0]
                if self._current_signature() != self._signature:
                    self._rebuild()
                    self._last = None
            now = math.floor(self.node.clock.now())
            if self._tick is not None and self._last == now:
                return self._tick
            self._advance(now)
            assert self._tick is not None
            return self._tick

    def _pids(self, members: npt.NDArray[np.int64], run: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Pids of node members ``members`` in runs ``run`` (shape (k,) or (k, T)). Each member owns a block of
        PID_STRIDE pids, so pids of different members never collide; a new run or restart moves within the block."""
        shape = (-1,) + (1,) * (run.ndim - 1)
        counter = run * 4096 + self._restarts[members].reshape(shape)
        offset = hash2(self._member_keys[members].reshape(shape), counter) % np.uint64(PID_STRIDE)
        return (PID_BASE + members.reshape(shape) * PID_STRIDE + offset.astype(np.int64)).astype(np.int64)

    def _advance(self, now: int) -> None:
        if self._last is None or now <= self._last:
            grid = np.array([float(now)])
            dt = 0.0
        else:
            gap = now - self._last
            if gap <= MAX_GRID:
                grid = np.arange(self._last + 1, now + 1, dtype=np.float64)
                dt = 1.0
            else:
                grid = self._last + gap * np.arange(1, MAX_GRID + 1, dtype=np.float64) / MAX_GRID
                dt = gap / MAX_GRID
        ev = self._table.evaluate(grid)
        if dt:
            c = self._counters
            c.sm += ev.device_ratio.sum(axis=1) * dt
            c.occupancy += ev.occupancy.sum(axis=1) * dt
            c.dram += ev.dram.sum(axis=1) * dt
            c.graphics += np.clip(ev.device_ratio * 1.4, 0.0, 1.0).sum(axis=1) * dt
        placed = self._placed
        self._record_util(ev, grid)
        present = ev.present[:, -1]
        rows = np.flatnonzero(present)
        members = placed[rows]
        runs = ev.run[rows, -1]
        pids = self._pids(members, runs).tolist() if len(rows) else []
        memory = (np.round(ev.memory[rows, -1] / MIB) * MIB).astype(np.int64)
        device_of = self._device_of_member[members]
        devices = self._devices
        mps = [d.mps for d in devices]
        processes: list[list[LiveProcess]] = [[] for _ in devices]
        by_pid: dict[int, LiveProcess] = {}
        for pid, member, device, mem, run in zip(
            pids, members.tolist(), device_of.tolist(), memory.tolist(), runs.tolist(), strict=True
        ):
            proc = LiveProcess(pid, member, device, mem, mps[device], run)
            processes[device].append(proc)
            by_pid[pid] = proc
            self._remember(proc)
        device_memory = np.bincount(device_of, weights=memory, minlength=len(devices)).astype(np.int64)
        servers: dict[int, LiveProcess] = {}
        for d, procs in enumerate(processes):
            if mps[d] and procs:
                pid = PID_BASE + (len(self.node.members) + d) * PID_STRIDE + devices[d].gpu.generation % PID_STRIDE
                server = LiveProcess(pid, -1, d, MPS_SERVER_MEMORY)
                servers[d] = server
                by_pid[pid] = server
                device_memory[d] += MPS_SERVER_MEMORY
        self._tick = Tick(
            float(now),
            devices,
            processes,
            servers,
            by_pid,
            ev.device_ratio[:, -1],
            device_memory,
            ev.dram[:, -1],
            self._by_gpu,
        )
        self._last = now

    def _record_util(self, ev: Evaluation, grid: npt.NDArray[np.float64]) -> None:
        """Append per-process samples (one per second evaluated) to each whole GPU's utilisation buffer."""
        capacity = self._table.capacity
        for d, device in enumerate(self._devices):
            if device.is_mig:
                continue
            rows = np.flatnonzero(self._table.device_of == d)
            if not len(rows):
                continue
            pids = self._pids(self._placed[rows], ev.run[rows])
            sm = np.round(100 * ev.realised[rows] / capacity[d]).astype(np.int64)
            mem = np.round(100 * ev.realised[rows] * self._table.dram_factor[rows] / capacity[d]).astype(np.int64)
            buffer = self._util[d].entries
            stamps = (grid * 1_000_000).astype(np.int64).tolist()
            for g, stamp in enumerate(stamps):
                for r in range(len(rows)):
                    if ev.present[rows[r], g]:
                        buffer.append((stamp, int(pids[r, g]), int(sm[r, g]), int(mem[r, g])))
            keep = UTIL_SAMPLES * len(rows)
            if len(buffer) > keep:
                del buffer[: len(buffer) - keep]

    # --- what NVML asks -------------------------------------------------------------------------------------------

    def device_index(self, key: str) -> int | None:
        """Where a device (by its stable key) is in ``Tick.devices``; call after ``state()``."""
        return self._device_index.get(key)

    def counters(self) -> Counters:
        with self.lock:
            self.state()
            return self._counters

    def util_samples(self, device: int) -> list[tuple[int, int, int, int]]:
        with self.lock:
            self.state()
            return list(self._util[device].entries)

    def listed(self, device: int) -> list[LiveProcess]:
        """The processes a process-list call sees on ``device`` now; each may exit right after (faults)."""
        with self.lock:
            tick = self.state()
            procs = [p for p in tick.processes[device] if p.pid not in tick.gone]
            faults = self.node.faults
            for p in procs:
                if faults.draw(FaultKind.PROCESS_EXIT):
                    tick.gone.add(p.pid)
                    self._restarts[p.member] += 1
            return procs

    def process(self, pid: int) -> LiveProcess | None:
        with self.lock:
            tick = self.state()
            if pid in tick.gone:
                return None
            return tick.by_pid.get(pid)

    # --- identity (the node's /proc and pods) ---------------------------------------------------------------------

    def _run_start(self, member: int, run: int) -> float:
        b = self.node.members[member].behaviour
        return b.offset_s + run * b.period_s

    def _remember(self, proc: LiveProcess) -> ident.ProcFacts:
        """The facts of a process (made once per run and restart); registers its pod or container name."""
        run = proc.run
        stamp = (run, int(self._restarts[proc.member]))
        held = self._facts.get(proc.member)
        if held is not None and held[0] == stamp:
            return held[1]
        m = self.node.members[proc.member]
        pr = ident.ProcessRun(
            m.workload.identity,
            m.workload.key,
            m.replica,
            run,
            self._run_start(proc.member, run),
            self.node.name,
            (self._devices[proc.device].uuid,),
            restarts=stamp[1],
        )
        found = ident.facts(pr, self.node.platform)
        self._facts[proc.member] = (stamp, found)
        if held is not None:
            self._forget(held[1])
        if found.pod is not None:
            self._pods[found.pod.uid] = found.pod
        if m.workload.identity.kind is ident.IdentityKind.CONTAINER:
            self._containers[found.container_id] = found.container_name
        return found

    def _forget(self, old: ident.ProcFacts) -> None:
        """Drop the pod and container of a replaced process, unless another member's process shares them."""
        current = [facts for _, facts in self._facts.values()]
        if old.pod is not None and not any(f.pod is not None and f.pod.uid == old.pod.uid for f in current):
            self._pods.pop(old.pod.uid, None)
        if old.container_id and not any(f.container_id == old.container_id for f in current):
            self._containers.pop(old.container_id, None)

    def facts(self, pid: int) -> ident.ProcFacts:
        with self.lock:
            proc = self.process(pid)
            if proc is None:
                raise ProcessLookupError(pid)
            if proc.member < 0:
                return ident.mps_server_facts(self.node.platform)
            return self._remember(proc)

    def pod(self, uid: str) -> PodMeta | None:
        with self.lock:
            self.state()
            return self._pods.get(uid)

    def container_name(self, container_id: str) -> str | None:
        with self.lock:
            self.state()
            return self._containers.get(container_id)

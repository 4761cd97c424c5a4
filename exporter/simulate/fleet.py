"""The simulated fleet: nodes with GPUs, the workloads running on them, the clock and the faults.

A ``Workload`` is what a person would call the job (its ``Identity`` says how the exporter will name it); each of
its ``Member`` s is one process on one device (replicas of a Deployment, ranks of a training job). A ``Node`` is
one machine: its GPUs, its members, and — for the exporter's attribution — a ``proc_source`` (its /proc), a
``pod_directory`` (its pods, from the API server) and ``container_names`` (Docker's names for its containers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from exporter.attribution.sources import PodMeta
from exporter.simulate.archetypes import Archetype, Behaviour
from exporter.simulate.clock import Clock, WallClock
from exporter.simulate.drivers import DEFAULT_DRIVER, PROFILES, DriverProfile
from exporter.simulate.faults import Faults
from exporter.simulate.identity import Identity, Platform
from exporter.simulate.topology import Device, Gpu
from slicewise.errors import BadInput

if TYPE_CHECKING:
    from exporter.simulate.runtime import NodeRuntime


@dataclass(frozen=True)
class Workload:
    key: str  # unique within the fleet; seeds generated ids
    identity: Identity
    archetype: Archetype

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def namespace(self) -> str:
        return self.identity.namespace


@dataclass(frozen=True)
class Member:
    """One process of a workload, pinned to one device (by its stable key)."""

    workload: Workload
    replica: int
    device_key: str
    behaviour: Behaviour


@dataclass
class Node:
    name: str
    platform: Platform
    gpus: list[Gpu]
    members: list[Member]
    tz_s: float
    clock: Clock
    faults: Faults
    driver: DriverProfile = PROFILES[DEFAULT_DRIVER]  # see exporter.simulate.drivers
    privileged: bool = True  # False: an unprivileged container, refused what NVML gives root only
    kernel_module: str | None = None  # the loaded kernel driver's version when it differs from the library's

    def __post_init__(self) -> None:
        # A node whose GPUs the default release does not drive (Blackwell needs R570+) gets the oldest that does.
        if not all(self.driver.drives(g.model.architecture) for g in self.gpus):
            fits = [p for p in PROFILES.values() if all(p.drives(g.model.architecture) for g in self.gpus)]
            if fits:
                self.driver = fits[0]

    @property
    def driver_version(self) -> str:
        return self.driver.version

    def devices(self) -> list[Device]:
        return [d for g in self.gpus for d in g.devices()]

    def device(self, key: str) -> Device:
        for d in self.devices():
            if d.key == key:
                return d
        raise KeyError(key)

    @cached_property
    def runtime(self) -> NodeRuntime:
        from exporter.simulate.runtime import NodeRuntime

        return NodeRuntime(self)

    @property
    def proc_source(self) -> SimulatedProcSource:
        """The node's /proc, for ``exporter.attribution`` (implements ``ProcSource``)."""
        return SimulatedProcSource(self)

    @property
    def pod_directory(self) -> SimulatedPodDirectory:
        """The node's pods as the API server knows them (implements ``PodDirectory``)."""
        return SimulatedPodDirectory(self)

    @property
    def container_names(self) -> SimulatedContainerNames:
        """Docker's names of the node's non-Kubernetes containers (implements ``ContainerNames``)."""
        return SimulatedContainerNames(self)

    def workloads(self) -> list[Workload]:
        seen: dict[str, Workload] = {}
        for m in self.members:
            seen.setdefault(m.workload.key, m.workload)
        return list(seen.values())

    def processes(self) -> list[RunningProcess]:
        """What runs on the node now (at its clock's current second): the truth a test compares a scrape with."""
        tick = self.runtime.state()
        out = [
            RunningProcess(p.pid, self.members[p.member].workload, tick.devices[p.device], p.memory, p.mps_client)
            for procs in tick.processes
            for p in procs
            if p.pid not in tick.gone
        ]
        out += [RunningProcess(s.pid, None, tick.devices[s.device], s.memory) for s in tick.mps_servers.values()]
        return out


@dataclass(frozen=True)
class RunningProcess:
    """A process on a simulated node now; ``workload`` is None for an MPS server (it belongs to no workload)."""

    pid: int
    workload: Workload | None
    device: Device
    memory_bytes: int
    mps_client: bool = False


class SimulatedProcSource:
    """``ProcSource`` over the simulated node: raises ``ProcessLookupError`` for a pid that is not running now."""

    def __init__(self, node: Node) -> None:
        self._runtime = node.runtime

    def cgroup(self, pid: int) -> str:
        return self._runtime.facts(pid).cgroup

    def cmdline(self, pid: int) -> list[str]:
        return list(self._runtime.facts(pid).cmdline)

    def comm(self, pid: int) -> str:
        return self._runtime.facts(pid).comm

    def user(self, pid: int) -> str:
        return self._runtime.facts(pid).user

    def environ(self, pid: int) -> dict[str, str]:
        return dict(self._runtime.facts(pid).environ)


class SimulatedPodDirectory:
    """``PodDirectory``: the pods of the processes the node runs now, by UID. Never blocks."""

    def __init__(self, node: Node) -> None:
        self._runtime = node.runtime

    def lookup(self, pod_uid: str) -> PodMeta | None:
        return self._runtime.pod(pod_uid)


class SimulatedContainerNames:
    """Container names by full container id, as the Docker/Podman API would give them."""

    def __init__(self, node: Node) -> None:
        self._runtime = node.runtime

    def name(self, container_id: str) -> str | None:
        return self._runtime.container_name(container_id)


@dataclass
class Fleet:
    scenario: str
    seed: int
    nodes: list[Node]
    clock: Clock = field(default_factory=WallClock)
    faults: Faults = field(default_factory=Faults)

    def node(self, name: str | None = None) -> Node:
        """A node by name; the first node when ``name`` is None."""
        if name is None:
            return self.nodes[0]
        for n in self.nodes:
            if n.name == name:
                return n
        raise BadInput(f"scenario {self.scenario!r} has no node {name!r} (it has {', '.join(self.node_names)})")

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def gpus(self) -> list[Gpu]:
        return [g for n in self.nodes for g in n.gpus]

    @property
    def members(self) -> list[Member]:
        return [m for n in self.nodes for m in n.members]

    def workloads(self) -> list[Workload]:
        seen: dict[str, Workload] = {}
        for m in self.members:
            seen.setdefault(m.workload.key, m.workload)
        return list(seen.values())

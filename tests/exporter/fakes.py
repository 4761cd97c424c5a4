"""Stand-ins for procfs and the pod cache, for tests that are about something else (attribution rules, metrics)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from exporter.attribution.sources import PodMeta


@dataclass
class FakeProc:
    cgroup: str
    comm: str = "python3"
    user: str = "alice"
    environ: dict[str, str] = field(default_factory=dict)


class FakeProcs:
    """A ProcSource over a dict, counting reads by file so the cache can be checked."""

    def __init__(self, procs: dict[int, FakeProc]) -> None:
        self.procs = procs
        self.reads: Counter[str] = Counter()

    def _get(self, pid: int, file: str) -> FakeProc:
        self.reads[file] += 1
        if pid not in self.procs:
            raise ProcessLookupError(pid)
        return self.procs[pid]

    def cgroup(self, pid: int) -> str:
        return self._get(pid, "cgroup").cgroup

    def cmdline(self, pid: int) -> list[str]:
        return [self._get(pid, "cmdline").comm]

    def comm(self, pid: int) -> str:
        return self._get(pid, "comm").comm

    def user(self, pid: int) -> str:
        return self._get(pid, "status").user

    def environ(self, pid: int) -> dict[str, str]:
        return dict(self._get(pid, "environ").environ)


class FakePods:
    def __init__(self, pods: list[PodMeta]) -> None:
        self.pods = {p.uid: p for p in pods}

    def lookup(self, pod_uid: str) -> PodMeta | None:
        return self.pods.get(pod_uid)

"""What attribution reads, as interfaces: a node's /proc and the Kubernetes API, or the simulator standing in.

On a node, ``ProcSource`` is procfs (``/proc`` or ``--path.procfs``) and ``PodDirectory`` a cache of this node's pods
from the API server. Under ``--simulate`` the simulated fleet implements both, so the attribution code that runs in
tests and demos is the code that runs on a real node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class ProcSource(Protocol):
    """Per-pid facts from procfs. Every method raises ``ProcessLookupError`` when the pid no longer exists."""

    def cgroup(self, pid: int) -> str:
        """The text of ``/proc/<pid>/cgroup`` (cgroup v1: many lines; v2: ``0::/path``)."""
        ...

    def cmdline(self, pid: int) -> list[str]:
        """``/proc/<pid>/cmdline`` split on NUL; empty for kernel threads."""
        ...

    def comm(self, pid: int) -> str:
        """``/proc/<pid>/comm``: the short process name."""
        ...

    def user(self, pid: int) -> str:
        """The name of the pid's real user (from the Uid line of ``/proc/<pid>/status``), or the uid as text."""
        ...

    def environ(self, pid: int) -> dict[str, str]:
        """``/proc/<pid>/environ``; empty when unreadable. Slurm puts SLURM_JOB_NAME there."""
        ...


@dataclass(frozen=True)
class PodMeta:
    """A pod as attribution needs it: identity, owner (after following ReplicaSet to Deployment) and containers."""

    uid: str
    namespace: str
    name: str
    owner_kind: str = ""  # Deployment, StatefulSet, DaemonSet, Job, CronJob, or "" for a bare pod
    owner_name: str = ""
    containers: dict[str, str] = field(default_factory=dict)  # container id (no runtime prefix) -> container name


class PodDirectory(Protocol):
    """Pods on this node by UID. Must never block: it answers from a cache that something else refreshes."""

    def lookup(self, pod_uid: str) -> PodMeta | None:
        """The pod, or ``None`` when it is not (yet) known."""
        ...

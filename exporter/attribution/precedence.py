"""DESIGN.md's workload precedence, as an ordered list of steps a user can change (``--attribution.order``).

Default order, first step that names the process wins:

1. ``kubernetes``: the pod (from the cgroup's pod UID) is known to the API server: ``<namespace>/<owner>``, the owner
   being the Deployment (through its ReplicaSet), StatefulSet, DaemonSet, Job or CronJob (through its Job), so
   replica hashes never reach the name; a pod with no controller is its own owner (``<namespace>/<pod>``).
2. ``container``: the container's name (from the pod's status, or from the Docker/Podman API when configured).
3. ``slurm``: the Slurm job's name (``SLURM_JOB_NAME`` of a process in a Slurm job's cgroup or environment).
4. ``systemd``: the systemd service the process runs in, e.g. ``triton.service``.
5. ``user``: ``<user>/<command>``, with the command being the process's ``comm``: always possible, always last.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from exporter.attribution.cgroup import CgroupIdentity
from exporter.attribution.sources import PodDirectory
from exporter.snapshot import Workload
from slicewise.errors import BadInput


class Step(StrEnum):
    KUBERNETES = "kubernetes"
    CONTAINER = "container"
    SLURM = "slurm"
    SYSTEMD = "systemd"
    USER = "user"


DEFAULT_ORDER: tuple[Step, ...] = tuple(Step)


def parse_order(text: str) -> tuple[Step, ...]:
    """``kubernetes,slurm,user`` -> steps; ``user`` is appended when left out, since something must name a pid."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    known = {s.value for s in Step}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadInput(f"--attribution.order: unknown step {unknown[0]!r} (steps: {', '.join(s.value for s in Step)})")
    if len(set(names)) != len(names):
        raise BadInput(f"--attribution.order: a step is named twice in {text!r}")
    steps = tuple(Step(n) for n in names)
    if Step.USER not in steps:
        steps += (Step.USER,)
    if steps[-1] is not Step.USER:
        raise BadInput("--attribution.order: 'user' must come last (it always names a process)")
    return steps


class ContainerNames(Protocol):
    """Names of containers outside Kubernetes (Docker, Podman), by full container id. Must not block."""

    def name(self, container_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class ProcFacts:
    """What attribution knows of a pid from procfs, read once while the pid keeps a GPU context."""

    comm: str
    user: str
    cgroup: CgroupIdentity
    slurm_job_id: str = ""
    slurm_job_name: str = ""


def resolve(
    facts: ProcFacts,
    order: tuple[Step, ...],
    pods: PodDirectory | None,
    containers: ContainerNames | None,
) -> Workload:
    """The workload of one process: the first step in ``order`` that can name it."""
    cg = facts.cgroup
    pod = pods.lookup(cg.pod_uid) if pods is not None and cg.pod_uid else None
    for step in order:
        if step is Step.KUBERNETES and pod is not None:
            return Workload(
                name=f"{pod.namespace}/{pod.owner_name or pod.name}",
                source=step.value,
                namespace=pod.namespace,
                pod=pod.name,
                container=pod.containers.get(cg.container_id, ""),
            )
        if step is Step.CONTAINER and cg.container_id:
            if pod is not None:
                name = pod.containers.get(cg.container_id)
            else:
                name = containers.name(cg.container_id) if containers is not None else None
            if name:
                return Workload(name=name, source=step.value, container=name)
        if step is Step.SLURM and (facts.slurm_job_name or facts.slurm_job_id):
            return Workload(name=facts.slurm_job_name or f"slurm-job-{facts.slurm_job_id}", source=step.value)
        if step is Step.SYSTEMD and cg.systemd_unit:
            return Workload(name=cg.systemd_unit, source=step.value)
        if step is Step.USER:
            break
    return Workload(name=f"{facts.user}/{facts.comm}", source=Step.USER.value)

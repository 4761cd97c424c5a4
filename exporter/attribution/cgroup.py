"""What a process's cgroup says about it: Kubernetes pod and container, Slurm job, systemd unit.

``/proc/<pid>/cgroup`` is one line per hierarchy, ``ID:CONTROLLERS:PATH``; cgroup v2 has a single ``0::PATH`` line,
v1 one line per controller (and hybrid hosts both). The shapes read here, with where they come from:

- kubelet, systemd cgroup driver (kubeadm's default): ``/kubepods.slice/kubepods-<qos>.slice/
  kubepods-<qos>-pod<UID with _ for ->.slice/<runtime scope>``; Guaranteed pods have no ``<qos>`` level.
- kubelet, cgroupfs driver (k3s, older GKE/EKS images): ``/kubepods/<qos>/pod<UID>/<container id>``.
- runtime scope under systemd: containerd ``cri-containerd-<id>.scope``, CRI-O ``crio-<id>.scope`` (its monitor is
  ``crio-conmon-<id>.scope``), Docker/cri-dockerd ``docker-<id>.scope``, Podman ``libpod-<id>.scope``; under
  cgroupfs the bare id (containerd, Docker) or ``crio-<id>`` (CRI-O); plain Docker: ``/docker/<id>``.
- Slurm: cgroup v1 ``/slurm/uid_<uid>/job_<id>/step_<s>/task_<t>``; cgroup v2 (cgroup/v2 plugin)
  ``/system.slice/slurmstepd.scope/job_<id>/step_<s>/user/task_<t>``.
- systemd: a service's processes sit in ``.../<unit>.service`` (system units, or user units below
  ``user@<uid>.service``); login sessions (``session-N.scope``) name no workload.

Read from inside a container with its own cgroup namespace, other processes' paths start with ``/../..``: the
patterns below match anywhere in the path, so that works as well as reading the host's view.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_POD_UID = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})(?:\.slice)?(?:/|$)"
)
# A container id as the last meaningful path component, with the runtime's prefix telling the runtime.
_CONTAINER = re.compile(r"^(?:(cri-containerd|crio|docker|libpod|containerd)-)?([0-9a-f]{64})(?:\.scope)?$")
_RUNTIME_NAMES = {
    "cri-containerd": "containerd",
    "containerd": "containerd",
    "crio": "cri-o",
    "docker": "docker",
    "libpod": "podman",
}
_SLURM_JOB = re.compile(r"/job_(\d+)(?:/|$)")
_USER_MANAGER = re.compile(r"^user@\d+\.service$")


@dataclass(frozen=True, slots=True)
class CgroupIdentity:
    """The workload facts one ``/proc/<pid>/cgroup`` holds; empty strings where it holds none."""

    pod_uid: str = ""  # with dashes, as the API server spells it
    container_id: str = ""  # 64 hex digits, no runtime prefix
    runtime: str = ""  # containerd, cri-o, docker, podman, or "" when the path shape does not say
    slurm_job_id: str = ""
    systemd_unit: str = ""


def _paths(text: str) -> list[str]:
    """The cgroup paths, most informative hierarchy first: v2 unified, then systemd's v1 tree, then the rest."""
    ranked: list[tuple[int, str]] = []
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            rank = 0
        elif controllers == "name=systemd":
            rank = 1
        elif "memory" in controllers.split(","):
            rank = 2
        else:
            rank = 3
        ranked.append((rank, path))
    return [path for _, path in sorted(ranked, key=lambda item: item[0]) if path not in ("", "/")]


def _container(path: str) -> tuple[str, str]:
    for component in reversed(path.split("/")):
        if component in ("", "container"):  # Podman nests the payload in <scope>/container
            continue
        match = _CONTAINER.match(component)
        if match:
            prefix = match.group(1)
            runtime = _RUNTIME_NAMES[prefix] if prefix else ("docker" if "/docker/" in f"{path}/" else "")
            return match.group(2), runtime
        return "", ""
    return "", ""


def _systemd_unit(path: str) -> str:
    for component in reversed(path.split("/")):
        if component.endswith(".service") and not _USER_MANAGER.match(component):
            return component
    return ""


def parse_cgroup(text: str) -> CgroupIdentity:
    """Read a ``/proc/<pid>/cgroup`` text (see the module doc for the shapes it knows)."""
    pod_uid = container_id = runtime = slurm_job = unit = ""
    for path in _paths(text):
        if not pod_uid and "kubepods" in path and (m := _POD_UID.search(path)):
            pod_uid = m.group(1).replace("_", "-")
        if not container_id:
            container_id, runtime = _container(path)
        if not slurm_job and ("slurm" in path) and (m := _SLURM_JOB.search(path)):
            slurm_job = m.group(1)
        if not unit and not container_id and not pod_uid:
            unit = _systemd_unit(path)
    if container_id or pod_uid or slurm_job:
        unit = ""  # the unit around a container or job step (containerd.service, slurmstepd) is not the workload
    return CgroupIdentity(pod_uid, container_id, runtime, slurm_job, unit)

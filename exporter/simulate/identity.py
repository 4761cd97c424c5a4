"""Who a simulated process is, as a node would show it: its /proc facts and, on Kubernetes, its pod.

The exporter names a process's workload from these facts (DESIGN.md "Workload identity"; precedence in
``exporter.attribution.precedence``). Each simulated workload states the name it expects (``Identity.name``), and
the facts generated here are the ones that lead the exporter to exactly that name:

- Kubernetes pod -> ``<namespace>/<owner>``: the cgroup path carries the pod UID (and the container id); the pod
  directory answers that UID with the pod's owner (the Deployment behind its ReplicaSet, the StatefulSet, the Job,
  the CronJob behind its Job), or the pod itself for a bare pod.
- a container outside Kubernetes -> its name (cgroup has the container id; ``container_names`` resolves it).
- a Slurm job -> ``SLURM_JOB_NAME`` (environ), the job id in the cgroup path.
- a systemd service -> the unit, e.g. ``triton.service``.
- anything else -> ``<user>/<comm>``, comm being the basename of argv[0] (native binaries), at most 15 characters.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from exporter.attribution.sources import PodMeta
from exporter.simulate.noise import stable_key

_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for generated name suffixes
TASK_COMM_LEN = 15


class IdentityKind(StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"
    JOB = "Job"
    CRONJOB = "CronJob"
    BARE_POD = "Pod"
    CONTAINER = "container"  # Docker/Podman outside Kubernetes
    SLURM = "slurm"
    SYSTEMD = "systemd"
    PROCESS = "process"  # a user's process in a login session

    @property
    def kubernetes(self) -> bool:
        return self in (self.DEPLOYMENT, self.STATEFULSET, self.JOB, self.CRONJOB, self.BARE_POD)


class QoS(StrEnum):
    GUARANTEED = "guaranteed"
    BURSTABLE = "burstable"
    BESTEFFORT = "besteffort"


@dataclass(frozen=True)
class Platform:
    """How a node runs processes: cgroup version and driver, container runtime, and who the users are."""

    cgroup_version: int  # 1 (hybrid hierarchy: v1 controllers plus a 0:: line) or 2
    cgroup_driver: str  # systemd | cgroupfs
    runtime: str  # containerd | cri-o | docker
    users: dict[int, str] = field(default_factory=dict)  # the node's /etc/passwd

    def user_name(self, uid: int) -> str:
        return self.users.get(uid, str(uid))


@dataclass(frozen=True)
class Identity:
    """A workload's identity; ``name`` is what the exporter must call it."""

    kind: IdentityKind
    name: str
    argv: tuple[str, ...]
    uid: int = 0
    namespace: str = ""
    owner: str = ""  # Deployment / StatefulSet / Job / CronJob name; the pod name for a bare pod
    container: str = ""  # container name (Kubernetes container, or the Docker container's name)
    qos: QoS = QoS.BURSTABLE
    slurm_job_base: int = 0  # job ids are base + run number: every run is a new Slurm job
    unit: str = ""  # systemd unit

    @property
    def comm(self) -> str:
        return self.argv[0].rsplit("/", 1)[-1][:TASK_COMM_LEN]


@dataclass(frozen=True)
class ProcFacts:
    """Everything a ProcSource tells about one pid."""

    cgroup: str
    cmdline: tuple[str, ...]
    comm: str
    user: str
    environ: dict[str, str]
    pod: PodMeta | None = None
    container_id: str = ""
    container_name: str = ""


def _digest(*parts: object, size: int = 32) -> str:
    out = ""
    counter = 0
    while len(out) < size:
        out += f"{stable_key(*parts, counter):016x}"
        counter += 1
    return out[:size]


def _generated(*parts: object, length: int) -> str:
    """A Kubernetes-style generated suffix (pod names, ReplicaSet hashes)."""
    value = stable_key(*parts)
    chars = []
    for _ in range(length):
        value, rest = divmod(value, len(_HASH_ALPHABET))
        chars.append(_HASH_ALPHABET[rest])
    return "".join(chars)


def container_id(*parts: object) -> str:
    return _digest("container", *parts, size=64)


def pod_uid(*parts: object) -> str:
    return str(uuid.UUID(_digest("pod", *parts, size=32)))


def _v1_lines(path: str, systemd_path: str, devices_path: str | None = None) -> str:
    """A cgroup v1 (hybrid) /proc/<pid>/cgroup: one line per controller hierarchy, as on Ubuntu 20.04 / RHEL 8."""
    controllers = [
        (12, "blkio"), (11, "memory"), (10, "devices"), (9, "pids"), (8, "cpu,cpuacct"), (7, "freezer"),
        (6, "net_cls,net_prio"), (5, "cpuset"), (4, "perf_event"), (3, "hugetlb"), (2, "rdma"),
    ]  # fmt: skip
    lines = []
    for number, name in controllers:
        where = "/" if name == "rdma" else (devices_path if name == "devices" and devices_path else path)
        lines.append(f"{number}:{name}:{where}")
    lines.append(f"1:name=systemd:{systemd_path}")
    lines.append(f"0::{systemd_path}")
    return "\n".join(lines) + "\n"


def _pod_path(platform: Platform, qos: QoS, uid: str, cid: str) -> str:
    if platform.cgroup_driver == "systemd":
        scope = {"containerd": "cri-containerd", "cri-o": "crio", "docker": "docker"}[platform.runtime]
        slice_uid = uid.replace("-", "_")
        if qos is QoS.GUARANTEED:
            return f"/kubepods.slice/kubepods-pod{slice_uid}.slice/{scope}-{cid}.scope"
        return f"/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{slice_uid}.slice/{scope}-{cid}.scope"
    leaf = f"crio-{cid}" if platform.runtime == "cri-o" else cid
    if qos is QoS.GUARANTEED:
        return f"/kubepods/pod{uid}/{leaf}"
    return f"/kubepods/{qos}/pod{uid}/{leaf}"


def _cgroup_text(platform: Platform, path: str, systemd_path: str | None = None) -> str:
    if platform.cgroup_version == 2:
        return f"0::{path}\n"
    return _v1_lines(path, systemd_path or path)


@dataclass(frozen=True)
class ProcessRun:
    """One run of one member of a workload: the process that exists while that run lasts."""

    identity: Identity
    workload_key: str  # unique per workload (for generated ids)
    replica: int
    run: int
    run_start: float  # epoch seconds: when this run began (CronJob job names carry it)
    node: str
    gpu_uuids: tuple[str, ...]
    restarts: int = 0  # container restarts within the run: a new container id (and pid), same pod


def pod_name(r: ProcessRun) -> str:
    ident = r.identity
    if ident.kind is IdentityKind.DEPLOYMENT:
        replica_set = _generated(r.workload_key, "rs", r.run, length=10)
        return f"{ident.owner}-{replica_set}-{_generated(r.workload_key, r.replica, r.run, length=5)}"
    if ident.kind is IdentityKind.STATEFULSET:
        return f"{ident.owner}-{r.replica}"
    if ident.kind is IdentityKind.JOB:
        return f"{ident.owner}-{_generated(r.workload_key, r.replica, r.run, length=5)}"
    if ident.kind is IdentityKind.CRONJOB:
        return f"{cronjob_job_name(r)}-{_generated(r.workload_key, r.replica, r.run, length=5)}"
    return ident.owner  # a bare pod, e.g. JupyterHub's jupyter-<user>


def cronjob_job_name(r: ProcessRun) -> str:
    """The CronJob controller names each Job ``<cronjob>-<scheduled time in minutes since the epoch>``."""
    return f"{r.identity.owner}-{int(r.run_start // 60)}"


def facts(r: ProcessRun, platform: Platform) -> ProcFacts:
    """The /proc facts (and pod, if any) of the process of one run."""
    ident = r.identity
    user = platform.user_name(ident.uid)
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": f"/home/{user}"}
    if ident.kind.kubernetes:
        name = pod_name(r)
        uid = pod_uid(r.workload_key, r.replica, r.run)
        cid = container_id(r.workload_key, r.replica, r.run, r.restarts)
        path = _pod_path(platform, ident.qos, uid, cid)
        text = _cgroup_text(platform, path)
        owner_kind = "" if ident.kind is IdentityKind.BARE_POD else str(ident.kind)
        owner_name = "" if ident.kind is IdentityKind.BARE_POD else ident.owner
        pod = PodMeta(uid, ident.namespace, name, owner_kind, owner_name, {cid: ident.container})
        env |= {
            "HOME": "/root" if ident.uid == 0 else f"/home/{ident.uid}",
            "HOSTNAME": name,
            "KUBERNETES_SERVICE_HOST": "10.96.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            "NVIDIA_VISIBLE_DEVICES": ",".join(r.gpu_uuids),
        }
        return ProcFacts(text, ident.argv, ident.comm, user, env, pod, cid, ident.container)
    if ident.kind is IdentityKind.CONTAINER:
        cid = container_id(r.workload_key, r.replica, r.run, r.restarts)
        if platform.cgroup_driver == "systemd":
            path = f"/system.slice/{'libpod' if platform.runtime == 'podman' else 'docker'}-{cid}.scope"
        else:
            path = f"/docker/{cid}"
        env |= {"HOSTNAME": cid[:12], "NVIDIA_VISIBLE_DEVICES": ",".join(r.gpu_uuids)}
        text = _cgroup_text(platform, path)
        return ProcFacts(text, ident.argv, ident.comm, user, env, None, cid, ident.container)
    if ident.kind is IdentityKind.SLURM:
        job = ident.slurm_job_base + r.run
        if platform.cgroup_version == 2:
            text = f"0::/system.slice/slurmstepd.scope/job_{job}/step_0/user/task_{r.replica}\n"
        else:
            step = f"/slurm/uid_{ident.uid}/job_{job}/step_0"
            text = _v1_lines(f"{step}/task_{r.replica}", "/system.slice/slurmd.service", devices_path=step)
        env |= {
            "SLURM_JOB_ID": str(job),
            "SLURM_JOB_NAME": ident.name,
            "SLURM_JOB_USER": user,
            "SLURM_JOB_UID": str(ident.uid),
            "SLURM_STEP_ID": "0",
            "SLURM_PROCID": str(r.replica),
            "SLURM_LOCALID": str(r.replica),
            "SLURM_CLUSTER_NAME": "sim",
            "SLURMD_NODENAME": r.node,
            "CUDA_VISIBLE_DEVICES": str(r.replica),
        }
        return ProcFacts(text, ident.argv, ident.comm, user, env)
    if ident.kind is IdentityKind.SYSTEMD:
        path = f"/system.slice/{ident.unit}"
        env |= {"INVOCATION_ID": _digest("invocation", r.workload_key, r.run, size=32)}
        return ProcFacts(_cgroup_text(platform, path), ident.argv, ident.comm, user, env)
    session = 2 + stable_key(r.workload_key, r.run) % 40
    path = f"/user.slice/user-{ident.uid}.slice/session-{session}.scope"
    return ProcFacts(_cgroup_text(platform, path), ident.argv, ident.comm, user, env)


MPS_SERVER_ARGV = ("nvidia-cuda-mps-server",)


def mps_server_facts(platform: Platform) -> ProcFacts:
    """The MPS server runs under the MPS control daemon's service (or the device plugin's daemon pod)."""
    text = _cgroup_text(platform, "/system.slice/nvidia-mps.service")
    return ProcFacts(text, MPS_SERVER_ARGV, "nvidia-cuda-mps", "root", {"CUDA_MPS_PIPE_DIRECTORY": "/tmp/nvidia-mps"})

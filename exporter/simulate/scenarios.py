"""Named scenarios: which nodes, GPUs, MIG geometries, sharing modes and workloads a simulated fleet has.

A scenario is a list of node plans. ``gpus=`` scales it: nodes are taken from the plans in turn (numbered
``sim-h100-0``, ``sim-h100-1`` ...) until the fleet has that many GPUs, the last node keeping only the GPUs needed.
Everything drawn (names, workload parameters) comes from the seed, so a (scenario, seed, gpus) triple is one fleet.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from exporter.simulate import archetypes
from exporter.simulate.archetypes import Archetype, Behaviour
from exporter.simulate.clock import Clock, WallClock
from exporter.simulate.faults import Faults
from exporter.simulate.fleet import Fleet, Member, Node, Workload
from exporter.simulate.identity import Identity, IdentityKind, Platform, QoS
from exporter.simulate.noise import stable_key
from exporter.simulate.topology import Device, Gpu
from slicewise.catalogue import model as catalogue_model
from slicewise.errors import BadInput

ON, BATCH, TRAIN, FT, NB, HPC = (
    Archetype.ONLINE_INFERENCE,
    Archetype.BATCH_INFERENCE,
    Archetype.TRAINING,
    Archetype.FINE_TUNING,
    Archetype.NOTEBOOK,
    Archetype.HPC,
)
HOUR = 3600.0
MEMORY_HEADROOM = 0.92  # members of one device are sized to leave this share of its memory usable


@dataclass(frozen=True)
class Tenant:
    """A workload member to place on a device. Tenants with the same ``group`` on one node are one workload."""

    archetype: Archetype
    group: str = ""
    kind: IdentityKind | None = None
    namespace: str = ""  # Kubernetes: the team's namespace (default: one drawn for the archetype)


@dataclass(frozen=True)
class MigSlot:
    """One GPU instance: its profile, and either its tenants (one compute instance) or a split into compute
    instances (``split`` = slices per CI) with tenants per CI. ``mps``: an MPS server runs inside it."""

    profile: str
    tenants: tuple[Tenant, ...] = ()
    mps: bool = False
    split: tuple[int, ...] = ()
    ci_tenants: tuple[tuple[Tenant, ...], ...] = ()


@dataclass(frozen=True)
class GpuPlan:
    """A whole GPU (one tenant: exclusive; several: time-sliced, or MPS clients with ``mps``) or a MIG GPU."""

    tenants: tuple[Tenant, ...] = ()
    mps: bool = False
    mig: tuple[MigSlot, ...] = ()


@dataclass(frozen=True)
class NodePlan:
    prefix: str
    model: str  # catalogue key
    flavour: str  # "kubernetes" or "bare" (Slurm, systemd services, Docker, login sessions)
    platform: Platform
    tz_hours: float
    gpus: tuple[GpuPlan, ...]


USERS = {
    1001: "alice", 1002: "bob", 1003: "carol", 1004: "dmitri", 1005: "erin", 1006: "farah", 1007: "gwen",
    1008: "hiro", 1009: "ines", 1010: "jamal", 1011: "kenji", 1012: "lena", 1013: "marco", 1014: "nadia",
    1015: "omar", 1016: "priya", 1017: "quinn", 1018: "rosa", 1019: "sven", 1020: "tariq", 1021: "uma",
    1022: "viktor", 1023: "wen", 1024: "xavier", 1025: "yara", 1026: "zoe", 0: "root", 64030: "slurm",
}  # fmt: skip

K8S_CONTAINERD = Platform(2, "systemd", "containerd", USERS)
K8S_CRIO = Platform(2, "systemd", "cri-o", USERS)
K8S_DOCKER_V1 = Platform(1, "cgroupfs", "docker", USERS)
BARE_V1 = Platform(1, "cgroupfs", "docker", USERS)
BARE_V2 = Platform(2, "systemd", "docker", USERS)

# --- names ------------------------------------------------------------------------------------------------------

_SERVICES = (
    "chat-api", "embedder", "reranker", "ocr", "asr-whisper", "image-tagger", "fraud-scorer", "recsys-ranker",
    "translate", "summarizer", "moderation", "vision-detect", "tts", "query-encoder", "clip-search", "llm-gateway",
    "code-assist", "doc-qa", "sentiment", "ner-tagger", "ad-ranker", "caption-gen", "face-blur", "spam-filter",
)  # fmt: skip
_BATCH = (
    "nightly-scoring", "embed-backfill", "catalog-captions", "churn-predict", "doc-ocr-batch", "video-tags",
    "feature-embeds", "report-summaries", "search-reindex", "image-dedup",
)  # fmt: skip
_TRAINING = (
    "llama-pretrain", "vit-train", "recsys-dlrm", "bert-pretrain", "diffusion-train", "asr-conformer", "gnn-fraud",
    "t5-multitask", "detr-train", "wav2vec-train",
)  # fmt: skip
_FINE_TUNING = (
    "lora-support-bot", "ft-mistral-legal", "ft-whisper-accents", "sft-codegen", "ft-clip-products", "dpo-chat",
    "ft-bert-intent", "lora-sql", "ft-llava-docs", "qlora-medical",
)  # fmt: skip
_HPC = (
    ("lammps-melt", "/opt/lammps/bin/lmp", "-in", "in.melt"),
    ("gromacs-membrane", "/opt/gromacs/bin/gmx", "mdrun", "-deffnm", "membrane"),
    ("namd-spike", "/opt/namd/namd3", "+p8", "spike.namd"),
    ("cp2k-water", "/opt/cp2k/bin/cp2k.psmp", "-i", "water.inp"),
    ("qe-phonons", "/opt/qe/bin/pw.x", "-in", "scf.in"),
    ("amber-md", "/opt/amber/bin/pmemd.cuda", "-O", "-i", "md.in"),
    ("openfoam-les", "/opt/openfoam/bin/pisoFoam", "-parallel"),
    ("hoomd-glass", "/opt/hoomd/bin/hoomd", "glass.py"),
)  # fmt: skip
_NATIVE = (
    ("cuda_sim", "/home/{user}/bin/cuda_sim", "--steps", "100000"),
    ("lbm_solver", "/home/{user}/lbm/lbm_solver", "-c", "cavity.cfg"),
    ("nbody", "/home/{user}/src/nbody/nbody", "-benchmark", "-numbodies=2000000"),
    ("raytrace", "/home/{user}/bin/raytrace", "--scene", "city.json"),
)  # fmt: skip
_NAMESPACES = {
    ON: ("search", "recsys", "nlp", "vision", "speech", "fraud", "ads"),
    BATCH: ("data-eng", "recsys", "search"),
    TRAIN: ("ml-research", "ml-platform"),
    FT: ("nlp", "ml-research", "applied-ml"),
    NB: ("notebooks",),
    HPC: ("research",),
}


class _Namer:
    """Draws names from the pools, never the same workload name twice in one fleet."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()
        self.users = [uid for uid in USERS if 1000 < uid < 2000]
        self._next_user = 0
        self.slurm_job = 40_000 + rng.randrange(10_000)

    def unique(self, name: str) -> str:
        candidate, n = name, 2
        while candidate in self.used:
            candidate, n = f"{name}-{n}", n + 1
        self.used.add(candidate)
        return candidate

    def user(self) -> int:
        """The next user: the named ones in turn (three rounds), then (a big fleet) directory users the nodes' passwd
        lacks, whose processes show their uid as the user name, as on a real node."""
        n = self._next_user
        self._next_user += 1
        named = len(self.users)
        return self.users[n % named] if n < 3 * named else 2000 + n - 3 * named

    def identity(
        self, archetype: Archetype, flavour: str, forced: IdentityKind | None, namespace: str = ""
    ) -> Identity:
        rng = self.rng
        if flavour == "kubernetes":
            return self._kubernetes(archetype, forced, namespace)
        kind = forced
        if kind is None:
            kind = {
                ON: rng.choice((IdentityKind.SYSTEMD, IdentityKind.CONTAINER)),
                BATCH: IdentityKind.CONTAINER,
                TRAIN: IdentityKind.SLURM,
                FT: IdentityKind.SLURM,
                NB: IdentityKind.PROCESS,
                HPC: rng.choice((IdentityKind.SLURM, IdentityKind.SLURM, IdentityKind.PROCESS)),
            }[archetype]
        uid = self.user()
        user = USERS.get(uid, str(uid))
        if kind is IdentityKind.SYSTEMD:
            base = rng.choice(("triton", "tgi", "vllm", "torchserve"))
            unit = self.unique(base) + ".service"
            argv = {
                "triton": ("/opt/tritonserver/bin/tritonserver", "--model-repository=/srv/models"),
                "tgi": ("/usr/local/bin/text-generation-launcher", "--port", "8080"),
                "vllm": ("/usr/bin/python3", "-m", "vllm.entrypoints.openai.api_server"),
                "torchserve": ("/usr/bin/java", "org.pytorch.serve.ModelServer"),
            }[base]
            return Identity(kind, unit, argv, uid=0, unit=unit)
        if kind is IdentityKind.CONTAINER:
            pool = _SERVICES if archetype is ON else _BATCH
            name = self.unique(rng.choice(pool))
            return Identity(
                kind, name, ("/usr/bin/python3", "serve.py" if archetype is ON else "run.py"), container=name
            )
        if kind is IdentityKind.SLURM:
            if archetype is HPC:
                job, *command = rng.choice(_HPC)
            else:
                job = rng.choice(_TRAINING if archetype is TRAIN else _FINE_TUNING)
                command = ["/usr/bin/python3", "train.py", "--config", f"{job}.yaml"]
            name = self.unique(job)
            self.slurm_job += 1000
            return Identity(kind, name, tuple(command), uid=uid, slurm_job_base=self.slurm_job)
        for _ in range(len(self.users) * len(_NATIVE)):
            # <user>/<comm> must be unique as it is: pick another user (or binary), never suffix the name
            if archetype is NB:
                argv = ("/opt/conda/bin/python3", "-m", "ipykernel_launcher", "-f", f"/home/{user}/.local/kernel.json")
            else:
                _comm, *rest = rng.choice(_NATIVE)
                argv = (rest[0].format(user=user), *rest[1:])
            ident = Identity(IdentityKind.PROCESS, f"{user}/{argv[0].rsplit('/', 1)[-1][:15]}", argv, uid=uid)
            if ident.name not in self.used:
                self.used.add(ident.name)
                return ident
            uid = self.user()
            user = USERS.get(uid, str(uid))
        raise BadInput("scenario has more bare processes than distinct <user>/<command> names")

    def _kubernetes(self, archetype: Archetype, forced: IdentityKind | None, namespace: str = "") -> Identity:
        rng = self.rng
        drawn = rng.choice(_NAMESPACES[archetype])
        namespace = namespace or drawn
        if archetype is NB:
            # JupyterHub's KubeSpawner makes bare pods jupyter-<user>, or jupyter-<user>--<server> for named servers
            uid = self.user()
            pod = f"jupyter-{USERS.get(uid, str(uid))}"
            for server in ("", "--gpu", "--llm", "--exp", "--big", "--test"):
                if f"{namespace}/{pod}{server}" not in self.used:
                    pod += server
                    break
            name = self.unique(f"{namespace}/{pod}")
            kernel = ("/opt/conda/bin/python3", "-m", "ipykernel_launcher", "-f", "/home/jovyan/.local/kernel.json")
            return Identity(IdentityKind.BARE_POD, name, kernel, uid=1000, namespace=namespace, owner=pod,
                            container="notebook", qos=QoS.BURSTABLE)  # fmt: skip
        spec: dict[Archetype, tuple[tuple[str, ...], IdentityKind, tuple[str, ...], str]] = {
            ON: (_SERVICES, IdentityKind.DEPLOYMENT, ("/opt/tritonserver/bin/tritonserver", "--model-repository=/m"),
                 "server"),
            BATCH: (_BATCH, IdentityKind.CRONJOB, ("/usr/bin/python3", "score.py"), "worker"),
            TRAIN: (_TRAINING, IdentityKind.JOB, ("/usr/bin/python3", "-m", "torch.distributed.run", "train.py"),
                    "pytorch"),
            FT: (_FINE_TUNING, IdentityKind.JOB, ("/usr/bin/python3", "finetune.py"), "trainer"),
            HPC: (tuple(h[0] for h in _HPC), IdentityKind.JOB, ("/opt/mpi/bin/mpirun", "-np", "1", "solver"), "solver"),
        }  # fmt: skip
        pool, kind, argv, container = spec[archetype]
        if archetype is ON and rng.random() < 0.25:
            kind = IdentityKind.STATEFULSET
        kind = forced or kind
        base = rng.choice(pool)
        owner = base
        while f"{namespace}/{owner}" in self.used:
            owner = f"{base}-{rng.randrange(2, 99)}"
        name = self.unique(f"{namespace}/{owner}")
        qos = QoS.GUARANTEED if archetype in (TRAIN, HPC) else QoS.BURSTABLE
        uid = 0 if rng.random() < 0.6 else 1000
        return Identity(kind, name, argv, uid=uid, namespace=namespace, owner=owner, container=container, qos=qos)


# --- building ---------------------------------------------------------------------------------------------------


@dataclass
class _Slot:
    device: Device
    tenants: tuple[Tenant, ...]


@dataclass
class _Builder:
    seed: int
    namer: _Namer
    nodes: list[Node] = field(default_factory=list)
    workload_count: int = 0

    def build_node(self, plan: NodePlan, name: str, gpu_count: int, clock: Clock, faults: Faults) -> Node:
        gpu_model = catalogue_model(plan.model)
        gpus: list[Gpu] = []
        slots: list[_Slot] = []
        for index, gp in enumerate(plan.gpus[:gpu_count]):
            gpu = Gpu(name, index, gpu_model, self.seed)
            if gp.mig:
                splits = {i: s.split for i, s in enumerate(gp.mig) if s.split}
                gpu.configure_mig([s.profile for s in gp.mig], splits)
                # map each slot to its GPU instance: configure_mig placed them; match in order of request
                taken: set[int] = set()
                for s in gp.mig:
                    gi = next(g for g in gpu.instances if g.profile.name == s.profile and g.id not in taken)
                    taken.add(gi.id)
                    if s.mps:
                        gpu.mps_instances.add(gi.placement.start)
                    ci_tenants = s.ci_tenants if s.split else (s.tenants,)
                    for ci, tenants in zip(gi.compute_instances, ci_tenants, strict=True):
                        slots.append(_Slot(Device(gpu, gi, ci, mps=s.mps), tenants))
            else:
                gpu.mps = gp.mps
                slots.append(_Slot(Device(gpu, mps=gp.mps), gp.tenants))
            gpus.append(gpu)
        tz_s = plan.tz_hours * HOUR
        members = self._members(plan, name, slots, tz_s)
        node = Node(name, plan.platform, gpus, members, tz_s, clock, faults)
        self.nodes.append(node)
        return node

    def _members(self, plan: NodePlan, node: str, slots: list[_Slot], tz_s: float) -> list[Member]:
        groups: dict[str, Workload] = {}
        behaviours: dict[str, Behaviour] = {}
        members: list[Member] = []
        replicas: dict[str, int] = {}
        for slot in slots:
            n = len(slot.tenants)
            budget = slot.device.memory_bytes * MEMORY_HEADROOM / max(1, n)
            for tenant in slot.tenants:
                group = f"{node}:{tenant.group}" if tenant.group else f"{node}:#{self.workload_count}"
                workload = groups.get(group)
                if workload is None:
                    self.workload_count += 1
                    identity = self.namer.identity(tenant.archetype, plan.flavour, tenant.kind, tenant.namespace)
                    workload = Workload(f"w{self.workload_count:04d}", identity, tenant.archetype)
                    groups[group] = workload
                    rng = np.random.default_rng(stable_key(self.seed, workload.key, "behaviour"))
                    behaviours[group] = archetypes.draw(
                        tenant.archetype,
                        rng,
                        stable_key(self.seed, workload.key),
                        budget_bytes=budget,
                        # co-tenants are sized to share the device, with some oversubscription as teams do;
                        # MPS clients are held to their active-thread share, so they cannot oversubscribe
                        capacity=slot.device.capacity * min(1.0, (1.0 if slot.device.mps else 1.5) / max(1, n)),
                        tz_s=tz_s,
                    )
                base = behaviours[group]
                replica = replicas.get(group, 0)
                replicas[group] = replica + 1
                behaviour = base
                if tenant.archetype in (ON, NB) and replica:
                    # replicas of a service see independent noise; ranks of a job move together
                    behaviour = _replace(base, key=stable_key(self.seed, workload.key, replica))
                peak = archetypes.peak_memory(behaviour)
                if peak > budget:
                    scale = budget / peak
                    behaviour = _replace(behaviour, memory=behaviour.memory * scale,
                                         memory_low=behaviour.memory_low * scale)  # fmt: skip
                members.append(Member(workload, replica, slot.device.key, behaviour))
        return members


def _replace(b: Behaviour, **changes: Any) -> Behaviour:
    from dataclasses import replace

    return replace(b, **changes)


def _t(archetype: Archetype, n: int = 1, group: str = "", namespace: str = "") -> tuple[Tenant, ...]:
    return tuple(Tenant(archetype, group, namespace=namespace) for _ in range(n))


def _mig(*slots: MigSlot) -> GpuPlan:
    return GpuPlan(mig=slots)


def _whole(*tenants: Tenant, mps: bool = False) -> GpuPlan:
    return GpuPlan(tenants=tenants, mps=mps)


def _mixed_plans() -> list[NodePlan]:
    s = MigSlot
    h100 = NodePlan("sim-h100", "H100-80GB", "kubernetes", K8S_CONTAINERD, -5, (
        _mig(s("3g.40gb", _t(ON)), s("2g.20gb", _t(ON)), s("1g.10gb", _t(ON, group="a")),
             s("1g.10gb", _t(ON, group="a"))),
        _mig(*(s("1g.10gb", t) for t in (_t(ON, group="b"), _t(ON, group="b"), _t(ON, group="b"), _t(NB, 2),
                                         _t(BATCH), _t(NB), _t(ON)))),
        _mig(s("4g.40gb", _t(FT)), s("3g.40gb", _t(ON, 3), mps=True)),
        _mig(s("2g.20gb", _t(BATCH)), s("2g.20gb", _t(FT)), s("2g.20gb", _t(ON)), s("1g.10gb", _t(NB, 2))),
        _whole(*_t(TRAIN, group="ddp")),
        _whole(*_t(TRAIN, group="ddp")),
        # one team's small services behind one MPS server (where MPS packs more than MIG's sevenths)
        _whole(*_t(ON, 12, namespace="search"), mps=True),
        _whole(*_t(NB, 6), *_t(BATCH)),
    ))  # fmt: skip
    a100_80 = NodePlan("sim-a100-80gb", "A100-80GB", "kubernetes", K8S_CRIO, -5, (
        _whole(*_t(TRAIN, group="ddp4")),
        _whole(*_t(TRAIN, group="ddp4")),
        _whole(*_t(TRAIN, group="ddp4")),
        _whole(*_t(TRAIN, group="ddp4")),
        _mig(s("3g.40gb", _t(BATCH)), s("3g.40gb", _t(FT))),
        _mig(*(s("1g.10gb", _t(ON, group="r")) for _ in range(4)), *(s("1g.10gb", _t(ON)) for _ in range(2)),
             s("1g.10gb", _t(NB))),
        _whole(*_t(NB, 6), *_t(ON, 2)),
        _whole(*_t(ON)),
    ))  # fmt: skip
    a100_40 = NodePlan("sim-a100-40gb", "A100-40GB", "kubernetes", K8S_DOCKER_V1, -8, (
        _mig(*(s("1g.5gb", _t(NB, 2 if i < 4 else 1)) for i in range(7))),
        _mig(s("3g.20gb", split=(1, 1, 1), ci_tenants=(_t(ON), _t(ON), _t(ON))), s("3g.20gb", _t(BATCH))),
        _whole(*_t(FT)),
        _whole(*_t(FT)),
        _whole(*_t(BATCH, 4), mps=True),
        _whole(*_t(ON, 2), *_t(NB, 3), *_t(BATCH)),
        _whole(*_t(HPC)),
        _whole(*_t(HPC)),
    ))  # fmt: skip
    a30 = NodePlan("sim-a30", "A30-24GB", "bare", BARE_V1, -5, (
        _mig(s("2g.12gb", _t(ON)), s("1g.6gb", _t(NB)), s("1g.6gb", _t(BATCH))),
        _mig(s("4g.24gb", _t(FT))),
        _whole(*_t(HPC, group="mpi")),
        _whole(*_t(HPC, group="mpi")),
        _whole(*_t(HPC)),
        _whole(*_t(TRAIN)),
        _whole(*_t(HPC), *_t(NB, 2), *_t(BATCH)),
        _whole(*_t(ON, 5), mps=True),
    ))  # fmt: skip
    h200 = NodePlan("sim-h200", "H200-141GB", "kubernetes", K8S_CONTAINERD, 1, (
        _whole(*_t(TRAIN, group="ddp")),
        _whole(*_t(TRAIN, group="ddp")),
        _mig(s("3g.71gb", _t(ON)), s("3g.71gb", _t(ON, 2), mps=True)),
        _whole(*_t(ON, 4), *_t(NB, 2), *_t(FT)),
    ))  # fmt: skip
    # The commonest waste on a real fleet: a whole GPU per team for a service, a notebook or a nightly job that
    # uses a fraction of it. These nodes are what the advisor finds the most GPUs to give back on.
    h100_dedicated = NodePlan("sim-h100", "H100-80GB", "kubernetes", K8S_CONTAINERD, -5, (
        *(_whole(*_t(ON)) for _ in range(4)), _whole(*_t(NB)), _whole(*_t(NB)), _whole(*_t(BATCH)), _whole(*_t(FT)),
    ))  # fmt: skip
    a100_dedicated = NodePlan("sim-a100-80gb", "A100-80GB", "kubernetes", K8S_CRIO, -5, (
        *(_whole(*_t(ON)) for _ in range(4)), _whole(*_t(NB)), _whole(*_t(NB)), _whole(*_t(BATCH)), _whole(*_t(HPC)),
    ))  # fmt: skip
    # One Blackwell node (issue 18): a B200 in MIG with its own profile names, and one training on a whole B200.
    b200 = NodePlan("sim-b200", "B200-180GB", "kubernetes", K8S_CONTAINERD, 1, (
        _mig(s("3g.90gb", _t(ON, 2), mps=True), s("2g.45gb", _t(ON)), s("1g.23gb", _t(ON)), s("1g.23gb", _t(BATCH))),
        _whole(*_t(TRAIN)),
    ))  # fmt: skip
    return [h100, a100_80, a100_40, a30, h200, h100_dedicated, a100_dedicated, b200]


def _bench_plans() -> list[NodePlan]:
    gpus = tuple(
        _mig(*(MigSlot("1g.10gb", tuple(Tenant(ON, f"g{g}-{j}") for j in range(8))) for _ in range(7)))
        for g in range(8)
    )
    return [NodePlan("sim-h100", "H100-80GB", "kubernetes", K8S_CONTAINERD, 0, gpus)]


def _single(
    prefix: str, model: str, plan: GpuPlan, platform: Platform = K8S_CONTAINERD
) -> Callable[[], list[NodePlan]]:
    return lambda: [NodePlan(prefix, model, "kubernetes", platform, 0, (plan,))]


_S = MigSlot
SCENARIOS: dict[str, tuple[str, Callable[[], list[NodePlan]]]] = {
    "mixed": ("the demo fleet: 54 GPUs (H100, A100 80GB/40GB, A30, H200, B200) on 8 nodes, every sharing mode and "
              "archetype, and whole GPUs held by small tenants", _mixed_plans),
    "bench-8xh100": ("one node, 8 x H100 80GB HBM3, each 7 x 1g.10gb (56 MIG devices), 8 processes per MIG device "
                     "(448 processes)", _bench_plans),
    "h100-mig": ("one H100 with MIG (3g.40gb running MPS, 2g.20gb, 2 x 1g.10gb) and GPM", _single(
        "sim-h100", "H100-80GB",
        _mig(_S("3g.40gb", _t(ON, 2), mps=True), _S("2g.20gb", _t(ON)), _S("1g.10gb", _t(ON)), _S("1g.10gb")))),
    "a100-mig": ("one A100 80GB with MIG: 3g.40gb split into 3 compute instances, 2g.20gb, 2 x 1g.10gb (no GPM)",
                 _single("sim-a100", "A100-80GB", _mig(
                     _S("3g.40gb", split=(1, 1, 1), ci_tenants=(_t(ON), _t(ON), _t(ON))), _S("2g.20gb", _t(ON)),
                     _S("1g.10gb", _t(ON)), _S("1g.10gb", _t(NB))), K8S_CRIO)),
    "timeslice": ("one A100 80GB time-sliced between 3 services and a notebook", _single(
        "sim-a100", "A100-80GB", _whole(*_t(ON, 3), *_t(NB)), K8S_DOCKER_V1)),
    "mps": ("one H100 (no MIG) running MPS with 3 client services", _single(
        "sim-h100", "H100-80GB", _whole(*_t(ON, 3), mps=True))),
    "exclusive": ("one A30 running one service alone", _single("sim-a30", "A30-24GB", _whole(*_t(ON)))),
    "b200-mig": ("one B200 (Blackwell) with MIG: 3g.90gb running MPS, 2g.45gb, 2 x 1g.23gb, and GPM", _single(
        "sim-b200", "B200-180GB",
        _mig(_S("3g.90gb", _t(ON, 2), mps=True), _S("2g.45gb", _t(ON)), _S("1g.23gb", _t(ON)), _S("1g.23gb", _t(NB))))),
    "h100nvl-mig": ("one H100 NVL 94GB with MIG: 4g.47gb, 2g.24gb, 1g.24gb", _single(
        "sim-h100nvl", "H100-NVL-94GB",
        _mig(_S("4g.47gb", _t(FT)), _S("2g.24gb", _t(ON)), _S("1g.24gb", _t(BATCH))))),
}  # fmt: skip


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def build_scenario(
    name: str,
    *,
    seed: int = 0,
    gpus: int | None = None,
    clock: Clock | None = None,
    faults: Faults | None = None,
) -> Fleet:
    """The fleet of scenario ``name`` (see ``SCENARIOS``), deterministic for ``seed``; ``gpus`` scales it.

    ``clock`` defaults to the wall clock (values move in real time); pass a ``ManualClock`` in tests. ``faults``
    defaults to none (set rates later with ``fleet.faults.set(kind, rate)``).
    """
    if name not in SCENARIOS:
        raise BadInput(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
    if gpus is not None and gpus < 1:
        raise BadInput(f"a fleet needs at least one GPU (got gpus={gpus})")
    plans = SCENARIOS[name][1]()
    clock = clock or WallClock()
    faults = faults or Faults(seed=seed)
    builder = _Builder(seed, _Namer(random.Random(stable_key("names", seed))))
    target = gpus if gpus is not None else sum(len(p.gpus) for p in plans)
    counts: dict[str, int] = {}
    placed = 0
    i = 0
    while placed < target:
        plan = plans[i % len(plans)]
        i += 1
        number = counts.get(plan.prefix, 0)
        counts[plan.prefix] = number + 1
        take = min(len(plan.gpus), target - placed)
        builder.build_node(plan, f"{plan.prefix}-{number}", take, clock, faults)
        placed += take
    return Fleet(name, seed, builder.nodes, clock, faults)

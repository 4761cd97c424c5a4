"""Hand-built recommendations for a mixed A100/H100 fleet: MIG, MPS, time-slicing, whole GPUs, an outlier and an
unplaced workload, with numbers of the size a real fleet shows.

``this_week()`` is the recommendation the report tests render; ``last_week()`` is the same fleet a week earlier,
with the differences a "what changed" section must find: a workload that moved from MPS to MIG, a new one, a gone
one, fewer GPUs needed on H100 and a changed MIG profile. Built by hand so that the report and delivery are tested
independently of the decision engine; the schedule tests run the real pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from advisor.model import (
    ClassEnvelope,
    ClassRecommendation,
    Configs,
    Decision,
    FleetPlan,
    MigInstance,
    Mode,
    ModelPlan,
    PlannedGpu,
    Recommendation,
    Risk,
    Unplaced,
    Utilisation,
    Window,
    WorkloadFeatures,
    WorkloadRecommendation,
)
from slicewise.history_schema import Sharing

GIB = 1024**3
MIB = 1024**2
A100 = "NVIDIA A100-SXM4-80GB"
H100 = "NVIDIA H100 80GB HBM3"


@dataclass(frozen=True)
class Usage:
    """What one workload did over the window, in the units a person reads."""

    name: str
    model: str
    peak_gib: float
    p99_gib: float
    p95: float | None  # compute, fraction of a whole GPU
    mean: float | None
    duty: float | None = None
    burst: float | None = None
    sharing: Sharing = Sharing.EXCLUSIVE
    profile: str = ""
    devices: int = 1


def features(u: Usage) -> WorkloadFeatures:
    peak, p99 = int(u.peak_gib * GIB), int(u.p99_gib * GIB)
    known = u.p95 is not None and u.mean is not None
    return WorkloadFeatures(
        workload=u.name,
        gpu_model=u.model,
        namespace=u.name.split("/")[0],
        samples=20_160 * u.devices,
        coverage=0.98,
        memory_peak_bytes=peak,
        memory_p99_bytes=p99,
        memory_p95_bytes=int(p99 * 0.97),
        memory_mean_bytes=int(p99 * 0.85),
        compute_peak_gpu_fraction=min(1.0, u.p95 * 1.3) if u.p95 is not None else None,
        compute_p99_gpu_fraction=min(1.0, u.p95 * 1.1) if u.p95 is not None else None,
        compute_p95_gpu_fraction=u.p95,
        compute_mean_gpu_fraction=u.mean,
        duty_cycle=u.duty if u.duty is not None else (0.9 if known else None),
        burstiness=u.burst if u.burst is not None else (-0.4 if known else None),
        process_count=1,
        sharing=u.sharing,
        mig_profile=u.profile,
        devices=u.devices,
    )


def risk(level: str, mem: float, compute: float | None, summary: str, contention: float | None = None) -> Risk:
    return Risk(level, mem, compute, summary, contention)


MIG_1G_H100 = Decision(
    mode=Mode.MIG,
    gpu_model=H100,
    profile="1g.10gb",
    memory_limit_bytes=9984 * MIB,
    compute_limit_gpu_fraction=16 / 132,
    replicas=None,
    mps_active_thread_percentage=None,
    headroom=0.15,
    reasons=(
        "Sized for a memory p99 of 7.6 GiB (peak 8.4 GiB) and compute p95 of 0.10 GPU, with 15 % headroom.",
        "MIG 1g.10gb (9.8 GiB, 0.12 of the GPU's SMs) is the smallest slice that covers it; 7 fit on one GPU.",
        "MIG gives each workload its own memory and SMs: a neighbour cannot slow it down or run it out of memory.",
        "Time-slicing would pack no more (4 per GPU), so MIG's isolation comes free.",
    ),
    risk=risk(
        "low",
        0.0,
        0.004,
        "No past sample exceeded the 9.8 GiB memory limit; 0.4 % of samples wanted more than the 0.12 of the GPU's "
        "SMs it gets (they would have run slower, not failed).",
    ),
)

MPS_H100 = Decision(
    mode=Mode.MPS,
    gpu_model=H100,
    profile=None,
    memory_limit_bytes=20389 * MIB,
    compute_limit_gpu_fraction=0.25,
    replicas=4,
    mps_active_thread_percentage=25,
    headroom=0.15,
    reasons=(
        "Sized for a memory p99 of 14.2 GiB (peak 15.8 GiB) and compute p95 of 0.21 GPU, with 15 % headroom.",
        "Its workloads trust each other, and MIG is too coarse for them (the smallest MIG slice that covers them "
        "gives 1.8x the compute they need): MPS gives each of 4 clients 25 % of the SMs and 19.9 GiB of pinned "
        "memory, the even split the device plugin's MPS mode makes.",
        "That packs 4 per GPU against 2 per GPU with MIG 2g.20gb.",
        "MPS has no fault isolation: a fatal error in one client ends all 4 on the GPU.",
    ),
    risk=risk(
        "medium",
        0.0,
        0.011,
        "No past sample exceeded the 19.9 GiB memory limit; 1.1 % of samples wanted more than the 0.25 of the GPU's "
        "SMs it gets; MPS has no fault isolation: one client's fatal error ends all 4 on the GPU.",
    ),
)

TIMESLICE_A100 = Decision(
    mode=Mode.TIMESLICE,
    gpu_model=A100,
    profile=None,
    memory_limit_bytes=20480 * MIB,
    compute_limit_gpu_fraction=1.0,
    replicas=4,
    mps_active_thread_percentage=None,
    headroom=0.15,
    reasons=(
        "Sized for a memory p99 of 14.9 GiB (peak 17.1 GiB) and compute p95 of 0.31 GPU, with 15 % headroom.",
        "They compute 7 % of the time in short bursts (burstiness 0.62): time-slicing lends each burst the whole "
        "GPU, and 4 fit in one GPU's memory.",
        "MIG was not chosen: a 1g.20gb slice would cap each burst at 0.13 of the GPU.",
    ),
    risk=risk(
        "medium",
        0.0,
        None,
        "No past sample exceeded the 20.0 GiB memory limit; a burst finds another tenant busy 6.8 % of the time, and "
        "with no memory isolation a tenant growing past its peak can OOM all 4.",
        contention=0.068,
    ),
)

MIG_3G_A100 = Decision(
    mode=Mode.MIG,
    gpu_model=A100,
    profile="3g.40gb",
    memory_limit_bytes=40192 * MIB,
    compute_limit_gpu_fraction=42 / 108,
    replicas=None,
    mps_active_thread_percentage=None,
    headroom=0.15,
    reasons=(
        "Sized for a memory p99 of 33.0 GiB (peak 35.6 GiB), with 15 % headroom; compute was not measured.",
        "MIG 3g.40gb (39.2 GiB, 0.39 of the GPU's SMs) is the smallest slice that covers it; 2 fit on one GPU.",
        "Compute is unknown on A100 MIG without dcgm-exporter's profiling metrics: sized by memory only.",
    ),
    risk=risk(
        "medium",
        0.0,
        None,
        "No past sample exceeded the 39.2 GiB memory limit; compute was not measured, so the chance of a slowdown "
        "is unknown.",
    ),
)


def exclusive(model: str, memory_mib: int, lead: str) -> Decision:
    return Decision(
        mode=Mode.EXCLUSIVE,
        gpu_model=model,
        profile=None,
        memory_limit_bytes=memory_mib * MIB,
        compute_limit_gpu_fraction=1.0,
        replicas=None,
        mps_active_thread_percentage=None,
        headroom=0.15,
        reasons=(lead, "It needs a whole GPU: no MIG slice short of 7g.80gb holds its memory with headroom."),
        risk=risk(
            "low",
            0.0,
            0.0,
            "No past sample exceeded the memory limit; it keeps a whole GPU, so it risks nothing it does not risk "
            "today.",
        ),
    )


TRAIN_H100 = exclusive(H100, 81559, "Sized for a memory p99 of 68.3 GiB (peak 71.2 GiB) and compute p95 of 0.94 GPU.")
TRAIN_A100 = exclusive(A100, 81920, "Sized for a memory p99 of 61.0 GiB (peak 64.9 GiB) and compute p95 of 0.88 GPU.")
CFD_A100 = exclusive(A100, 81920, "Sized for a memory p99 of 49.8 GiB (peak 52.3 GiB) and compute p95 of 0.71 GPU.")
MOE_UNPLACED = Decision(
    mode=Mode.EXCLUSIVE,
    gpu_model=H100,
    profile=None,
    memory_limit_bytes=81559 * MIB,
    compute_limit_gpu_fraction=1.0,
    replicas=None,
    mps_active_thread_percentage=None,
    headroom=0.15,
    reasons=(
        "Its 78.9 GiB peak plus 15 % headroom (90.7 GiB) is more than any GPU model in the fleet holds.",
        "It is left as it runs today and reported under the plan's unplaced workloads.",
    ),
    risk=risk("high", 0.0, None, "Not planned: nothing changes for it, and nothing was checked."),
)

ONLINE = [
    Usage("serving/chat-api", H100, 8.4, 7.6, 0.10, 0.06, sharing=Sharing.MIG, profile="2g.20gb"),
    Usage("serving/embeddings", H100, 6.3, 5.9, 0.07, 0.04, sharing=Sharing.MIG, profile="1g.20gb"),
    Usage("serving/rerank", H100, 5.1, 4.8, 0.06, 0.03, sharing=Sharing.MIG, profile="1g.20gb"),
    Usage("serving/ocr", H100, 7.2, 6.6, 0.09, 0.05, sharing=Sharing.MPS),
    Usage("serving/moderation", H100, 4.4, 4.1, 0.05, 0.03, sharing=Sharing.MIG, profile="1g.10gb"),
    Usage("serving/translate", H100, 7.9, 7.1, 0.08, 0.05, sharing=Sharing.EXCLUSIVE),
]
SPEECH = [
    Usage("speech/asr-streaming", H100, 15.8, 14.2, 0.21, 0.15, sharing=Sharing.MPS),
    Usage("speech/tts", H100, 12.1, 11.0, 0.17, 0.11, sharing=Sharing.MPS),
    Usage("speech/diarize", H100, 11.4, 10.6, 0.15, 0.09, sharing=Sharing.MPS),
    Usage("speech/vad", H100, 3.2, 3.0, 0.04, 0.02, sharing=Sharing.MPS),
]
NOTEBOOKS = [
    Usage(f"research/nb-{who}", A100, peak, peak * 0.87, p95, 0.03, 0.07, 0.62, Sharing.TIMESLICE)
    for who, peak, p95 in [
        ("alice", 17.1, 0.31),
        ("bob", 12.4, 0.22),
        ("chen", 9.8, 0.18),
        ("dana", 14.6, 0.27),
        ("eve", 10.9, 0.12),
        ("farid", 16.2, 0.29),
        ("grace", 8.7, 0.09),
    ]
]
BATCH = [
    Usage("batch/sd-render", A100, 35.6, 33.0, None, None, sharing=Sharing.MIG, profile="4g.40gb"),
    Usage("batch/transcribe-archive", A100, 28.4, 26.9, None, None, sharing=Sharing.MIG, profile="3g.40gb"),
    Usage("batch/doc-embed", A100, 30.2, 27.5, None, None, sharing=Sharing.MIG, profile="7g.80gb"),
]
TRAINING = [
    Usage("train/llm-pretrain", H100, 71.2, 68.3, 0.94, 0.83, devices=4),
    Usage("train/vision-ft", H100, 58.7, 55.1, 0.81, 0.62),
    Usage("train/recsys", A100, 64.9, 61.0, 0.88, 0.71),
]
CFD = Usage("hpc/cfd-solver", A100, 52.3, 49.8, 0.71, 0.55, 0.97, -0.7)
MOE = Usage("train/moe-giant", H100, 78.9, 77.0, 0.97, 0.9, devices=1)


def envelope(members: list[Usage]) -> ClassEnvelope:
    known = [m for m in members if m.p95 is not None and m.mean is not None]
    f = [features(m) for m in members]
    return ClassEnvelope(
        memory_peak_bytes=max(x.memory_peak_bytes for x in f),
        memory_p99_bytes=max(x.memory_p99_bytes for x in f),
        compute_p95_gpu_fraction=max(m.p95 for m in known if m.p95 is not None) if known else None,
        compute_mean_gpu_fraction=max(m.mean for m in known if m.mean is not None) if known else None,
        duty_cycle=max(x.duty_cycle for x in f if x.duty_cycle is not None) if known else None,
        burstiness=max(x.burstiness for x in f if x.burstiness is not None) if known else None,
    )


def klass(cid: str, label: str, members: list[Usage], decisions: tuple[Decision, ...]) -> ClassRecommendation:
    models = tuple(sorted({m.model for m in members}))
    return ClassRecommendation(cid, label, tuple(m.name for m in members), envelope(members), decisions, models)


def workload(u: Usage, class_id: str | None, decision: Decision, outlier: bool = False) -> WorkloadRecommendation:
    return WorkloadRecommendation(u.name, class_id, u.model, features(u), outlier, decision)


def mig_gpu(model: str, index: int, config: str, layout: list[tuple[str, int, int, str]]) -> PlannedGpu:
    instances = tuple(MigInstance(p, start, size, (w,) if w else ()) for p, start, size, w in layout)
    return PlannedGpu(
        gpu_model=model,
        index=index,
        mode=Mode.MIG,
        mig_config=config,
        mig_instances=instances,
        workloads=tuple(w for *_, w in layout if w),
        replicas=None,
        mps_active_thread_percentage=None,
        memory_committed_bytes=sum(size for _, _, size, w in layout if w) * 10 * GIB,
        compute_committed_gpu_fraction=round(sum(1 / 7 for *_, w in layout if w), 3),
    )


def shared_gpu(model: str, index: int, mode: Mode, names: list[str], replicas: int | None = None) -> PlannedGpu:
    return PlannedGpu(
        gpu_model=model,
        index=index,
        mode=mode,
        mig_config=None,
        mig_instances=(),
        workloads=tuple(names),
        replicas=replicas,
        mps_active_thread_percentage=25 if mode == Mode.MPS else None,
        memory_committed_bytes=min(80, 20 * len(names)) * GIB,
        compute_committed_gpu_fraction=min(1.0, 0.25 * len(names)),
    )


def this_week() -> Recommendation:
    end = datetime(2025, 3, 3, 7, 0, tzinfo=UTC)
    online_decisions = {u.name: MIG_1G_H100 for u in ONLINE}
    classes = (
        klass("c1", "steady online inference, small memory", ONLINE, (MIG_1G_H100,)),
        klass("c2", "bursty notebooks, mostly idle", NOTEBOOKS, (TIMESLICE_A100,)),
        klass("c3", "batch inference, medium memory", BATCH, (MIG_3G_A100,)),
        klass("c4", "steady speech services, moderate compute", SPEECH, (MPS_H100,)),
        klass("c5", "training, large memory, high SM", TRAINING, (TRAIN_A100, TRAIN_H100)),
    )
    workloads = (
        *(workload(u, "c1", online_decisions[u.name]) for u in ONLINE),
        *(workload(u, "c2", TIMESLICE_A100) for u in NOTEBOOKS),
        *(workload(u, "c3", MIG_3G_A100) for u in BATCH),
        *(workload(u, "c4", MPS_H100) for u in SPEECH),
        *(workload(u, "c5", TRAIN_H100 if u.model == H100 else TRAIN_A100) for u in TRAINING),
        workload(CFD, None, CFD_A100, outlier=True),
        workload(MOE, None, MOE_UNPLACED, outlier=True),
    )
    h100 = [
        mig_gpu(
            H100,
            0,
            "h100-80gb-7x1g.10gb",
            [("1g.10gb", i, 1, u.name) for i, u in enumerate(ONLINE)] + [("1g.10gb", 6, 1, "")],
        ),
        shared_gpu(H100, 1, Mode.MPS, [u.name for u in SPEECH], replicas=4),
        *(shared_gpu(H100, 2 + i, Mode.EXCLUSIVE, ["train/llm-pretrain"]) for i in range(4)),
        shared_gpu(H100, 6, Mode.EXCLUSIVE, ["train/vision-ft"]),
        shared_gpu(H100, 7, Mode.EXCLUSIVE, ["train/moe-giant"]),
    ]
    a100 = [
        shared_gpu(A100, 0, Mode.TIMESLICE, [u.name for u in NOTEBOOKS[:4]], replicas=4),
        shared_gpu(A100, 1, Mode.TIMESLICE, [u.name for u in NOTEBOOKS[4:]], replicas=4),
        mig_gpu(
            A100,
            2,
            "a100-80gb-2x3g.40gb",
            [("3g.40gb", 0, 4, "batch/sd-render"), ("3g.40gb", 4, 4, "batch/transcribe-archive")],
        ),
        mig_gpu(A100, 3, "a100-80gb-2x3g.40gb", [("3g.40gb", 0, 4, "batch/doc-embed"), ("3g.40gb", 4, 4, "")]),
        shared_gpu(A100, 4, Mode.EXCLUSIVE, ["train/recsys"]),
        shared_gpu(A100, 5, Mode.EXCLUSIVE, ["hpc/cfd-solver"]),
    ]
    plan = FleetPlan(
        gpus_now=20,
        gpus_needed=14,
        gpus_lower_bound=13,
        models=(
            ModelPlan(A100, 9, 6, 5, "integer program (optimal for these decisions)"),
            ModelPlan(H100, 11, 8, 8, "integer program (optimal for these decisions)"),
        ),
        gpus=(*a100, *h100),
        utilisation_before=Utilisation(memory=0.31, compute=0.22),
        utilisation_after=Utilisation(memory=0.58, compute=0.41),
        unplaced=(
            Unplaced(
                "train/moe-giant",
                H100,
                "its 78.9 GiB peak plus 15 % headroom (90.7 GiB) is more than any GPU model in the fleet holds",
            ),
        ),
    )
    return Recommendation(
        version="1",
        generated_at=end + timedelta(minutes=3),
        window=Window(start=end - timedelta(days=14), end=end),
        source="http://prometheus.monitoring.svc:9090",
        classification="StandardScaler + KMeans on 6 features; k=5 chosen by silhouette (0.58) over k=2..8; "
        "2 outliers by isolation forest.",
        classes=classes,
        workloads=workloads,
        plan=plan,
        configs=CONFIGS,
        notes=(
            "14 GPUs needed for 25 workloads, against 20 in use now (6 fewer); no plan can use fewer than 13 for "
            "these decisions.",
            "Compute is unknown for 3 workloads on NVIDIA A100-SXM4-80GB MIG (no dcgm-exporter profiling series): "
            "they are sized by memory only.",
        ),
    )


def last_week() -> Recommendation:
    """The same fleet a week earlier: serving/ocr was on MPS, speech/vad did not exist, research/nb-hugo did, H100
    needed one GPU more, and batch/doc-embed had a bigger slice."""
    now = this_week()
    ocr = next(w for w in now.workloads if w.workload == "serving/ocr")
    hugo = workload(
        Usage("research/nb-hugo", A100, 11.2, 9.9, 0.14, 0.02, 0.05, 0.66, Sharing.TIMESLICE), "c2", TIMESLICE_A100
    )
    embed = next(w for w in now.workloads if w.workload == "batch/doc-embed")
    bigger = replace(MIG_3G_A100, profile="4g.40gb", compute_limit_gpu_fraction=56 / 108)
    workloads = []
    changed = {
        ocr.workload: replace(ocr, class_id="c4", decision=MPS_H100),
        embed.workload: replace(embed, decision=bigger),
    }
    for w in now.workloads:
        if w.workload != "speech/vad":
            workloads.append(changed.get(w.workload, w))
    workloads.append(hugo)
    plan = replace(
        now.plan,
        gpus_now=21,
        gpus_needed=15,
        gpus_lower_bound=14,
        models=(
            ModelPlan(A100, 9, 6, 5, "integer program (optimal for these decisions)"),
            ModelPlan(H100, 12, 9, 9, "integer program (optimal for these decisions)"),
        ),
        utilisation_before=Utilisation(memory=0.30, compute=0.21),
        utilisation_after=Utilisation(memory=0.54, compute=0.38),
    )
    return replace(
        now,
        generated_at=now.generated_at - timedelta(days=7),
        window=Window(now.window.start - timedelta(days=7), now.window.end - timedelta(days=7)),
        workloads=tuple(workloads),
        plan=plan,
    )


CONFIGS = Configs(
    mig_parted="""\
# NVIDIA mig-parted config written by slicewise: one named config per MIG geometry in the plan.
version: v1
mig-configs:
  all-disabled:
  - devices: all
    mig-enabled: false
  a100-80gb-2x3g.40gb:
  - device-filter: '0x20B210DE'
    devices: all
    mig-enabled: true
    mig-devices:
      3g.40gb: 2
  h100-80gb-7x1g.10gb:
  - device-filter: '0x233010DE'
    devices: all
    mig-enabled: true
    mig-devices:
      1g.10gb: 7
""",
    device_plugin="""\
# NVIDIA k8s device plugin sharing configs written by slicewise.
version: v1
sharing:
  timeSlicing:
    resources:
    - name: nvidia.com/gpu
      replicas: 4
""",
    resource_requests="""\
# Per-workload GPU requests written by slicewise.
serving/chat-api:
  nvidia.com/mig-1g.10gb: 1
research/nb-alice:
  nvidia.com/gpu.shared: 1
train/llm-pretrain:
  nvidia.com/gpu: 4
""",
)

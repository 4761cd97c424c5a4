"""Hand-built workload features with realistic numbers, for the decide, plan, configs and output tests.

Each archetype below is what a platform team sees in a week of history (memory in GiB, compute as fractions of a
whole GPU): online inference is steady and mid-sized, notebooks idle with bursts, training fills a GPU.
"""

from __future__ import annotations

from advisor.model import (
    QUANTILE_LEVELS,
    ClassEnvelope,
    Classification,
    WorkloadClass,
    WorkloadFeatures,
)
from slicewise.history_schema import Sharing

GIB = 1024**3
H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"
A100_40 = "NVIDIA A100-SXM4-40GB"
A30 = "NVIDIA A30"
H200 = "NVIDIA H200"


def features(
    workload: str,
    gpu_model: str = H100,
    *,
    peak_gib: float,
    p99_gib: float | None = None,
    mean_gib: float | None = None,
    c95: float | None = 0.1,
    cpeak: float | None = None,
    cmean: float | None = None,
    duty: float | None = None,
    namespace: str | None = None,
    sharing: Sharing = Sharing.EXCLUSIVE,
    mig_profile: str = "",
    samples: int = 20_160,
) -> WorkloadFeatures:
    """Features consistent with themselves: quantiles rise to the peak, means sit below the p95."""
    peak = int(peak_gib * GIB)
    p99 = int((p99_gib if p99_gib is not None else peak_gib * 0.97) * GIB)
    mean = int((mean_gib if mean_gib is not None else peak_gib * 0.8) * GIB)
    p95 = (p99 + mean) // 2
    memq = {0.5: mean, 0.9: p95 - (p95 - mean) // 3, 0.95: p95, 0.99: p99, 0.999: (p99 + peak) // 2}
    computed = c95 is not None
    cpk = cpeak if cpeak is not None else (min(1.0, c95 * 1.3) if c95 is not None else None)
    cm = cmean if cmean is not None else (c95 * 0.6 if c95 is not None else None)
    cq = None
    c99 = None
    if computed:
        assert c95 is not None and cpk is not None and cm is not None
        c99 = (c95 + cpk) / 2
        cq = {0.5: cm, 0.9: (cm + c95) / 2, 0.95: c95, 0.99: c99, 0.999: (c99 + cpk) / 2}
    return WorkloadFeatures(
        workload=workload,
        gpu_model=gpu_model,
        namespace=namespace if namespace is not None else workload.split("/", maxsplit=1)[0],
        samples=samples,
        coverage=0.98,
        memory_peak_bytes=peak,
        memory_p99_bytes=p99,
        memory_p95_bytes=p95,
        memory_mean_bytes=mean,
        compute_peak_gpu_fraction=cpk,
        compute_p99_gpu_fraction=c99,
        compute_p95_gpu_fraction=c95,
        compute_mean_gpu_fraction=cm,
        duty_cycle=(duty if duty is not None else (0.9 if computed else None)),
        burstiness=(None if not computed else 1.2),
        process_count=1,
        sharing=sharing,
        mig_profile=mig_profile,
        memory_quantiles={q: memq[q] for q in QUANTILE_LEVELS},
        compute_quantiles=None if cq is None else {q: cq[q] for q in QUANTILE_LEVELS},
    )


def online_inference(i: int, gpu_model: str = H100) -> WorkloadFeatures:
    """A steady model server: 14–17 GiB, p95 compute ~0.2 of a GPU, busy nearly always."""
    return features(
        f"serving/ranker-{i}", gpu_model, peak_gib=14 + (i % 4), c95=0.18 + 0.01 * (i % 3), cmean=0.12, duty=0.97
    )


def notebook(i: int, gpu_model: str = H100) -> WorkloadFeatures:
    """A Jupyter notebook: 4–7 GiB held, busy in 5–8 % of samples, bursts to most of the GPU."""
    return features(
        f"research/notebook-{i}",
        gpu_model,
        peak_gib=4 + (i % 4),
        c95=0.55,
        cpeak=0.9,
        cmean=0.03,
        duty=0.05 + 0.01 * (i % 4),
    )


def training(i: int, gpu_model: str = H100) -> WorkloadFeatures:
    """Pre-training: 60–70 GiB, p95 compute ~0.95."""
    return features(f"train/llm-{i}", gpu_model, peak_gib=60 + (i % 3) * 5, c95=0.95, cpeak=1.0, cmean=0.85, duty=0.99)


def batch_inference(i: int, gpu_model: str = H100) -> WorkloadFeatures:
    """Embedding jobs of one team: small (3–4 GiB), moderate compute, one namespace: MPS candidates."""
    return features(
        f"embed/batch-{i}", gpu_model, peak_gib=3 + 0.3 * (i % 3), c95=0.08 + 0.01 * (i % 2), cmean=0.05, duty=0.8
    )


def a100_mig_unknown(i: int) -> WorkloadFeatures:
    """A service on A100 MIG 3g.40gb: memory measured, compute not (no GPM on Ampere, no dcgm-exporter)."""
    return features(
        f"serving/legacy-{i}",
        A100,
        peak_gib=12 + i,
        c95=None,
        sharing=Sharing.MIG,
        mig_profile="3g.40gb",
    )


def envelope(members: list[WorkloadFeatures]) -> ClassEnvelope:
    known = [m for m in members if m.compute_known]
    return ClassEnvelope(
        memory_peak_bytes=max(m.memory_peak_bytes for m in members),
        memory_p99_bytes=max(m.memory_p99_bytes for m in members),
        compute_p95_gpu_fraction=max((m.compute_p95_gpu_fraction or 0.0) for m in known) if known else None,
        compute_mean_gpu_fraction=max((m.compute_mean_gpu_fraction or 0.0) for m in known) if known else None,
        duty_cycle=max((m.duty_cycle or 0.0) for m in known) if known else None,
        burstiness=None,
    )


def classify_by_prefix(feats: list[WorkloadFeatures], outliers: tuple[str, ...] = ()) -> Classification:
    """The classification a good clusterer gives these archetypes: one class per workload-name prefix."""
    groups: dict[str, list[WorkloadFeatures]] = {}
    outlier_keys = []
    for f in feats:
        if f.workload in outliers:
            outlier_keys.append(f.key)
            continue
        groups.setdefault(f.workload.rsplit("-", 1)[0], []).append(f)
    classes = tuple(
        WorkloadClass(id=f"c{i + 1}", label=prefix, members=tuple(m.key for m in members), envelope=envelope(members))
        for i, (prefix, members) in enumerate(sorted(groups.items()))
    )
    return Classification(classes=classes, outliers=tuple(outlier_keys), method="by name prefix (test fixture)")


def mixed_fleet(n: int = 4) -> list[WorkloadFeatures]:
    return [
        *(online_inference(i) for i in range(n)),
        *(notebook(i) for i in range(2 * n)),
        *(training(i) for i in range(n)),
        *(batch_inference(i) for i in range(2 * n)),
        *(a100_mig_unknown(i) for i in range(n)),
    ]

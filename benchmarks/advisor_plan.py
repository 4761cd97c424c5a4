"""Benchmark: decide and plan a fleet of 50, 500 and 2,000 workloads — time, and GPUs needed against the bound.

The issue's targets: 500 workloads planned in under 10 s, within 1 GPU of the optimum.

    .venv/bin/python benchmarks/advisor_plan.py                  # 50, 500, 2000 workloads
    .venv/bin/python benchmarks/advisor_plan.py --sizes 500 --json

Input: per-workload features drawn (seeded) from six archetypes with spread between members — online inference,
batch inference, training, fine-tuning, notebooks, HPC — on H100 80GB, A100 80GB, A30 and H200, a tenth of them
with 2–4 replicas, each replica on its own GPU today (gpus_now). Timed: classes (scikit-learn), decisions, the
plan (MIG integer program, bound, sharing groups), configs, and all of them together (``recommend_from_features``).
Reported per size: GPUs now, needed, the proven lower bound and the gap; the MIG packing's method; and, for
comparison, what the two fallbacks (LP rounding, first-fit decreasing) would need for the same decisions.
A warm-up run of 20 workloads first takes the one-off costs (imports, enumerating each model's MIG geometries,
about 0.06 s per model) out of the timings.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np

from advisor.classes import classify
from advisor.configs import build_configs
from advisor.decide import decide
from advisor.model import QUANTILE_LEVELS, Mode, Window, WorkloadFeatures
from advisor.pipeline import recommend_from_features
from advisor.plan import pack_mig, plan_fleet
from slicewise import catalogue
from slicewise.history_schema import Sharing

GIB = 1024**3
MODELS = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA A30", "NVIDIA H200")
# archetype: (share, memory GiB range, compute p95 range, duty range, namespaces)
ARCHETYPES = {
    "online-inference": (0.30, (4, 30), (0.05, 0.35), (0.85, 1.0), ("serving", "search", "ads")),
    "batch-inference": (0.15, (2, 16), (0.02, 0.3), (0.5, 0.9), ("embed", "batch")),
    "training": (0.10, (40, 75), (0.7, 1.0), (0.95, 1.0), ("train",)),
    "fine-tuning": (0.10, (18, 45), (0.3, 0.8), (0.7, 0.95), ("tune",)),
    "notebook": (0.25, (2, 12), (0.3, 0.9), (0.02, 0.15), ("research", "dev")),
    "hpc": (0.10, (5, 35), (0.4, 0.95), (0.8, 1.0), ("sim",)),
}


def synthetic_fleet(n: int, seed: int = 0) -> list[WorkloadFeatures]:
    rng = np.random.default_rng(seed)
    names = list(ARCHETYPES)
    shares = np.array([ARCHETYPES[a][0] for a in names])
    out = []
    for i in range(n):
        kind = names[rng.choice(len(names), p=shares / shares.sum())]
        _, mem, c95, duty, namespaces = ARCHETYPES[kind]
        model = MODELS[rng.choice(len(MODELS), p=[0.45, 0.3, 0.1, 0.15])]
        gpu = catalogue.model(model)
        peak = min(rng.uniform(*mem) * GIB, gpu.memory_total_bytes * 0.95)
        mean = peak * rng.uniform(0.5, 0.9)
        p99 = peak * rng.uniform(0.9, 1.0)
        p95 = (p99 + mean) / 2
        cp95 = float(rng.uniform(*c95))
        cpeak = min(1.0, cp95 * rng.uniform(1.05, 1.6))
        cmean = cp95 * rng.uniform(0.05 if kind == "notebook" else 0.5, 0.8)
        cq = {0.5: cmean, 0.9: (cmean + cp95) / 2, 0.95: cp95, 0.99: (cp95 + cpeak) / 2, 0.999: cpeak}
        mq = {0.5: mean, 0.9: (mean + p95) / 2, 0.95: p95, 0.99: p99, 0.999: (p99 + peak) / 2}
        out.append(
            WorkloadFeatures(
                workload=f"{namespaces[i % len(namespaces)]}/{kind}-{i}",
                gpu_model=model,
                namespace=namespaces[i % len(namespaces)],
                samples=20_160,
                coverage=1.0,
                memory_peak_bytes=int(peak),
                memory_p99_bytes=int(p99),
                memory_p95_bytes=int(p95),
                memory_mean_bytes=int(mean),
                compute_peak_gpu_fraction=cpeak,
                compute_p99_gpu_fraction=cq[0.99],
                compute_p95_gpu_fraction=cp95,
                compute_mean_gpu_fraction=cmean,
                duty_cycle=float(rng.uniform(*duty)),
                burstiness=0.5 if kind == "notebook" else -0.5,
                process_count=1,
                sharing=Sharing.EXCLUSIVE,
                mig_profile="",
                memory_quantiles={q: int(mq[q]) for q in QUANTILE_LEVELS},
                compute_quantiles={q: cq[q] for q in QUANTILE_LEVELS},
                devices=int(rng.integers(2, 5)) if rng.random() < 0.1 else 1,
            )
        )
    return out


def measure(n: int, seed: int) -> dict[str, object]:
    feats = synthetic_fleet(n, seed)
    gpus_now = Counter[str]()
    for f in feats:
        gpus_now[f.gpu_model] += f.devices
    timings: dict[str, float] = {}

    start = time.perf_counter()
    classification = classify(feats, seed=seed)
    timings["classes_s"] = time.perf_counter() - start
    start = time.perf_counter()
    decisions = decide(classification, feats)
    timings["decide_s"] = time.perf_counter() - start
    start = time.perf_counter()
    plan = plan_fleet(decisions.workloads, gpus_now, decisions.unplaced)
    timings["plan_s"] = time.perf_counter() - start
    start = time.perf_counter()
    build_configs(plan, decisions.workloads)
    timings["configs_s"] = time.perf_counter() - start

    window = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=14))
    start = time.perf_counter()
    recommend_from_features(feats, window=window, source="benchmark", gpus_now=gpus_now, seed=seed)
    timings["total_s"] = time.perf_counter() - start

    fallbacks = {}
    for name in ("lp-rounding", "ffd"):
        extra = 0
        for m in plan.models:
            gpu = catalogue.model(m.gpu_model)
            demand = Counter[str]()
            for w in decisions.workloads:
                if w.gpu_model == m.gpu_model and w.decision.mode == Mode.MIG and w.decision.profile:
                    demand[w.decision.profile] += w.features.devices
            exact = pack_mig(gpu, demand)
            extra += pack_mig(gpu, demand, fallback=name).gpus - exact.gpus
        fallbacks[name] = plan.gpus_needed + extra
    modes = Counter(w.decision.mode.value for w in decisions.workloads)
    return {
        "workloads": n,
        "replicas": sum(f.devices for f in feats),
        "classes": len(classification.classes),
        "modes": dict(modes),
        "gpus_now": plan.gpus_now,
        "gpus_needed": plan.gpus_needed,
        "gpus_lower_bound": plan.gpus_lower_bound,
        "gap_to_bound": plan.gpus_needed - plan.gpus_lower_bound,
        "methods": sorted({m.method for m in plan.models}),
        "fallback_gpus": fallbacks,
        **{k: round(v, 3) for k, v in timings.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500, 2000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    args = parser.parse_args()
    measure(20, args.seed + 1)  # warm up: imports, the catalogue, per-model geometry enumeration (cached)
    for n in args.sizes:
        result = measure(n, args.seed)
        if args.json:
            print(json.dumps(result))
            continue
        print(
            f"{n:>5} workloads ({result['replicas']} replicas, {result['classes']} classes): "
            f"GPUs now {result['gpus_now']}, needed {result['gpus_needed']}, lower bound {result['gpus_lower_bound']} "
            f"(gap {result['gap_to_bound']}); fallbacks would need {result['fallback_gpus']}; "
            f"time: classes {result['classes_s']} s, decide {result['decide_s']} s, plan {result['plan_s']} s, "
            f"configs {result['configs_s']} s, all together {result['total_s']} s"
        )
        print(f"      modes {result['modes']}; methods {result['methods']}")


if __name__ == "__main__":
    main()

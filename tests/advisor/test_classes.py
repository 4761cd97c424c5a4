"""classify: groups that share a decision, outliers flagged, deterministic for a seed, words a person reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from advisor.classes import classify, envelope, label
from advisor.features import compute_features
from advisor.history import read_history
from advisor.model import WorkloadFeatures
from slicewise.history_schema import Sharing
from tests.support import shared_file

GIB = 1024**3


def workload(
    name, memory_gib, compute, duty, burst, *, peak_ratio=1.05, known=True, model="NVIDIA H100 80GB HBM3", coverage=1.0
):
    p99 = int(memory_gib * GIB)
    return WorkloadFeatures(
        workload=name,
        gpu_model=model,
        namespace=name.split("/")[0],
        samples=1000,
        coverage=coverage,
        memory_peak_bytes=int(p99 * peak_ratio),
        memory_p99_bytes=p99,
        memory_p95_bytes=p99,
        memory_mean_bytes=int(p99 / peak_ratio),
        compute_peak_gpu_fraction=min(1.0, compute * 1.2) if known else None,
        compute_p99_gpu_fraction=min(1.0, compute * 1.1) if known else None,
        compute_p95_gpu_fraction=compute if known else None,
        compute_mean_gpu_fraction=compute * duty if known else None,
        duty_cycle=duty if known else None,
        burstiness=burst if known else None,
        process_count=1,
        sharing=Sharing.EXCLUSIVE,
        mig_profile="",
    )


def fleet(seed=0, per_group=12):
    """Three kinds, with spread: training (big, busy), notebooks (small, idle, spiky), inference (medium, steady)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(per_group):
        out.append(workload(f"ml/train-{i}", rng.uniform(60, 72), rng.uniform(0.85, 0.95), 0.97, -0.9))
        out.append(workload(f"nb/user-{i}", rng.uniform(2, 4), rng.uniform(0.02, 0.04), 0.05, 0.6, peak_ratio=2))
        out.append(workload(f"web/api-{i}", rng.uniform(14, 18), rng.uniform(0.3, 0.4), 0.9, -0.5))
    return out


def kinds(classification):
    return [sorted({m.workload.split("-")[0] for m in c.members}) for c in classification.classes]


def test_recovers_the_kinds_and_flags_the_odd_one():
    features = [*fleet(), workload("hpc/odd", 35, 0.99, 0.2, 0.9, peak_ratio=3)]
    result = classify(features)
    assert sorted(kinds(result)) == [["ml/train"], ["nb/user"], ["web/api"]]
    assert [k.workload for k in result.outliers] == ["hpc/odd"]
    assert all(result.class_of(k) is None for k in result.outliers)
    # ids ordered by memory, labels in plain words
    assert [c.id for c in result.classes] == ["c1", "c2", "c3"]
    assert kinds(result) == [["nb/user"], ["web/api"], ["ml/train"]]
    assert [c.label for c in result.classes] == [
        "mostly idle, little compute, small memory with spikes",
        "steady moderate compute, medium memory",
        "steady heavy compute, very large memory",
    ]
    assert (
        "silhouette" in result.method
        and "k-means" in result.method
        and "k=3 for 37 workloads with measured compute, silhouette" in result.method
    )


def test_deterministic_for_a_seed():
    features = fleet(seed=3)
    assert classify(features, seed=5) == classify(features, seed=5)
    assert classify(features, seed=5) == classify(list(reversed(features)), seed=5)  # input order does not matter


def test_envelope_is_the_worst_member():
    members = fleet()[:3]
    env = envelope(members)
    assert env.memory_peak_bytes == max(f.memory_peak_bytes for f in members)
    assert env.memory_p99_bytes == max(f.memory_p99_bytes for f in members)
    assert env.compute_p95_gpu_fraction == max(f.compute_p95_gpu_fraction for f in members)
    assert env.burstiness == 0.6 and env.duty_cycle == 0.97


def test_unmeasured_compute_joins_a_class_it_matches_or_gets_its_own():
    rng = np.random.default_rng(1)
    like_web = [
        workload(f"a100mig/api-{i}", rng.uniform(14, 18), 0, 0, 0, known=False, model="NVIDIA A100-SXM4-80GB")
        for i in range(3)
    ]
    unlike_any = [
        workload(f"a100mig/job-{i}", rng.uniform(28, 34), 0, 0, 0, known=False, model="NVIDIA A100-SXM4-80GB",
                 coverage=rng.uniform(0.2, 0.4))
        for i in range(8)
    ]  # fmt: skip
    result = classify([*fleet(), *like_web, *unlike_any])
    web = next(c for c in result.classes if any(m.workload.startswith("web/") for m in c.members))
    assert {m.workload for m in web.members} >= {f.workload for f in like_web}
    assert web.envelope.compute_p95_gpu_fraction is not None  # from the members that have it
    apart = [c for c in result.classes if any(m.workload.startswith("a100mig/job") for m in c.members)]
    assert sum(len(c.members) for c in apart) + len(result.outliers) == 8
    assert all(m.workload.startswith("a100mig/job") for c in apart for m in c.members)  # never with measured ones
    assert apart and all(c.label.startswith("compute not measured, large memory, part-time") for c in apart)
    assert apart[0].envelope.compute_p95_gpu_fraction is None
    assert label(unlike_any).startswith("compute not measured")
    assert "3 joined by memory and coverage" in result.method


def test_small_and_empty_fleets():
    assert classify([]).classes == ()
    (one,) = classify([workload("a/b", 10, 0.5, 0.9, -0.5)]).classes
    assert one.members[0].workload == "a/b"
    twins = classify([workload("a/b", 10, 0.5, 0.9, -0.5), workload("a/c", 10, 0.5, 0.9, -0.5)])
    assert len(twins.classes) == 1 and twins.outliers == ()


def test_real_data_is_one_application_so_few_classes():
    history = read_history(shared_file("data/real/alibaba-gentd26-sd-pods.csv"))
    result = classify(compute_features(history))
    classified = sum(len(c.members) for c in result.classes) + len(result.outliers)
    assert classified == 72
    assert 1 <= len(result.classes) <= 6
    assert max(len(c.members) for c in result.classes) > 36  # most pods behave alike
    assert len(result.outliers) <= 7  # a few pods that ran minutes, not hours, may stand out
    assert result == classify(compute_features(history))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovery_does_not_hang_on_the_seed(seed):
    assert sorted(kinds(classify(fleet(seed=seed + 10), seed=seed))) == [["ml/train"], ["nb/user"], ["web/api"]]


def adjusted_rand_index_against_truth(history_path) -> tuple[float, object]:
    """Classes of the simulated fleet scored against its truth file; an outlier counts as a class of its own."""
    from sklearn.metrics import adjusted_rand_score

    from slicewise.history_schema import truth_path

    classification = classify(compute_features(read_history(history_path)))
    truth = pd.read_csv(truth_path(history_path)).set_index("workload")["archetype"]
    found = {m.workload: c.id for c in classification.classes for m in c.members}
    found |= {o.workload: f"outlier {o.workload}" for o in classification.outliers}
    assert set(found) == set(truth.index)  # every workload is classed or flagged, none lost
    names = sorted(found)
    return adjusted_rand_score([truth[n] for n in names], [found[n] for n in names]), classification


@pytest.mark.parametrize(("days", "gpus", "seed"), [(14, None, 0), (7, 64, 3)])
def test_classes_recover_the_simulated_archetypes(tmp_path, days, gpus, seed):
    """The simulator's mixed fleet (every archetype, every sharing mode, A100/A30 MIG without compute): the
    classes must recover the true archetypes, adjusted Rand index >= 0.8 (measured: 0.94 and 0.95)."""
    from exporter.simulate.history import write_history

    path = tmp_path / "fleet.parquet"
    write_history(path, scenario="mixed", days=days, gpus=gpus, seed=seed)
    ari, classification = adjusted_rand_index_against_truth(path)
    assert ari >= 0.8, classification.method

"""The decision rules on realistic workloads: each archetype gets the sharing mode a platform engineer would pick,
sized with headroom, with reasons and risks that carry the numbers."""

from __future__ import annotations

import math

import pytest

from advisor.decide import DEFAULT_RULES, Rules, decide
from advisor.decide.fits import profile_compute, shareable_profiles
from advisor.model import Classification, Mode, WorkloadClass, WorkloadFeatures, WorkloadRecommendation
from slicewise import catalogue
from slicewise.history_schema import Sharing
from tests.advisor.plan.fleet_fixtures import (
    A30,
    A100,
    GIB,
    H100,
    a100_mig_unknown,
    batch_inference,
    classify_by_prefix,
    envelope,
    features,
    mixed_fleet,
    notebook,
    online_inference,
    training,
)


def _by_name(recs: tuple[WorkloadRecommendation, ...]) -> dict[str, WorkloadRecommendation]:
    return {w.workload: w for w in recs}


@pytest.fixture(scope="module")
def mixed() -> dict[str, WorkloadRecommendation]:
    fleet = mixed_fleet(4)
    return _by_name(decide(classify_by_prefix(fleet), fleet).workloads)


def test_archetypes_get_the_mode_they_call_for(mixed: dict[str, WorkloadRecommendation]) -> None:
    modes = {name: w.decision.mode for name, w in mixed.items()}
    # steady model servers: MIG (isolation, flat latency), sized to 2g.20gb on an H100 for 14-17 GiB and ~0.2 SMs
    assert {modes[f"serving/ranker-{i}"] for i in range(4)} == {Mode.MIG}
    assert {mixed[f"serving/ranker-{i}"].decision.profile for i in range(4)} <= {"1g.20gb", "2g.20gb"}
    # notebooks: mostly idle and bursty -> time-sliced, never a whole-GPU MIG slice
    assert {modes[f"research/notebook-{i}"] for i in range(8)} == {Mode.TIMESLICE}
    # training fills a GPU: whole GPU, never time-sliced
    assert {modes[f"train/llm-{i}"] for i in range(4)} == {Mode.EXCLUSIVE}
    # small embedding jobs of one team fit MIG 1g.10gb well (0.10 of a GPU needed, 0.12 given): MIG, not MPS
    assert {mixed[f"embed/batch-{i}"].decision.profile for i in range(8)} == {"1g.10gb"}
    for w in mixed.values():
        assert w.decision.profile != "7g.80gb"


def test_no_workload_is_given_less_memory_than_its_peak_plus_headroom_where_shared(
    mixed: dict[str, WorkloadRecommendation],
) -> None:
    for w in mixed.values():
        d = w.decision
        assert d.memory_limit_bytes >= w.features.memory_peak_bytes
        assert d.headroom >= 0.15  # the rules' base, or what the evidence sized it with (decide/margin.py)
        if d.mode != Mode.EXCLUSIVE:
            assert d.memory_limit_bytes >= w.features.memory_peak_bytes * (1 + d.headroom)


def test_mig_takes_the_smallest_profile_that_covers_memory_and_compute() -> None:
    gpu = catalogue.model(H100)
    f = features("serving/ocr-0", peak_gib=12.0, c95=0.2, duty=0.95)  # needs 13.8 GiB and 0.23 of the SMs
    w = decide(classify_by_prefix([f]), [f]).workloads[0]
    assert w.decision.mode == Mode.MIG and w.decision.profile == "2g.20gb"
    chosen = gpu.profile("2g.20gb")
    assert w.decision.memory_limit_bytes == chosen.memory_bytes
    assert w.decision.compute_limit_gpu_fraction == pytest.approx(32 / 132, abs=1e-4)
    # 1g.20gb has the memory but only 26/132 = 0.197 of the SMs; 1g.10gb has neither
    assert profile_compute(gpu, gpu.profile("1g.20gb")) < 0.2 * 1.15
    assert gpu.profile("1g.10gb").memory_bytes < 12 * GIB * 1.15


def test_memory_heavy_light_compute_work_takes_the_one_compute_slice_twenty_gb_profile() -> None:
    f = features("serving/embedder-0", peak_gib=15.0, c95=0.05, duty=0.9)
    w = decide(classify_by_prefix([f]), [f]).workloads[0]
    assert (w.decision.mode, w.decision.profile) == (Mode.MIG, "1g.20gb")


def test_a_class_is_sized_for_its_largest_member_and_each_member_for_itself() -> None:
    fleet = [
        features("serving/api-0", peak_gib=6.0, c95=0.08, duty=0.95),
        features("serving/api-1", peak_gib=7.0, c95=0.09, duty=0.95),
        features("serving/api-2", peak_gib=30.0, c95=0.3, duty=0.95),
    ]
    result = decide(classify_by_prefix(fleet), fleet)
    (cls,) = result.classes
    (class_decision,) = cls.decisions
    assert class_decision.profile == "3g.40gb"  # 34.5 GiB and 0.345 of the SMs for the largest member
    own = {w.workload: w.decision.profile for w in result.workloads}
    assert own == {"serving/api-0": "1g.10gb", "serving/api-1": "1g.10gb", "serving/api-2": "3g.40gb"}


def test_small_members_of_a_class_that_needs_whole_gpus_are_decided_on_their_own() -> None:
    fleet = [training(0), training(1), features("train/llm-small", peak_gib=20.0, c95=0.3, duty=0.99)]
    result = decide(classify_by_prefix(fleet, ()), fleet)
    by = _by_name(result.workloads)
    assert by["train/llm-0"].decision.mode == Mode.EXCLUSIVE
    small = by["train/llm-small"].decision
    assert (small.mode, small.profile) == (Mode.MIG, "3g.40gb")
    assert "on its own it fits MIG" in small.reasons[0]


def test_bursty_members_of_a_mig_class_are_time_sliced_together_when_that_fills_no_more_gpus() -> None:
    steady = features("lab/desk-0", peak_gib=5.0, c95=0.08, duty=0.95)  # 1g.10gb
    light = features("lab/desk-1", peak_gib=3.0, c95=0.1, cpeak=0.3, cmean=0.02, duty=0.06)  # 1g.10gb: 7/GPU vs 8

    def bursty(i: int, duty: float) -> WorkloadFeatures:  # bursts need 3g.40gb (60 of 132 SMs): half a GPU each
        return features(f"lab/desk-{i}", peak_gib=3.0, c95=0.45, cpeak=0.9, cmean=0.03, duty=duty)

    fleet = [steady, light, bursty(2, 0.06), bursty(3, 0.12)]
    result = decide(classify_by_prefix(fleet), fleet)
    (class_decision,) = result.classes[0].decisions
    assert (class_decision.mode, class_decision.profile) == (Mode.MIG, "3g.40gb")
    by = _by_name(result.workloads)
    assert (by["lab/desk-0"].decision.mode, by["lab/desk-0"].decision.profile) == (Mode.MIG, "1g.10gb")
    # 8 time-sliced per GPU is not worth MIG's isolation against 7 on 1g slices
    assert (by["lab/desk-1"].decision.mode, by["lab/desk-1"].decision.profile) == (Mode.MIG, "1g.10gb")
    # the two bursty ones: one pool at the smaller of their own replica counts (8 and 5), 1 GPU for two half-GPU slices
    pooled = [by[f"lab/desk-{i}"].decision for i in (2, 3)]
    assert {(d.mode, d.replicas) for d in pooled} == {(Mode.TIMESLICE, 5)}
    assert "one time-slicing pool of 5 replicas per GPU: 1 GPU(s) against the 1.0 GPU(s) their" in pooled[0].reasons[0]
    # alone, a bursty member keeps its slice: a pool of one would hold a whole GPU for half a GPU's worth
    fleet = [steady, light, bursty(2, 0.06)]
    lone = _by_name(decide(classify_by_prefix(fleet), fleet).workloads)["lab/desk-2"].decision
    assert (lone.mode, lone.profile) == (Mode.MIG, "3g.40gb")
    # and with the gain required raised past what time-slicing gives, both keep their slices
    fleet = [steady, light, bursty(2, 0.06), bursty(3, 0.12)]
    strict = _by_name(decide(classify_by_prefix(fleet), fleet, Rules(member_own_mode_min_gain=5)).workloads)
    assert strict["lab/desk-2"].decision.profile == "3g.40gb"


def test_timeslicing_replicas_respect_memory_and_contention() -> None:
    rules = DEFAULT_RULES
    gpu = catalogue.model(H100)
    fleet = [notebook(i) for i in range(8)]
    for w in decide(classify_by_prefix(fleet), fleet).workloads:
        d = w.decision
        assert d.mode == Mode.TIMESLICE and d.replicas is not None
        need = max(f.memory_peak_bytes for f in fleet) * 1.15
        assert d.replicas * need <= gpu.memory_total_bytes
        busiest = max(f.duty_cycle or 0.0 for f in fleet)
        assert (d.replicas - 1) * busiest <= rules.timeslice_max_busy_cotenants + 1e-9
        assert d.memory_limit_bytes == gpu.memory_total_bytes // d.replicas
        assert d.risk.contention_share == pytest.approx(1 - (1 - busiest) ** (d.replicas - 1))
        assert "no memory isolation" in " ".join(d.reasons)


def test_busy_workloads_are_never_time_sliced() -> None:
    fleet = [online_inference(i) for i in range(3)] + [training(i) for i in range(3)]
    for w in decide(classify_by_prefix(fleet), fleet).workloads:
        assert w.decision.mode != Mode.TIMESLICE


def test_mps_needs_trust_and_coarse_mig() -> None:
    """20 tiny jobs of one team (0.035 of a GPU each: MIG 1g gives 3.5x that): MPS, 16 per GPU, 2 GPUs of their
    own against 2.9 GPUs of 1g slices. The same jobs from different namespaces: MIG, since MPS has no fault
    isolation."""
    team = [features(f"embed/tiny-{i}", peak_gib=2.0 + 0.02 * i, c95=0.03, duty=0.7) for i in range(20)]
    mps = decide(classify_by_prefix(team), team)
    for w in mps.workloads:
        d = w.decision
        assert d.mode == Mode.MPS and d.replicas is not None and d.mps_active_thread_percentage is not None
        assert d.mps_active_thread_percentage == 100 // d.replicas
        assert d.mps_active_thread_percentage / 100 >= 0.03 * 1.15
        assert d.memory_limit_bytes == catalogue.model(H100).memory_total_bytes // d.replicas
        assert d.risk.level in ("medium", "high")
        assert "no fault isolation" in d.risk.summary
    strangers = [
        features(f"tiny-{i}", peak_gib=2.0 + 0.02 * i, c95=0.03, duty=0.7, namespace=f"team{i}") for i in range(20)
    ]
    one_class = WorkloadClass("c1", "tiny", tuple(f.key for f in strangers), envelope(strangers))
    classification = Classification(classes=(one_class,), outliers=(), method="test")
    assert {w.decision.mode for w in decide(classification, strangers).workloads} == {Mode.MIG}


def test_mps_is_not_worth_it_for_a_few_workloads_that_would_hold_gpus_of_their_own() -> None:
    """6 tiny jobs: MPS would give them one GPU of their own (no one else may join their MPS server), while their
    six 1g.10gb slices fill 6/7 of a GPU beside anyone's."""
    team = [features(f"embed/tiny-{i}", peak_gib=2.0, c95=0.03, duty=0.7) for i in range(6)]
    result = decide(classify_by_prefix(team), team)
    assert {(w.decision.mode, w.decision.profile) for w in result.workloads} == {(Mode.MIG, "1g.10gb")}
    assert any("GPU(s) of their own" in r for r in result.classes[0].decisions[0].reasons)


def test_workloads_already_under_mps_are_trusted_without_a_namespace() -> None:
    fleet = [
        features(f"tiny-{i}", peak_gib=2.0, c95=0.03, duty=0.7, namespace="", sharing=Sharing.MPS) for i in range(20)
    ]
    modes = {w.decision.mode for w in decide(classify_by_prefix(fleet), fleet).workloads}
    assert modes == {Mode.MPS}


def test_unknown_compute_on_a100_mig_is_sized_by_memory_with_the_caveat() -> None:
    fleet = [a100_mig_unknown(i) for i in range(3)]
    result = decide(classify_by_prefix(fleet), fleet)
    for w in result.workloads:
        d = w.decision
        assert d.mode == Mode.MIG
        assert d.profile == "1g.20gb"  # 12-14 GiB + 15 % fits 19.5 GiB; compute cannot be checked
        assert d.risk.compute_exceed_share is None
        assert any("chosen by memory alone" in r for r in d.reasons)
    assert any("not measured" in n for n in result.notes)


def test_a30_uses_its_four_slice_profiles() -> None:
    f = features("serving/small-0", A30, peak_gib=4.0, c95=0.2, duty=0.95)
    w = decide(classify_by_prefix([f]), [f]).workloads[0]
    assert (w.decision.mode, w.decision.profile) == (Mode.MIG, "1g.6gb")
    assert {p.name for p in shareable_profiles(catalogue.model(A30))} == {"1g.6gb", "2g.12gb"}


def test_unknown_gpu_models_and_oversized_workloads_are_reported_not_dropped() -> None:
    odd = features("lab/sim-0", "NVIDIA L40S", peak_gib=30.0, c95=0.5)
    huge = features("lab/sim-1", A100, peak_gib=90.0, c95=0.9)  # more than an 80 GB A100 holds: spans GPUs
    result = decide(classify_by_prefix([odd, huge], outliers=("lab/sim-0", "lab/sim-1")), [odd, huge])
    assert {u.workload for u in result.unplaced} == {"lab/sim-0", "lab/sim-1"}
    by = _by_name(result.workloads)
    assert "not in slicewise's catalogue" in by["lab/sim-0"].decision.reasons[0]
    assert "more than a whole" in by["lab/sim-1"].decision.reasons[0]
    for w in result.workloads:
        assert w.decision.memory_limit_bytes >= w.features.memory_peak_bytes


def test_outliers_are_decided_on_their_own() -> None:
    fleet = [online_inference(i) for i in range(3)] + [batch_inference(0)]
    result = decide(classify_by_prefix(fleet, outliers=("embed/batch-0",)), fleet)
    w = _by_name(result.workloads)["embed/batch-0"]
    assert w.outlier and w.class_id is None
    assert w.decision.reasons[0].startswith("An outlier")


def test_reasons_and_risks_carry_the_numbers(mixed: dict[str, WorkloadRecommendation]) -> None:
    ranker = mixed["serving/ranker-0"].decision
    text = " ".join(ranker.reasons)
    assert "14.0 GiB" in text and "15 %" in text and "0.18" in text
    assert "nos" in text  # the measured trade-off behind MIG's flat latency
    assert ranker.risk.memory_exceed_share == 0.0
    assert ranker.risk.compute_exceed_share is not None and 0.0 <= ranker.risk.compute_exceed_share < 0.05


def test_compute_risk_is_the_share_of_samples_above_the_slice() -> None:
    """p95 + 15 % just inside 2g.20gb's SMs, p99 well above: a few % of samples wanted more than the slice."""
    gpu = catalogue.model(H100)
    c95 = 32 / 132 / 1.15 - 1e-4
    f = features("serving/edge-0", peak_gib=8.0, c95=c95, cpeak=0.5, duty=0.95)
    w = decide(classify_by_prefix([f]), [f]).workloads[0]
    assert w.decision.profile == "2g.20gb"
    share = w.decision.risk.compute_exceed_share
    assert share is not None and 0.0 < share < 0.05
    assert math.isclose(
        w.decision.compute_limit_gpu_fraction, profile_compute(gpu, gpu.profile("2g.20gb")), abs_tol=1e-4
    )


def test_headroom_is_a_rule_not_a_constant() -> None:
    f = features("serving/api-0", peak_gib=8.9, c95=0.08, duty=0.95)  # 8.9 x 1.15 = 10.2 GiB > 1g.10gb's 9.75
    assert decide(classify_by_prefix([f]), [f]).workloads[0].decision.profile == "1g.20gb"
    tight = Rules(headroom=0.05)  # 9.3 GiB fits 1g.10gb
    assert decide(classify_by_prefix([f]), [f], tight).workloads[0].decision.profile == "1g.10gb"


def test_a100_80gb_profiles_by_name() -> None:
    f = features("serving/vision-0", A100, peak_gib=30.0, c95=0.3, duty=0.95)
    assert decide(classify_by_prefix([f]), [f]).workloads[0].decision.profile == "3g.40gb"

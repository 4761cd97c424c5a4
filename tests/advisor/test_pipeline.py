"""The whole advisor on real and realistic fleets: the recommendation is one a platform engineer could apply.

Real data: 72 Stable Diffusion serving pods from Alibaba's production trace (shared/data/real), on A100 80GB.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from advisor.decide.fits import shareable_profiles
from advisor.model import Mode, Recommendation, Window
from advisor.pipeline import load, recommend, recommend_from_features
from advisor.plan.krr import krr_baseline
from slicewise.catalogue import model
from slicewise.errors import BadInput
from tests.advisor.plan.fleet_fixtures import A100, H100, mixed_fleet
from tests.support import shared_file

REAL = "data/real/alibaba-gentd26-sd-pods.csv"


@pytest.fixture(scope="module")
def real() -> tuple[Recommendation, pd.DataFrame]:
    path = shared_file(REAL)
    return recommend(path, timedelta(days=14), seed=0), pd.read_csv(path)


def test_no_real_pod_is_given_less_than_its_observed_peak(real) -> None:
    rec, raw = real
    peaks = raw.groupby("workload")["memory_used_bytes"].max()  # computed here, independently of the features
    assert {w.workload for w in rec.workloads} == set(peaks.index)
    for w in rec.workloads:
        assert w.decision.memory_limit_bytes >= peaks[w.workload]
        if w.decision.mode != Mode.EXCLUSIVE:
            assert w.decision.memory_limit_bytes >= peaks[w.workload] * 1.15


def test_the_real_fleet_saves_gpus_and_states_the_risk_taken(real) -> None:
    rec, raw = real
    plan = rec.plan
    assert plan.gpus_now == raw["gpu_uuid"].nunique() == 72
    assert plan.gpus_lower_bound <= plan.gpus_needed < plan.gpus_now
    # pods that never ran at the same time share GPUs; none of them is put on a 40 GiB slice it would outgrow
    assert plan.gpus_now - plan.gpus_needed >= 5
    assert plan.gpus_busy_max is not None and plan.gpus_needed <= plan.gpus_busy_max < plan.gpus_now
    assert (
        f"{plan.gpus_needed} GPUs needed" in rec.notes[0]
        and f"({plan.gpus_now - plan.gpus_needed} fewer; every GPU seen in the window)" in rec.notes[0]
        and f"{plan.gpus_busy_max} busy at once at most" in rec.notes[0]
    )
    shared = [w for w in rec.workloads if w.decision.mode != Mode.EXCLUSIVE]
    assert shared
    for w in shared:
        risk = w.decision.risk
        assert risk.memory_exceed_share == 0.0
        assert risk.level in ("low", "medium")
        assert risk.compute_exceed_share is not None and risk.compute_exceed_share <= 0.05
        assert risk.summary.endswith(".")
    # the busy pods (most of the trace, busy in > 30 % of samples, peaks over 34 GiB) keep whole GPUs
    assert sum(1 for w in rec.workloads if w.decision.mode == Mode.EXCLUSIVE) > len(rec.workloads) / 2
    assert plan.utilisation_after.memory > plan.utilisation_before.memory


def test_compared_with_the_simple_krr_rule(real) -> None:
    """krr's rule (peak x 1.15, whole or shared GPU, packed by memory) needs fewer GPUs on paper, and buys them by
    time-slicing busy pods together with no memory isolation; slicewise time-slices only mostly-idle pods."""
    rec, _ = real
    krr = krr_baseline([w.features for w in rec.workloads])
    assert krr.gpus < rec.plan.gpus_needed < rec.plan.gpus_now
    assert krr.busy_workloads_shared > 0
    for w in rec.workloads:
        if w.decision.mode == Mode.TIMESLICE:
            assert (w.features.duty_cycle or 0) <= 0.3
    assert krr.sentence() in rec.notes


def test_the_real_recommendation_round_trips_as_json(real) -> None:
    rec, _ = real
    assert Recommendation.from_json(rec.to_json()) == rec


def test_a_shorter_window_uses_less_history() -> None:
    data = load(shared_file(REAL), timedelta(hours=6))
    assert data.window.end - data.window.start == timedelta(hours=6)
    full = load(shared_file(REAL), None)
    assert sum(f.samples for f in data.features) < sum(f.samples for f in full.features)
    assert data.gpus_now["NVIDIA A100-SXM4-80GB"] <= 72


def test_from_features_is_deterministic_for_a_seed() -> None:
    feats = mixed_fleet(5)
    window = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC))
    at = datetime(2026, 11, 15, 6, tzinfo=UTC)
    runs = [
        recommend_from_features(feats, window=window, source="test", gpus_now={H100: 40, A100: 5}, generated_at=at)
        for _ in range(2)
    ]
    assert runs[0].to_json() == runs[1].to_json()
    rec = runs[0]
    assert rec.plan.gpus_needed < 45
    assert rec.configs.mig_parted and rec.configs.device_plugin and rec.configs.resource_requests
    assert any("krr" in n for n in rec.notes)


def test_no_features_is_bad_input() -> None:
    window = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC))
    with pytest.raises(BadInput, match="no workload has samples"):
        recommend_from_features([], window=window, source="empty.csv", gpus_now={})


def test_a_missing_history_file_is_bad_input(tmp_path) -> None:
    with pytest.raises(BadInput, match="no such history file"):
        recommend(tmp_path / "nope.parquet")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recommendation, pd.DataFrame, pd.Series]:
    """Three days of the simulator's mixed fleet (54 GPUs: H100, A100 80/40 GB, A30, H200, B200; every sharing mode and
    archetype), advised as `slicewise advise --history` would."""
    from slicewise.cli import main

    path = tmp_path_factory.mktemp("sim") / "mixed.parquet"
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--out", str(path), "--scenario", "mixed", "--days", "3", "--seed", "0"])
    assert exc.value.code == 0
    truth = pd.read_csv(f"{path}.truth.csv").set_index("workload")["archetype"]
    return recommend(path), pd.read_parquet(path), truth


def test_the_simulated_fleet_gets_the_decisions_its_archetypes_call_for(simulated) -> None:
    rec, _, truth = simulated
    assert {w.workload for w in rec.workloads} == set(truth.index)
    by_archetype: dict[str, list] = {}
    for w in rec.workloads:
        by_archetype.setdefault(truth[w.workload], []).append(w.decision)
    assert set(by_archetype) == {"online-inference", "batch-inference", "training", "fine-tuning", "notebook", "hpc"}
    # notebooks: never a whole GPU; small slices or time-slicing, a larger slice only where the notebook's own p95
    # compute (its bursts) needs more than a 2g slice gives and no time-slicing pool would fill fewer GPUs
    notebooks = [w for w in rec.workloads if truth[w.workload] == "notebook"]
    for w in notebooks:
        d = w.decision
        if d.mode == Mode.EXCLUSIVE:  # only one seen too briefly to size, which keeps the whole GPU it has
            assert w.features.sharing == "exclusive" and "Too little history" in " ".join(d.reasons), w.workload
            continue
        assert d.mode in (Mode.MIG, Mode.TIMESLICE), w.workload
        if d.profile is not None and not d.profile.startswith(("1g.", "2g.")):
            gpu = model(w.gpu_model)
            two_g = max(p.sm_count for p in shareable_profiles(gpu) if p.compute_slices == 2) / gpu.sm_count
            assert (w.features.compute_p95_gpu_fraction or 0) > two_g, w.workload
    assert sum(w.decision.profile is None or w.decision.profile.startswith("1g.") for w in notebooks) >= 0.8 * len(
        notebooks
    )
    # training needs whole GPUs; nothing busy is time-sliced
    assert {d.mode for d in by_archetype["training"]} == {Mode.EXCLUSIVE}
    for archetype in ("online-inference", "batch-inference", "training", "fine-tuning", "hpc"):
        assert all(d.mode != Mode.TIMESLICE for d in by_archetype[archetype]), archetype
    # model servers share the GPU in isolated MIG slices (or MPS within a team); a whole GPU only for one whose own
    # p95 compute is more than the largest shared MIG slice gives (the rule, not the archetype, decides)
    servers = [w for w in rec.workloads if truth[w.workload] == "online-inference"]
    assert sum(w.decision.mode in (Mode.MIG, Mode.MPS) for w in servers) >= 0.9 * len(servers)
    for w in servers:
        if w.decision.mode == Mode.EXCLUSIVE:
            p95 = w.features.compute_p95_gpu_fraction
            gpu = model(w.gpu_model)
            largest_slice = max(p.sm_count for p in shareable_profiles(gpu)) / gpu.sm_count
            assert p95 is not None and p95 > largest_slice, w.workload
    # MIG workloads whose compute the A100/A30 could not measure say so
    for w in rec.workloads:
        if not w.features.compute_known and w.decision.mode == Mode.MIG:
            assert any("memory alone" in r for r in w.decision.reasons)


def test_the_simulated_plan_is_applicable_and_honest(simulated) -> None:
    rec, raw, _ = simulated
    peaks = raw.groupby(["workload", "gpu_model"], observed=True)["memory_used_bytes"].max()
    for w in rec.workloads:
        assert w.decision.memory_limit_bytes >= peaks[(w.workload, w.gpu_model)]
    plan = rec.plan
    assert plan.gpus_now == raw["gpu_uuid"].nunique() == 54
    assert plan.gpus_lower_bound <= plan.gpus_needed
    assert all("integer program (optimal)" in m.method for m in plan.models if "MIG" in m.method)
    if plan.gpus_needed > plan.gpus_now:  # today's fleet shares MIG slices and saturates GPUs: say so
        assert any("over-committed" in n for n in rec.notes)
        assert f"({plan.gpus_needed - plan.gpus_now} more; every GPU seen in the window)" in rec.notes[0]
    # every workload's replicas land on the plan's GPUs
    placed = {n for g in plan.gpus for n in g.workloads}
    assert placed == {w.workload for w in rec.workloads} - {u.workload for u in plan.unplaced}

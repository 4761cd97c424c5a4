"""Properties over arbitrary fleets (hypothesis): no workload is ever sized below its peak, every MIG geometry the
plan makes is one the driver accepts, every workload is placed or reported, and the bound holds."""

from __future__ import annotations

import dataclasses
from collections import Counter

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.configs import build_configs
from advisor.configs.schema import MigPartedConfig, ResourceRequests
from advisor.decide import DEFAULT_RULES, decide
from advisor.decide.fits import profile_compute, shareable_profiles
from advisor.model import Classification, Mode, WorkloadClass, WorkloadFeatures
from advisor.plan import plan_fleet
from slicewise import catalogue
from slicewise.catalogue import Placement, check_geometry
from slicewise.history_schema import Sharing
from tests.advisor.plan.fleet_fixtures import envelope, features

COMPUTE_HEADROOM = DEFAULT_RULES.compute_headroom
MODELS = [m.name for m in catalogue.models()] + ["NVIDIA L4"]  # one the catalogue does not know


@st.composite
def workload(draw: st.DrawFn, i: int) -> tuple[WorkloadFeatures, int]:
    model = draw(st.sampled_from(MODELS))
    known = catalogue.find_model(model)
    total_gib = known.memory_total_mib / 1024 if known else 24.0
    peak = draw(st.floats(0.05, total_gib * 1.1))
    compute_known = draw(st.booleans()) or draw(st.booleans())
    c95 = draw(st.floats(0.0, 1.0)) if compute_known else None
    f = features(
        f"w{i}",
        model,
        peak_gib=peak,
        p99_gib=peak * draw(st.floats(0.5, 1.0)),
        mean_gib=peak * draw(st.floats(0.1, 0.5)),
        c95=c95,
        cpeak=None if c95 is None else draw(st.floats(c95, 1.0)),
        cmean=None if c95 is None else c95 * draw(st.floats(0.0, 1.0)),
        duty=None if c95 is None else draw(st.floats(0.0, 1.0)),
        namespace=draw(st.sampled_from(["", "ml", "research", "serving"])),
        sharing=draw(st.sampled_from(list(Sharing))),
    )
    f = dataclasses.replace(f, devices=draw(st.integers(1, 3)))
    group = draw(st.integers(-1, 3))  # -1: an outlier
    return f, group


@st.composite
def fleet(draw: st.DrawFn) -> tuple[list[WorkloadFeatures], Classification]:
    n = draw(st.integers(1, 24))
    drawn = [draw(workload(i)) for i in range(n)]
    feats = [f for f, _ in drawn]
    groups: dict[int, list[WorkloadFeatures]] = {}
    for f, g in drawn:
        groups.setdefault(g, []).append(f)
    classes = tuple(
        WorkloadClass(f"c{g + 1}", f"group {g}", tuple(m.key for m in members), envelope(members))
        for g, members in sorted(groups.items())
        if g >= 0
    )
    outliers = tuple(f.key for f in groups.get(-1, []))
    return feats, Classification(classes=classes, outliers=outliers, method="hypothesis")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet())
def test_decisions_never_size_below_the_peak_and_respect_each_mode(data) -> None:
    feats, classification = data
    result = decide(classification, feats)
    assert sorted(w.workload for w in result.workloads) == sorted(f.workload for f in feats)
    unplaced = {u.workload for u in result.unplaced}
    for w in result.workloads:
        d, f = w.decision, w.features
        assert d.memory_limit_bytes >= f.memory_peak_bytes
        gpu = catalogue.find_model(f.gpu_model)
        if gpu is None or f.memory_peak_bytes > gpu.memory_total_bytes:
            assert w.workload in unplaced
            continue
        assert w.workload not in unplaced
        need = f.memory_peak_bytes * (1 + d.headroom)
        if d.mode == Mode.MIG:
            profile = gpu.profile(d.profile or "")
            assert profile in shareable_profiles(gpu)
            assert profile.memory_bytes >= need
            if f.compute_p95_gpu_fraction is not None:
                assert profile_compute(gpu, profile) >= f.compute_p95_gpu_fraction * (1 + COMPUTE_HEADROOM) - 1e-9
        elif d.mode in (Mode.TIMESLICE, Mode.MPS):
            assert d.replicas is not None and d.replicas >= 2
            assert d.memory_limit_bytes == gpu.memory_total_bytes // d.replicas >= need
            assert f.compute_known
            if d.mode == Mode.MPS:
                assert d.mps_active_thread_percentage is not None
                need = (f.compute_p95_gpu_fraction or 0) * (1 + COMPUTE_HEADROOM)
                assert d.mps_active_thread_percentage / 100 >= need
                assert d.sharing_group
            else:
                assert f.duty_cycle is not None and f.duty_cycle <= 0.3
        else:
            assert d.memory_limit_bytes == gpu.memory_total_bytes
        assert d.reasons and d.risk.summary
        assert d.risk.memory_exceed_share == 0.0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleet())
def test_plans_place_everything_on_valid_geometries(data) -> None:
    feats, classification = data
    result = decide(classification, feats)
    gpus_now = Counter(f.gpu_model for f in feats)
    plan = plan_fleet(result.workloads, gpus_now, result.unplaced)
    unplaced = {u.workload for u in plan.unplaced}
    placed = Counter(w for g in plan.gpus for w in g.workloads)
    expected = Counter({w.workload: w.features.devices for w in result.workloads if w.workload not in unplaced})
    assert placed == expected
    for g in plan.gpus:
        if g.mode == Mode.MIG:
            gpu = catalogue.model(g.gpu_model)
            check_geometry(gpu, [Placement(gpu.profile(i.profile), i.start) for i in g.mig_instances])
    for m in plan.models:
        assert 0 <= m.gpus_lower_bound <= m.gpus_needed
    assert plan.gpus_lower_bound <= plan.gpus_needed
    # and the configs say the same, in their tools' formats
    configs = build_configs(plan, result.workloads)
    parsed = MigPartedConfig.model_validate(yaml.safe_load(configs.mig_parted))
    by_pci = {m.pci_device_id: m for m in catalogue.models()}
    for entries in parsed.mig_configs.values():
        for e in entries:
            if e.mig_enabled and e.mig_devices:
                first = e.device_filter if isinstance(e.device_filter, str) else e.device_filter[0]
                catalogue.place(by_pci[first], [p for p, n in e.mig_devices.items() for _ in range(n)])
    requests = ResourceRequests.model_validate(yaml.safe_load(configs.resource_requests))
    assert {r.workload for r in requests.workloads} == {w.workload for w in result.workloads} - unplaced

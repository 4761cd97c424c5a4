"""Scenarios: the sizes and mixes other parts of slicewise rely on, scaling, and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from exporter.simulate import Archetype, ManualClock, build_scenario
from exporter.simulate.activity import MemberTable
from slicewise.errors import BadInput
from tests.exporter.simulate.conftest import AFTERNOON


def test_bench_8xh100_is_448_processes_on_56_mig_devices_always() -> None:
    fleet = build_scenario("bench-8xh100", clock=ManualClock(AFTERNOON))
    (node,) = fleet.nodes
    assert node.name == "sim-h100-0"
    assert [g.model.name for g in node.gpus] == ["NVIDIA H100 80GB HBM3"] * 8
    devices = node.devices()
    assert len(devices) == 56 and {d.profile_name for d in devices} == {"1g.10gb"}
    for hours in (0, 9, 15, 40, 100):
        fleet.clock.set(AFTERNOON + hours * 3600)
        tick = node.runtime.state()
        assert [len(p) for p in tick.processes] == [8] * 56
    assert len(fleet.workloads()) == 64


def test_mixed_has_every_model_sharing_mode_and_archetype() -> None:
    fleet = build_scenario("mixed", clock=ManualClock())
    assert {g.model.key for g in fleet.gpus} == {
        "H100-80GB",
        "A100-80GB",
        "A100-40GB",
        "A30-24GB",
        "H200-141GB",
        "B200-180GB",
    }
    devices = [d for g in fleet.gpus for d in g.devices()]
    assert any(d.is_mig and d.mps for d in devices)  # MPS inside a MIG instance
    assert any(not d.is_mig and d.mps for d in devices)
    assert any(d.gi is not None and len(d.gi.compute_instances) > 1 for d in devices)
    tenants: dict[str, int] = {}
    for m in fleet.members:
        tenants[m.device_key] = tenants.get(m.device_key, 0) + 1
    whole = [d for d in devices if not d.is_mig and not d.mps]
    assert any(tenants.get(d.key, 0) > 1 for d in whole) and any(tenants.get(d.key, 0) == 1 for d in whole)
    assert {w.archetype for w in fleet.workloads()} == set(Archetype)
    assert 100 <= len(fleet.workloads()) <= 200
    assert len({w.name for w in fleet.workloads()}) == len(fleet.workloads())


def test_members_fit_the_memory_of_their_device() -> None:
    fleet = build_scenario("mixed", gpus=64, clock=ManualClock())
    devices = {d.key: d for g in fleet.gpus for d in g.devices()}
    table = MemberTable(
        [m.behaviour for m in fleet.members], list(range(len(fleet.members))), [1.0] * len(fleet.members)
    )
    ev = table.evaluate(AFTERNOON + np.arange(0, 7 * 86400, 300))
    peak: dict[str, float] = {}
    for i, m in enumerate(fleet.members):
        peak[m.device_key] = peak.get(m.device_key, 0.0) + float(ev.memory[i].max())
    for key, used in peak.items():
        assert used <= devices[key].memory_bytes, key


def test_gpus_scales_and_seed_decides() -> None:
    small = build_scenario("mixed", gpus=3, clock=ManualClock())
    assert len(small.gpus) == 3 and small.node_names == ["sim-h100-0"]
    big = build_scenario("bench-8xh100", gpus=20, clock=ManualClock())
    assert big.node_names == ["sim-h100-0", "sim-h100-1", "sim-h100-2"] and len(big.gpus) == 20
    again = build_scenario("mixed", seed=5, clock=ManualClock())
    once = build_scenario("mixed", seed=5, clock=ManualClock())
    other = build_scenario("mixed", seed=6, clock=ManualClock())
    assert [w.name for w in again.workloads()] == [w.name for w in once.workloads()]
    assert [m.behaviour for m in again.members] == [m.behaviour for m in once.members]
    assert [m.behaviour for m in again.members] != [m.behaviour for m in other.members]
    assert again.gpus[0].uuid == once.gpus[0].uuid != other.gpus[0].uuid


def test_unknown_scenario_and_node() -> None:
    with pytest.raises(BadInput, match="unknown scenario"):
        build_scenario("nope")
    with pytest.raises(BadInput, match="at least one GPU"):
        build_scenario("mixed", gpus=0)
    with pytest.raises(BadInput, match="has no node"):
        build_scenario("mps").node("sim-h100-9")

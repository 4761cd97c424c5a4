"""Every MIG geometry the simulator builds is one the driver accepts; impossible ones are refused."""

from __future__ import annotations

import pytest
import yaml

from exporter.simulate import ManualClock, build_scenario, scenario_names
from exporter.simulate.topology import Gpu, gpu_instance_id
from slicewise.catalogue import Placement, check_geometry, model
from slicewise.errors import BadInput
from tests.support import shared_file


def _all_mig_gpus() -> list[Gpu]:
    out = []
    for name in scenario_names():
        fleet = build_scenario(name, gpus=64 if name == "mixed" else None, clock=ManualClock())
        out += [g for g in fleet.gpus if g.mig_enabled]
    return out


def test_every_simulated_geometry_is_valid_per_the_reference_tables() -> None:
    reference = yaml.safe_load(shared_file("reference/mig_profiles.yaml").read_text())
    checked = 0
    for gpu in _all_mig_gpus():
        placements = [gi.placement for gi in gpu.instances]
        check_geometry(gpu.model, placements)
        used: set[int] = set()
        for gi in gpu.instances:
            prof = gi.profile
            ref_models = [m for m in reference["models"] if gpu.model.name in m.get("nvml_names", [])]
            assert ref_models, gpu.model.name
            geometry = reference["geometries"][ref_models[0]["geometry"]]["profiles"][prof.key]
            assert gi.placement.start in geometry["placement"]["starts"]
            assert prof.size == geometry["placement"]["size"]
            span = set(range(gi.placement.start, gi.placement.start + prof.size))
            assert not span & used
            used |= span
            assert sum(ci.slices for ci in gi.compute_instances) <= prof.compute_slices
            checked += 1
        assert len({gi.id for gi in gpu.instances}) == len(gpu.instances)
        assert sum(gi.profile.compute_slices for gi in gpu.instances) <= gpu.model.compute_slices
    assert checked > 100


@pytest.mark.parametrize(
    ("key", "profiles", "why"),
    [
        ("H100-80GB", ["4g.40gb", "4g.40gb"], "do not fit"),
        ("A100-80GB", ["7g.80gb", "1g.10gb"], "do not fit"),
        ("A100-40GB", ["3g.20gb", "3g.20gb", "1g.5gb"], "do not fit"),
        ("A30-24GB", ["1g.6gb+me", "1g.6gb+me"], "do not fit"),
        ("A30-24GB", ["3g.20gb"], "no MIG profile"),
        ("H200-141GB", ["2g.35gb"] * 4, "do not fit"),
    ],
)
def test_impossible_geometries_are_refused(key: str, profiles: list[str], why: str) -> None:
    gpu = Gpu("sim-test-0", 0, model(key), seed=0)
    with pytest.raises(BadInput, match=why):
        gpu.configure_mig(profiles)
    assert not gpu.mig_enabled and gpu.instances == []


@pytest.mark.parametrize(
    ("placed", "why"),
    [
        ([("1g.10gb", 0), ("2g.20gb", 0)], "overlaps"),
        ([("1g.10gb", 7)], "cannot start at memory slice 7"),
        ([("3g.40gb", 0), ("3g.40gb", 4), ("1g.10gb", 6)], "overlaps"),
        ([("1g.10gb+me", 0), ("1g.10gb+me", 1)], "at most 1"),
    ],
)
def test_explicit_placements_the_driver_refuses(placed: list[tuple[str, int]], why: str) -> None:
    h100 = model("H100-80GB")
    gpu = Gpu("sim-test-0", 0, h100, seed=0)
    with pytest.raises(BadInput, match=why):
        gpu.set_geometry(tuple(Placement(h100.profile(name), start) for name, start in placed), {})
    assert not gpu.mig_enabled


def test_compute_instances_must_fit_their_gpu_instance() -> None:
    gpu = Gpu("sim-test-0", 0, model("A100-80GB"), seed=0)
    with pytest.raises(BadInput, match=r"do not fit in a 3g\.40gb"):
        gpu.configure_mig(["3g.40gb", "3g.40gb"], splits={0: (2, 2)})
    gpu.configure_mig(["3g.40gb", "3g.40gb"], splits={0: (2, 1)})
    assert [len(gi.compute_instances) for gi in gpu.instances] == [2, 1]


def test_gpu_instance_ids_follow_the_memory_slice_tree() -> None:
    h100 = model("H100-80GB")
    gpu = Gpu("sim-test-0", 0, h100, seed=0)
    gpu.configure_mig(["7g.80gb"])
    assert [gi.id for gi in gpu.instances] == [0]
    gpu.configure_mig(["3g.40gb", "4g.40gb"])
    assert sorted((gi.placement.start, gi.id) for gi in gpu.instances) == [(0, 1), (4, 2)]
    gpu.configure_mig(["1g.10gb"] * 7)
    assert [gi.id for gi in gpu.instances] == list(range(7, 14))
    a30 = model("A30-24GB")
    assert [gpu_instance_id(a30, p) for p in Gpu("x", 0, a30, 0).instances] == []
    gpu = Gpu("sim-test-0", 0, a30, seed=0)
    gpu.configure_mig(["1g.6gb"] * 4)
    assert [gi.id for gi in gpu.instances] == [3, 4, 5, 6]


def test_gpus_without_mig_cannot_enable_it() -> None:
    from dataclasses import replace

    plain = replace(model("H100-80GB"), profiles=())
    with pytest.raises(BadInput, match="does not support MIG"):
        Gpu("sim-test-0", 0, plain, seed=0).configure_mig(["1g.10gb"])

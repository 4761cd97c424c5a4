"""The catalogue matches NVIDIA's tables in ../shared/reference, and its placement rules match the driver's."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest
import yaml

from slicewise import catalogue
from slicewise.catalogue import Placement, check_geometry, place
from slicewise.errors import BadInput
from tests.support import shared_file


@pytest.fixture(scope="module")
def reference() -> dict:
    return yaml.safe_load(shared_file("reference/mig_profiles.yaml").read_text())


def _gib_candidates(value: object) -> list[float]:
    """``mem_gib_lgip`` is a number, a "lo-hi" range across drivers, or UNKNOWN."""
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, str) and re.fullmatch(r"[\d.]+-[\d.]+", value):
        return [float(v) for v in value.split("-")]
    return []


def test_every_model_and_profile_matches_the_reference(reference: dict) -> None:
    ref_models = {m["key"]: m for m in reference["models"]}
    assert {m.key for m in catalogue.models()} >= {"A30-24GB", "A100-40GB", "A100-80GB", "H100-80GB", "H200-141GB"}
    for model in catalogue.models():
        ref = ref_models[model.key]
        geometry = reference["geometries"][ref["geometry"]]
        assert (model.compute_slices, model.memory_slices) == (geometry["compute_slices"], geometry["memory_slices"])
        assert set(model.pci_device_ids) == set(ref["pci_device_ids"])
        assert model.nvml_names[0] in ref["nvml_names"]
        full = ref["sm_count_full"]
        assert model.sm_count == (full["sxm5"] if isinstance(full, dict) else full)
        ref_profiles = {p["key"]: p for p in ref["profiles"]}
        assert {p.key for p in model.profiles} == set(ref_profiles)
        for prof in model.profiles:
            rp, rg = ref_profiles[prof.key], geometry["profiles"][prof.key]
            assert prof.name == rp["name"]
            assert (prof.nvml_enum, prof.smi_id, prof.max_count) == (rg["nvml_enum"], rg["smi_id"], rg["max"])
            assert (prof.compute_slices, prof.memory_slices) == (rg["compute"], rg["memory"])
            assert prof.starts == tuple(rg["placement"]["starts"])
            assert prof.size == rg["placement"]["size"]
            assert prof.sm_count == rp["sms"]
            assert prof.copy_engines == rp["ce"]
            if "mem_mib_gonvml" in rp:
                assert prof.memory_mib == rp["mem_mib_gonvml"]
            else:
                gibs = _gib_candidates(rp["mem_gib_lgip"])
                assert gibs, f"{model.key} {prof.name}: no memory in the reference"
                assert abs(prof.memory_mib / 1024 - max(gibs)) < 0.01, (model.key, prof.name)
            # the memory fraction in the guide's table agrees with the slices
            frac = rp["mem_frac"]
            expected = Fraction(1) if frac == "full" else Fraction(frac)
            assert Fraction(prof.memory_slices, model.memory_slices) == expected or prof.key == "1g-2mem"


def test_all_balanced_geometries_from_mig_parted_are_valid(reference: dict) -> None:
    for ref in reference["models"]:
        found = catalogue.find_model(ref["key"])
        if found is None:
            continue
        names = [name for name, n in ref["all_balanced"].items() for _ in range(n)]
        placed = place(found, names)
        check_geometry(found, placed)
        assert sorted(p.profile.name for p in placed) == sorted(names)


@pytest.mark.parametrize(
    ("model_key", "profiles"),
    [
        ("H100-80GB", ["1g.10gb"] * 7),
        ("H100-80GB", ["4g.40gb", "3g.40gb"]),
        ("A100-80GB", ["3g.40gb", "2g.20gb", "1g.10gb"]),
        ("A100-40GB", ["1g.10gb"] * 4),
        ("A30-24GB", ["2g.12gb", "1g.6gb", "1g.6gb"]),
        ("H200-141GB", ["7g.141gb"]),
    ],
)
def test_valid_geometries_place(model_key: str, profiles: list[str]) -> None:
    gpu = catalogue.model(model_key)
    placed = place(gpu, profiles)
    assert len(placed) == len(profiles)
    check_geometry(gpu, placed)


@pytest.mark.parametrize(
    ("model_key", "profiles", "why"),
    [
        ("H100-80GB", ["1g.10gb"] * 8, "do not fit"),
        ("H100-80GB", ["4g.40gb", "4g.40gb"], "do not fit"),
        ("H100-80GB", ["3g.40gb"] * 3, "do not fit"),
        ("A100-80GB", ["7g.80gb", "1g.10gb"], "do not fit"),
        ("A30-24GB", ["2g.12gb", "2g.12gb", "1g.6gb"], "do not fit"),
        ("A100-80GB", ["1g.10gb+me", "1g.10gb+me"], "do not fit"),
    ],
)
def test_impossible_geometries_are_refused(model_key: str, profiles: list[str], why: str) -> None:
    with pytest.raises(BadInput, match=why):
        place(catalogue.model(model_key), profiles)


def test_check_geometry_names_the_problem() -> None:
    h100 = catalogue.model("NVIDIA H100 80GB HBM3")
    three = h100.profile("3g.40gb")
    with pytest.raises(BadInput, match=r"3g.40gb cannot start at memory slice 2"):
        check_geometry(h100, [Placement(three, 2)])
    with pytest.raises(BadInput, match=r"overlaps"):
        check_geometry(h100, [Placement(three, 0), Placement(h100.profile("2g.20gb"), 2)])
    with pytest.raises(BadInput, match=r"unknown GPU model"):
        catalogue.model("NVIDIA GeForce RTX 4090")
    with pytest.raises(BadInput, match=r"has no MIG profile '5g.50gb'"):
        h100.profile("5g.50gb")


def test_gpm_only_on_hopper() -> None:
    assert catalogue.model("H100-80GB").has_gpm
    assert catalogue.model("H200-141GB").has_gpm
    assert not catalogue.model("A100-80GB").has_gpm
    assert not catalogue.model("A30-24GB").has_gpm

"""The catalogue matches NVIDIA's tables in ../shared/reference, and its placement rules match the driver's."""

from __future__ import annotations

import dataclasses
import re
from fractions import Fraction

import pytest
import yaml

from slicewise import catalogue
from slicewise.catalogue import Placement, check_geometry, place
from slicewise.catalogue.tables import disagreements, from_model, to_model
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


def _marked(marks: dict[str, str], field: str) -> bool:
    """An ``inferred:`` entry for this value, on the profile or (``profile.<field>``) on the model."""
    return field in marks or f"profile.{field}" in marks


def _check(problems: list[str], where: str, field: str, ours: object, ref: object, marks: dict[str, str]) -> None:
    """Equal to the reference, or marked inferred (the reference lacks it, says UNKNOWN, or another source wins)."""
    if ref is not None and ref != "UNKNOWN" and ours == ref:
        return
    if not _marked(marks, field):
        problems.append(f"{where} {field}: {ours!r} vs reference {ref!r}, and not marked inferred")


def _ref_sms(ref: dict) -> list[int]:
    full = ref.get("sm_count_full")
    return list(full.values()) if isinstance(full, dict) else [full]


def test_every_value_matches_the_reference_or_is_marked(reference: dict) -> None:
    """The catalogue check: every model, profile and value equals ../shared/reference/mig_profiles.yaml, or says in
    an ``inferred:`` map how it was obtained; a model outside the reference is marked inferred as a whole."""
    ref_models = {m["key"]: m for m in reference["models"]}
    problems: list[str] = []
    for model in catalogue.models():
        marks = dict(model.inferred)
        assert model.sources, model.key
        if model.reference is None:
            assert model.status.startswith("inferred"), f"{model.key} is outside the reference: status must say so"
            assert {"nvml_names", "pci_device_ids", "memory_total_mib", "sm_count"} <= set(marks), model.key
            continue
        ref = ref_models[model.reference]
        geometry = reference["geometries"][ref["geometry"]]
        assert (model.compute_slices, model.memory_slices) == (geometry["compute_slices"], geometry["memory_slices"])
        names = ref.get("nvml_names")
        if not (isinstance(names, list) and set(model.nvml_names) <= set(names)):
            _check(problems, model.key, "nvml_names", model.nvml_names, None, marks)
        if not set(model.pci_device_ids) <= set(ref["pci_device_ids"]) or len(model.pci_device_ids) < len(
            ref["pci_device_ids"]
        ):
            _check(problems, model.key, "pci_device_ids", model.pci_device_ids, None, marks)
        total = ref.get("total_memory", {}).get("mib")
        _check(problems, model.key, "memory_total_mib", model.memory_total_mib, total, marks)
        if model.sm_count not in _ref_sms(ref):
            _check(problems, model.key, "sm_count", model.sm_count, None, marks)
        ref_profiles = {p["key"]: p for p in ref.get("profiles", [])}
        ref_names = ref.get("profile_names", {})
        for prof in model.profiles:
            where = f"{model.key} {prof.name}"
            pmarks = {**marks, **dict(prof.inferred)}
            rg = geometry["profiles"][prof.key]
            assert (prof.nvml_enum, prof.smi_id, prof.max_count) == (rg["nvml_enum"], rg["smi_id"], rg["max"]), where
            assert (prof.compute_slices, prof.memory_slices) == (rg["compute"], rg["memory"]), where
            assert (prof.starts, prof.size) == (tuple(rg["placement"]["starts"]), rg["placement"]["size"]), where
            rp = ref_profiles.get(prof.key, {})
            _check(problems, where, "name", prof.name, rp.get("name") or ref_names.get(prof.key), pmarks)
            seen = ref.get("lgip_seen", {}).get(prof.name) or ref.get("lgip_seen", {}).get(prof.key) or {}
            _check(problems, where, "sms", prof.sm_count, rp.get("sms") or seen.get("sms"), pmarks)
            ce = rp.get("ce") or ref.get("ce", {}).get(prof.key)
            _check(problems, where, "ce", prof.copy_engines, ce, pmarks)
            memory = rp.get("mem_mib_gonvml")
            if memory is None:
                gibs = _gib_candidates(rp.get("mem_gib_lgip", seen.get("gib")))
                memory = prof.memory_mib if gibs and abs(prof.memory_mib / 1024 - max(gibs)) < 0.01 else None
            _check(problems, where, "memory_mib", prof.memory_mib, memory, pmarks)
            if rp.get("mem_frac"):  # the memory fraction in the guide's table agrees with the slices
                expected = Fraction(1) if rp["mem_frac"] == "full" else Fraction(rp["mem_frac"])
                assert Fraction(prof.memory_slices, model.memory_slices) == expected or prof.key == "1g-2mem"
    assert not problems, "\n".join(problems)


def test_every_reference_model_and_pci_id_is_in_the_catalogue(reference: dict) -> None:
    """No model of the reference file is dropped, and the form-factor entries split its PCI ids between them."""
    by_reference: dict[str, set[str]] = {}
    for model in catalogue.models():
        if model.reference:
            by_reference.setdefault(model.reference, set()).update(model.pci_device_ids)
    for ref in reference["models"]:
        assert by_reference.get(ref["key"]) == set(ref["pci_device_ids"]), ref["key"]
    ids = [i for m in catalogue.models() for i in m.pci_device_ids]
    assert len(ids) == len(set(ids)), "a PCI device id belongs to one catalogue model"


def test_form_factors_with_different_sms_are_separate_entries() -> None:
    """The H100 PCIe has 114 SMs, not the SXM5's 132: its own entry, and every compute fraction follows."""
    pcie, sxm = catalogue.model("NVIDIA H100 PCIe"), catalogue.model("NVIDIA H100 80GB HBM3")
    assert (pcie.key, pcie.sm_count, sxm.sm_count) == ("H100-PCIe-80GB", 114, 132)
    assert pcie.profile("7g.80gb").sm_count == 114
    assert catalogue.model("NVIDIA H20").sm_count == 78
    for name in ("NVIDIA B200", "NVIDIA H100 NVL", "NVIDIA GB200", "NVIDIA RTX PRO 6000 Blackwell Server Edition"):
        assert catalogue.find_model(name) is not None, name


def test_every_model_places_its_own_profiles() -> None:
    """Each profile alone, the maximum count of each, and a full-GPU mix place on every model."""
    for gpu in catalogue.models():
        for prof in gpu.profiles:
            placed = place(gpu, [prof.name] * prof.max_count)
            check_geometry(gpu, placed)
        plain = [p for p in gpu.profiles if p.key in ("1g", "2g")]
        assert place(gpu, [plain[-1].name, plain[0].name]), gpu.key


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


def test_gpm_only_on_hopper_and_newer() -> None:
    assert catalogue.model("B200-180GB").has_gpm
    assert catalogue.model("H100-80GB").has_gpm
    assert catalogue.model("H200-141GB").has_gpm
    assert not catalogue.model("A100-80GB").has_gpm
    assert not catalogue.model("A30-24GB").has_gpm


def test_a_driver_table_becomes_the_model_it_describes() -> None:
    """What the exporter publishes for a GPU, turned back into a model, places and sizes as the catalogue's does:
    the path every GPU the catalogue lacks takes."""
    for gpu in catalogue.models():
        learned = to_model(from_model(gpu))
        assert learned.learned and learned.key != gpu.key and learned.nvml_names == (gpu.name,)
        assert (learned.compute_slices, learned.memory_slices) == (gpu.compute_slices, gpu.memory_slices)
        assert learned.pci_device_ids == (gpu.pci_device_id,)
        ours = {p.name: p for p in gpu.profiles}
        assert {p.name for p in learned.profiles} == set(ours)
        for p in learned.profiles:
            o = ours[p.name]
            assert (p.key, p.starts, p.size, p.max_count, p.sm_count, p.memory_mib) == (
                o.key,
                o.starts,
                o.size,
                o.max_count,
                o.sm_count,
                o.memory_mib,
            )
        assert disagreements(from_model(gpu), gpu) == []


def test_graphics_variants_are_left_out_and_disagreements_named() -> None:
    gpu = catalogue.model("RTX-PRO-6000-96GB")
    table = from_model(gpu)
    gfx = dataclasses.replace(table.profiles[0], name="1g.24gb+gfx", profile_id=47)
    with_gfx = dataclasses.replace(table, profiles=(*table.profiles, gfx))
    assert "1g.24gb+gfx" not in {p.name for p in to_model(with_gfx).profiles}
    fewer = dataclasses.replace(table, profiles=table.profiles[1:])
    moved = dataclasses.replace(table.profiles[2], placement_starts=(0,))
    changed = dataclasses.replace(table, profiles=(*table.profiles[:2], moved, *table.profiles[3:]))
    assert disagreements(fewer, gpu) == [f"{gpu.name} ({gpu.key}): the driver does not offer {table.profiles[0].name}"]
    assert disagreements(changed, gpu) == [
        f"{gpu.name} ({gpu.key}): {moved.name} placement starts: driver [0], catalogue {list(gpu.profiles[2].starts)}"
    ]
    workstation = dataclasses.replace(
        table, model="NVIDIA RTX PRO 6000 Blackwell Workstation Edition", pci_device_id="0x2BB110DE"
    )
    (note,) = disagreements(workstation, gpu)
    assert note.startswith(f"{workstation.model} ({gpu.key}): PCI device id 0x2BB110DE is not in the catalogue's")
    with pytest.raises(BadInput, match="empty"):
        to_model(dataclasses.replace(table, profiles=()))

"""The driver's MIG profile table per GPU model: read through pynvml from the simulated driver, once per model,
again after a MIG mode change, and served as slicewise_mig_profile_* series for the new models (B200, H100 NVL)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pynvml
import pytest
from prometheus_client.parser import text_string_to_metric_families

from advisor.history.profiles import from_exposition
from exporter.collector import profile_families
from exporter.nvml.calls import Calls
from exporter.nvml.profiles import ProfileTables, read_table
from exporter.simulate import Attachment, ManualClock, attach, build_scenario
from exporter.snapshot import Gpu, Snapshot
from slicewise import catalogue
from slicewise.catalogue.tables import from_model
from tests.exporter.promtext import promtool_check
from tests.exporter.simulated import fleet_at, scrape, serving


@pytest.fixture
def b200() -> Iterator[Attachment]:
    attachment = attach(build_scenario("b200-mig", clock=ManualClock(0)))
    pynvml.nvmlInit()
    try:
        yield attachment
    finally:
        while attachment.library.init_count > 0:
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlShutdown()
        attachment.detach()


def _snapshot(attachment: Attachment, mig: bool) -> Snapshot:
    gpu = attachment.node.gpus[0]
    return Snapshot(True, gpus=(Gpu(index=0, uuid=gpu.uuid, model=gpu.model.name, mig_enabled=mig),))


def test_the_table_read_from_the_driver_is_the_models_own(b200: Attachment) -> None:
    calls = Calls()
    table = read_table(calls, b200.node.gpus[0].uuid, "NVIDIA B200")
    assert not calls.errors
    expected = from_model(catalogue.model("NVIDIA B200"))
    assert table is not None and table.pci_device_id == "0x290110DE"
    assert sorted(table.profiles, key=lambda p: p.name) == sorted(expected.profiles, key=lambda p: p.name)


def test_read_once_per_model_and_again_after_a_mig_mode_change(
    b200: Attachment, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    real = pynvml.nvmlDeviceGetGpuInstanceProfileInfo

    def counting(handle: Any, profile: int, version: int = 2) -> Any:
        asked.append(profile)
        return real(handle, profile, version)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetGpuInstanceProfileInfo", counting)
    tables = ProfileTables()
    on, off = _snapshot(b200, True), _snapshot(b200, False)
    assert [t.model for t in tables.update(on, Calls())] == ["NVIDIA B200"]
    first = len(asked)
    assert first == pynvml.NVML_GPU_INSTANCE_PROFILE_COUNT
    for _ in range(3):
        tables.update(on, Calls())
    assert len(asked) == first  # cached: nothing per scrape
    assert tables.update(off, Calls())  # MIG turned off: the last table stays, the driver is not asked
    assert len(asked) == first
    tables.update(on, Calls())  # and on again: read anew
    assert len(asked) == 2 * first
    assert ProfileTables().update(off, Calls()) == []  # never seen in MIG mode: no table yet


@pytest.mark.parametrize(("scenario", "model"), [("b200-mig", "NVIDIA B200"), ("h100nvl-mig", "NVIDIA H100 NVL")])
def test_the_exporter_serves_the_new_models_and_their_profile_tables(scenario: str, model: str) -> None:
    with serving(fleet_at(scenario)) as exporter:
        text = scrape(exporter)
        again = scrape(exporter)
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    info = [s for s in samples if s.name == "slicewise_gpu_info"]
    assert [s.labels["model"] for s in info] == [model]
    gpu = catalogue.model(model)
    migs = {s.labels["profile"] for s in samples if s.name == "slicewise_mig_info"}
    assert migs and migs <= {p.name for p in gpu.profiles}
    (table,) = from_exposition(text)
    assert table.model == model and table.pci_device_id == gpu.pci_device_id
    assert {p.name for p in table.profiles} == {p.name for p in gpu.profiles}
    for p in table.profiles:
        ours = gpu.profile(p.name)
        assert (p.sm_count, p.memory_mib, p.placement_starts) == (ours.sm_count, ours.memory_mib, ours.starts)
    assert from_exposition(again) == [table]
    assert promtool_check(text) == ""


def test_no_table_no_series() -> None:
    assert profile_families([]) == []

"""GPU models beyond the original five: a Blackwell history gets MIG advice from the catalogue, and a GPU the
catalogue does not know gets it from the MIG profile table its driver published (exporter series or a file)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from advisor.history import read_history
from advisor.history.profiles import (
    INFO_QUERY,
    MEMORY_QUERY,
    SM_QUERY,
    from_exposition,
    from_prometheus,
    learn,
    read_beside,
    write_beside,
)
from advisor.history.prometheus import Sample
from advisor.model import Mode, Recommendation
from advisor.pipeline import from_history, recommend, recommend_data
from slicewise import catalogue
from slicewise.catalogue import Placement, check_geometry
from slicewise.catalogue.tables import DriverTable, from_model
from slicewise.errors import BadInput
from tests.support import shared_file

REAL = "data/real/alibaba-gentd26-sd-pods.csv"
FUTURE = "NVIDIA B999"  # a GPU no catalogue knows: advised only through its driver's table


def _mig_geometries_are_valid(rec: Recommendation, gpu: catalogue.GpuModel) -> int:
    """Every planned MIG GPU of the model places as the driver would; returns how many there are."""
    planned = [g for g in rec.plan.gpus if g.mode == Mode.MIG and g.gpu_model == gpu.name]
    for g in planned:
        check_geometry(gpu, [Placement(gpu.profile(i.profile), i.start) for i in g.mig_instances])
    return len(planned)


def _mig_parted_devices(rec: Recommendation) -> list[dict]:
    parsed = yaml.safe_load(rec.configs.mig_parted)
    return [e for entries in parsed["mig-configs"].values() for e in entries if e.get("mig-devices")]


@pytest.fixture(scope="module")
def real_history() -> pd.DataFrame:
    return read_history(shared_file(REAL))


@pytest.fixture(scope="module")
def some_pods(real_history: pd.DataFrame) -> pd.DataFrame:
    """A quarter of the real trace's pods: enough for MIG advice, quick to advise."""
    pods = sorted(real_history["workload"].unique())[::4]
    return real_history[real_history["workload"].isin(pods)].reset_index(drop=True)


@pytest.mark.slow
def test_a_blackwell_history_gets_mig_advice_with_blackwell_profiles(real_history: pd.DataFrame) -> None:
    """The real trace relabelled as B200s (before issue 18: every pod 'unplaced: unknown GPU')."""
    history = real_history.assign(gpu_model="NVIDIA B200")
    rec = recommend_data(from_history(history, "b200-trace", timedelta(days=14)))
    b200 = catalogue.model("NVIDIA B200")
    assert not rec.plan.unplaced
    mig = [w for w in rec.workloads if w.decision.mode == Mode.MIG]
    assert len(mig) >= len(rec.workloads) // 3
    assert {w.decision.profile for w in mig} <= {p.name for p in b200.profiles}
    assert _mig_geometries_are_valid(rec, b200) > 0
    for entry in _mig_parted_devices(rec):
        assert "0x290110DE" in entry["device-filter"]
        catalogue.place(b200, [p for p, n in entry["mig-devices"].items() for _ in range(n)])
    assert rec.plan.gpus_needed < rec.plan.gpus_now


def _future_table() -> DriverTable:
    """What a future GPU's driver might publish: B200's geometry under a name and PCI id nobody knows yet."""
    return dataclasses.replace(from_model(catalogue.model("NVIDIA B200")), model=FUTURE, pci_device_id="0x3FFF10DE")


def test_an_unknown_gpu_is_advised_from_the_table_beside_its_history(some_pods: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "future.parquet"
    some_pods.assign(gpu_model=FUTURE).to_parquet(path)
    before = recommend(path, timedelta(days=14))
    assert {u.workload for u in before.plan.unplaced} == {w.workload for w in before.workloads}

    write_beside(path, [_future_table()])
    assert read_beside(path) == [_future_table()]
    rec = recommend(path, timedelta(days=14))
    assert not rec.plan.unplaced
    learned = learn(read_beside(path)).models[0]
    mig = [w for w in rec.workloads if w.decision.mode == Mode.MIG]
    assert mig and {w.decision.profile for w in mig} <= {p.name for p in learned.profiles}
    assert _mig_geometries_are_valid(rec, learned) > 0
    assert all("0x3FFF10DE" in e["device-filter"] for e in _mig_parted_devices(rec))
    assert catalogue.find_model(FUTURE) is None  # learned for that advice only


def test_a_table_disagreeing_with_the_catalogue_is_noted_and_the_catalogue_kept(
    some_pods: pd.DataFrame, tmp_path: Path
) -> None:
    h100 = from_model(catalogue.model("NVIDIA H100 80GB HBM3"))
    one_g = h100.profiles[0]
    changed = dataclasses.replace(one_g, sm_count=one_g.sm_count + 2, memory_mib=one_g.memory_mib + 64)
    table = dataclasses.replace(h100, profiles=(changed, *h100.profiles[1:]))
    path = tmp_path / "h100.parquet"
    some_pods.assign(gpu_model="NVIDIA H100 80GB HBM3").to_parquet(path)
    write_beside(path, [table])
    rec = recommend(path, timedelta(days=14))
    notes = [n for n in rec.notes if "differs from slicewise's catalogue" in n]
    assert len(notes) == 1
    assert f"{one_g.name} SMs: driver {one_g.sm_count + 2}, catalogue {one_g.sm_count}" in notes[0]
    assert "memory" not in notes[0]  # 64 MiB is a driver version's difference, not a disagreement


class _Prometheus:
    """Answers the three profile queries from an exporter's /metrics text, as Prometheus would after a scrape."""

    def __init__(self, tables: list[DriverTable]) -> None:
        self.tables = tables

    def query(self, expr: str, at: datetime) -> list[Sample]:
        out = []
        for t in self.tables:
            for p in t.profiles:
                key = {"model": t.model, "profile": p.name}
                if expr == INFO_QUERY:
                    labels = {
                        **key,
                        "profile_id": str(p.profile_id),
                        "nvml_enum": str(p.nvml_enum),
                        "pci_device_id": t.pci_device_id,
                        "compute_slices": str(p.compute_slices),
                        "instances_max": str(p.instances_max),
                        "placement_starts": ",".join(map(str, p.placement_starts)),
                        "placement_size": str(p.placement_size),
                        "copy_engines": str(p.copy_engines),
                        "decoders": str(p.decoders),
                        "jpeg": str(p.jpeg),
                        "ofa": str(p.ofa),
                    }
                    out.append(Sample(labels, 1.0))
                elif expr == MEMORY_QUERY:
                    out.append(Sample(key, float(p.memory_mib * 1024 * 1024)))
                elif expr == SM_QUERY:
                    out.append(Sample(key, float(p.sm_count)))
        return out


def test_tables_read_from_prometheus_round_trip() -> None:
    table = _future_table()
    got = from_prometheus(_Prometheus([table]), datetime.now(UTC))  # type: ignore[arg-type]
    assert got == [dataclasses.replace(table, profiles=tuple(sorted(table.profiles, key=lambda p: p.nvml_enum)))]
    assert from_prometheus(_Prometheus([]), datetime.now(UTC)) == []  # type: ignore[arg-type]


def test_an_unknown_gpu_is_advised_from_the_exporters_published_table(some_pods: pd.DataFrame, tmp_path: Path) -> None:
    """The exporter on a simulated B200 node publishes its driver's table; renamed as a GPU no catalogue knows, that
    table is all the advisor has, and it gives MIG advice with the driver's profiles."""
    from tests.exporter.simulated import fleet_at, scrape, serving

    with serving(fleet_at("b200-mig")) as exporter:
        published = from_exposition(scrape(exporter))
    assert [t.model for t in published] == ["NVIDIA B200"]
    future = [dataclasses.replace(published[0], model=FUTURE)]
    path = tmp_path / "future.parquet"
    some_pods.assign(gpu_model=FUTURE).to_parquet(path)
    write_beside(path, future)
    rec = recommend(path, timedelta(days=14))
    mig = {w.decision.profile for w in rec.workloads if w.decision.mode == Mode.MIG}
    assert mig and mig <= {p.name for p in published[0].profiles}
    assert not rec.plan.unplaced


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("version: 2\nmodels: []\n", "not a MIG profile table file"),
        ("version: 1\nmodels: [{model: X, profiles: [{name: 1g.5gb}]}]\n", r"profiles\[0\] lacks profile_id"),
        ("version: 1\nmodels: [{profiles: []}]\n", r"models\[0\] needs a model name"),
        ("[unclosed\n", "cannot read the MIG profile tables"),
    ],
)
def test_a_malformed_table_file_is_bad_input_naming_it(tmp_path: Path, content: str, problem: str) -> None:
    history = tmp_path / "h.csv"
    (tmp_path / "h.csv.mig-profiles.yaml").write_text(content)
    with pytest.raises(BadInput, match=problem):
        read_beside(history)

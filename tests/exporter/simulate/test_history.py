"""History files: DESIGN.md's schema, the sharing and SM-fraction rules, the live fleet's numbers, determinism."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pynvml
import pytest

from advisor.history.file import read_history
from exporter.simulate import ANCHOR, ManualClock, attach, build_scenario
from exporter.simulate import history as history_module
from exporter.simulate.history import write_history
from slicewise.history_schema import REQUIRED_COLUMNS, truth_path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_seed_reproduces_the_history_byte_for_byte(tmp_path: Path, suffix: str) -> None:
    first, second, other = (tmp_path / f"{n}{suffix}" for n in ("a", "b", "c"))
    write_history(first, days=1, seed=7)
    write_history(second, days=1, seed=7)
    write_history(other, days=1, seed=8)
    assert _digest(first) == _digest(second)
    assert _digest(truth_path(first)) == _digest(truth_path(second))
    assert _digest(first) != _digest(other)


def test_parquet_history_has_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "fleet.parquet"
    summary = write_history(path, days=1, scenario="mixed")
    schema = pq.read_schema(path)
    assert list(schema.names)[: len(REQUIRED_COLUMNS)] == list(REQUIRED_COLUMNS)
    assert schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("memory_used_bytes").type == pa.int64()
    assert schema.field("sm_active_gpu_fraction").type == pa.float64()
    assert all(schema.field(c).type == pa.string() for c, t in REQUIRED_COLUMNS.items() if t == "string")
    frame = read_history(path)  # the advisor's validating reader accepts it
    assert len(frame) == summary.rows > 0
    assert frame["timestamp"].min() == pd.Timestamp(summary.start, unit="s", tz="UTC")
    assert frame["timestamp"].max() == pd.Timestamp(summary.end - 60, unit="s", tz="UTC")
    assert frame["workload"].nunique() <= summary.workloads == 132
    assert (frame["memory_used_bytes"] > 0).all() and (frame["memory_used_bytes"] % 2**20 == 0).all()
    measured = frame["sm_active_gpu_fraction"].dropna()
    assert measured.between(0, 1).all() and measured.max() > 0.5


def test_csv_history_has_epoch_seconds_and_empty_unmeasured_cells(tmp_path: Path) -> None:
    path = tmp_path / "fleet.csv"
    write_history(path, days=0.25, scenario="a100-mig")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert int(rows[0]["timestamp"]) == int(ANCHOR - 0.25 * 86400)
    mig_rows = [r for r in rows if r["mig_profile"]]
    assert mig_rows and all(r["sm_active_gpu_fraction"] == "" for r in mig_rows)  # A100 MIG: NVML cannot measure
    frame = read_history(path)
    assert frame["sm_active_gpu_fraction"].isna().all()


def test_truth_file_names_every_workload_with_its_archetype(tmp_path: Path) -> None:
    path = tmp_path / "fleet.parquet"
    write_history(path, days=1)
    truth = pd.read_csv(truth_path(path))
    fleet = build_scenario("mixed", clock=ManualClock())
    assert list(truth.columns[:2]) == ["workload", "archetype"]
    assert dict(zip(truth.workload, truth.archetype, strict=True)) == {
        w.name: w.archetype.value for w in fleet.workloads()
    }
    assert set(truth.archetype) == {"online-inference", "batch-inference", "training", "fine-tuning", "notebook", "hpc"}
    history = read_history(path)
    assert set(history["workload"].unique()) <= set(truth.workload)


def test_sharing_is_derived_per_sample(tmp_path: Path) -> None:
    path = tmp_path / "fleet.parquet"
    write_history(path, days=2)
    frame = read_history(path)
    fleet = build_scenario("mixed", clock=ManualClock())
    mps_gpus = {g.uuid for g in fleet.gpus if g.mps and not g.mig_enabled}
    whole = frame[(frame.mig_profile == "") & ~frame.gpu_uuid.isin(mps_gpus)]
    together = whole.groupby(["timestamp", "gpu_uuid"], observed=True)["workload"].transform("nunique")
    assert (whole.sharing[together > 1] == "timeslice").all()
    assert (whole.sharing[together == 1] == "exclusive").all()
    assert (frame.sharing[frame.mig_profile != ""] == "mig").all()
    assert (frame.sharing[(frame.mig_profile == "") & frame.gpu_uuid.isin(mps_gpus)] == "mps").all()
    assert set(frame.sharing.unique()) == {"exclusive", "mig", "mps", "timeslice"}
    # a time-sliced GPU whose notebooks come and go is exclusive in some samples, time-sliced in others
    per_gpu = whole.groupby("gpu_uuid", observed=True)["sharing"].nunique()
    assert (per_gpu == 2).any()


def test_history_is_what_the_live_fleet_shows(tmp_path: Path) -> None:
    """At a sample's time, the live node reports the memory the history holds, and the history's SM fraction is the
    device's SM-active ratio x device SMs / GPU SMs."""
    path = tmp_path / "fleet.parquet"
    write_history(path, days=1, scenario="h100-mig")
    frame = read_history(path)
    at = frame["timestamp"].iloc[-1]
    rows = frame[frame.timestamp == at]
    fleet = build_scenario("h100-mig", clock=ManualClock(at.timestamp()))
    with attach(fleet) as a:
        pynvml.nvmlInit()
        tick = a.node.runtime.state()
        for device_index, device in enumerate(tick.devices):
            procs = tick.processes[device_index]
            if not procs:
                continue
            mig = pynvml.nvmlDeviceGetHandleByUUID(device.uuid)
            live = {a.node.members[p.member].workload.name: 0 for p in procs}
            for info in pynvml.nvmlDeviceGetMPSComputeRunningProcesses(
                mig
            ) or pynvml.nvmlDeviceGetComputeRunningProcesses(mig):
                live[a.node.members[tick.by_pid[info.pid].member].workload.name] += info.usedGpuMemory
            mine = rows[rows.mig_profile == device.profile_name]
            for workload, memory in live.items():
                assert memory in set(mine[mine.workload == workload].memory_used_bytes)
            if len(live) == 1:  # alone on the device: its share is the device's whole activity
                (fraction,) = set(mine[mine.workload == next(iter(live))].sm_active_gpu_fraction)
                expected = float(tick.device_ratio[device_index]) * device.sm_count / device.gpu.model.sm_count
                assert fraction == pytest.approx(expected, abs=1e-4)
        pynvml.nvmlShutdown()


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fleet.parquet"
    write_history(path, days=0.5, scenario="timeslice")
    before = _digest(path)
    calls = {"n": 0}
    original = history_module._arrow_chunk

    def fail_later(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(history_module, "CELLS_PER_CHUNK", 100)
    monkeypatch.setattr(history_module, "_arrow_chunk", fail_later)
    with pytest.raises(RuntimeError, match="disk full"):
        write_history(path, days=1, scenario="timeslice")
    assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.parquet", "fleet.parquet.truth.csv"]


def test_bad_arguments_are_bad_input(tmp_path: Path) -> None:
    from slicewise.errors import BadInput

    with pytest.raises(BadInput, match="unknown history format"):
        write_history(tmp_path / "fleet.json", days=1)
    with pytest.raises(BadInput, match="unknown scenario"):
        write_history(tmp_path / "fleet.csv", days=1, scenario="nope")
    with pytest.raises(BadInput, match="less than one sample"):
        write_history(tmp_path / "fleet.csv", days=0.0001)


def test_scaling_to_more_gpus(tmp_path: Path) -> None:
    summary = write_history(tmp_path / "big.parquet", days=0.5, gpus=64)
    frame = read_history(tmp_path / "big.parquet")
    assert summary.gpus == 64
    assert frame.gpu_uuid.nunique() <= 64 and frame.node.nunique() == 10
    assert np.isclose(frame.groupby("timestamp").size().mean(), summary.rows / 720)

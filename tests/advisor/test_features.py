"""compute_features: figures a person computes by hand from the real data, and the rules on hand-made histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from advisor.features import IDLE_GPU_FRACTION, compute_features, group_quantiles, trailing_window
from advisor.history import read_history
from advisor.model import QUANTILE_LEVELS, Window
from slicewise.history_schema import Sharing
from tests.support import shared_file

GIB = 1024**3
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"


def test_real_data_features_match_a_hand_computation():
    path = shared_file("data/real/alibaba-gentd26-sd-pods.csv")
    features = {f.workload: f for f in compute_features(read_history(path))}

    raw = pd.read_csv(path)  # independently of the advisor: plain pandas, as a person would
    by = raw.groupby("workload")
    mem, sm = by["memory_used_bytes"], by["sm_active_gpu_fraction"]
    hand = pd.DataFrame(
        {
            "samples": by.size(),
            "peak": mem.max(),
            "p99": mem.quantile(0.99),
            "p95": mem.quantile(0.95),
            "mean": mem.mean(),
            "c_peak": sm.max(),
            "c_p99": sm.quantile(0.99),
            "c_p95": sm.quantile(0.95),
            "c_mean": sm.mean(),
            "c_std": sm.std(ddof=0),
            "duty": by["sm_active_gpu_fraction"].apply(lambda x: (x > 0.01).mean()),
            "times": by["timestamp"].nunique(),
        }
    )
    steps = (raw["timestamp"].max() - raw["timestamp"].min()) / 57 + 1  # the trace samples every 57 s
    assert len(features) == len(hand) == 72
    for workload, row in hand.iterrows():
        f = features[workload]
        assert f.gpu_model == A100 and f.sharing is Sharing.EXCLUSIVE and f.mig_profile == ""
        assert f.samples == row["samples"]
        assert f.memory_peak_bytes == row["peak"]
        assert f.memory_p99_bytes == pytest.approx(row["p99"], abs=1)
        assert f.memory_p95_bytes == pytest.approx(row["p95"], abs=1)
        assert f.memory_mean_bytes == pytest.approx(row["mean"], abs=1)
        assert f.compute_peak_gpu_fraction == pytest.approx(row["c_peak"], abs=1e-12)
        assert f.compute_p99_gpu_fraction == pytest.approx(row["c_p99"], abs=1e-12)
        assert f.compute_p95_gpu_fraction == pytest.approx(row["c_p95"], abs=1e-12)
        assert f.compute_mean_gpu_fraction == pytest.approx(row["c_mean"], abs=1e-12)
        assert f.duty_cycle == pytest.approx(row["duty"])
        mu, sigma = row["c_mean"], row["c_std"]
        assert f.burstiness == pytest.approx((sigma - mu) / (sigma + mu), abs=1e-9)
        assert f.coverage == pytest.approx(row["times"] / steps)
        assert f.process_count == 1 and f.devices == 1
        assert set(f.memory_quantiles) == set(QUANTILE_LEVELS)
    # what the README says of the trace holds in the features: spiky memory, mostly idle
    assert np.median([f.memory_peak_bytes / f.memory_mean_bytes for f in features.values()]) > 1.5
    assert np.median([f.duty_cycle for f in features.values()]) < 0.5


def sample_rows(workload, n, *, model=H100, profile="", sharing="exclusive", gpu="GPU-a", memory=GIB, sm=0.5, t0=T0):
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(t0 + 60 * np.arange(n), unit="s", utc=True),
            "workload": workload,
            "node": "n1",
            "gpu_uuid": gpu,
            "gpu_model": model,
            "mig_profile": profile,
            "sharing": sharing,
            "memory_used_bytes": np.broadcast_to(np.asarray(memory, dtype=np.int64), (n,)),
            "sm_active_gpu_fraction": np.broadcast_to(np.asarray(sm, dtype=np.float64), (n,)),
        }
    )


def frame(*parts: pd.DataFrame) -> pd.DataFrame:
    out = pd.concat(parts, ignore_index=True)
    for column in ("workload", "node", "gpu_uuid", "gpu_model", "mig_profile", "sharing"):
        out[column] = out[column].astype("category")
    return out


def test_quantiles_are_linear_interpolation_like_numpy_and_prometheus():
    rng = np.random.default_rng(7)
    counts = np.array([1, 2, 5, 100, 1001])
    values = [np.sort(rng.random(n)) for n in counts]
    levels = np.array([0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0])
    got = group_quantiles(np.concatenate(values), counts, levels)
    for row, v in zip(got, values, strict=True):
        assert row == pytest.approx(np.quantile(v, levels), abs=1e-15)


def test_a_workload_on_two_models_is_two_rows_and_mig_profile_is_the_most_frequent():
    history = frame(
        sample_rows("ml/a", 10, profile="3g.40gb", sharing="mig", memory=20 * GIB, sm=0.2),
        sample_rows("ml/a", 4, profile="2g.20gb", sharing="mig", memory=10 * GIB, sm=0.1, t0=T0 + 600),
        sample_rows("ml/a", 5, model=A100, memory=30 * GIB, sm=np.nan, gpu="GPU-b"),
    )
    features = compute_features(history)
    assert [(f.workload, f.gpu_model) for f in features] == [("ml/a", A100), ("ml/a", H100)]
    a100, h100 = features
    assert (h100.sharing, h100.mig_profile, h100.samples) == (Sharing.MIG, "3g.40gb", 14)
    assert h100.memory_peak_bytes == 20 * GIB and h100.memory_mean_bytes == round((10 * 20 + 4 * 10) * GIB / 14)
    assert h100.compute_peak_gpu_fraction == pytest.approx(0.2)
    assert (a100.sharing, a100.mig_profile) == (Sharing.EXCLUSIVE, "")
    # compute not measured: None everywhere, never zero
    assert a100.compute_known is False
    assert a100.compute_p95_gpu_fraction is None and a100.duty_cycle is None and a100.compute_quantiles is None


def test_duty_cycle_burstiness_and_partly_measured_compute():
    sm = np.array([0.0] * 6 + [0.8, 0.8, np.nan, 0.005])  # 9 measured: 2 active (0.005 is idle)
    history = frame(sample_rows("nb/x", 10, sm=sm), sample_rows("svc/y", 10, sm=0.3))
    notebook, service = compute_features(history)
    assert notebook.duty_cycle == pytest.approx(2 / 9)
    measured = sm[~np.isnan(sm)]
    mu, sigma = measured.mean(), measured.std()
    assert notebook.burstiness == pytest.approx((sigma - mu) / (sigma + mu))
    assert notebook.burstiness > 0.2  # spikes over idle
    assert service.burstiness == pytest.approx(-1.0)  # constant demand
    assert service.duty_cycle == 1.0 and IDLE_GPU_FRACTION < 0.3


def test_replicas_count_as_devices_and_process_count_is_the_most_at_once():
    history = frame(
        sample_rows("web/api", 10, gpu="GPU-a", memory=8 * GIB),
        sample_rows("web/api", 10, gpu="GPU-b", memory=12 * GIB),
        sample_rows("web/api", 5, gpu="GPU-c", memory=10 * GIB),
    ).assign(process_count=[1] * 20 + [3] * 5, namespace="web")
    (f,) = compute_features(history)
    assert (f.samples, f.devices, f.process_count, f.namespace) == (25, 3, 3, "web")
    assert f.coverage == 1.0  # 10 distinct times of 10 steps, though 25 rows
    assert f.memory_peak_bytes == 12 * GIB
    assert f.memory_quantiles[0.5] == 10 * GIB


def test_timeslice_sharing_is_the_most_frequent_mode():
    history = frame(
        sample_rows("a/x", 6, sharing="timeslice"),
        sample_rows("a/x", 4, sharing="exclusive", t0=T0 + 360),
    )
    assert compute_features(history)[0].sharing is Sharing.TIMESLICE


def test_window_is_start_exclusive_end_inclusive_and_sets_coverage():
    history = frame(sample_rows("a/x", 60, memory=np.arange(60) * GIB), sample_rows("b/y", 15))
    start = datetime.fromtimestamp(T0 + 60 * 9, tz=UTC)  # the sample at minute 9 is outside
    window = Window(start=start, end=start + timedelta(minutes=20))
    a, b = compute_features(history, window)
    assert a.samples == 20 and a.memory_peak_bytes == 29 * GIB and a.memory_quantiles[0.5] == round(19.5 * GIB)
    assert a.coverage == 1.0
    assert (b.workload, b.samples, b.coverage) == ("b/y", 5, 5 / 20)  # minutes 10..14 of the window's 20
    assert compute_features(history, Window(start=start - timedelta(days=9), end=start - timedelta(days=8))) == []
    last = trailing_window(history, timedelta(minutes=30))
    assert last.end == datetime.fromtimestamp(T0 + 60 * 59, tz=UTC)
    assert compute_features(history, last)[0].samples == 30


def test_coverage_counts_missing_samples():
    rows = sample_rows("a/x", 100)
    history = frame(rows.drop(index=range(10, 40)), sample_rows("b/y", 100))  # 30 of 100 minutes missing
    a, b = compute_features(history)
    assert a.coverage == pytest.approx(0.7) and b.coverage == 1.0
    assert compute_features(history, step=timedelta(seconds=30))[1].coverage == pytest.approx(100 / 199)


def test_plain_string_columns_work_as_well_as_categoricals():
    history = pd.concat([sample_rows("a/x", 5, sm=0.1), sample_rows("b/y", 5, sm=0.9)], ignore_index=True)
    assert [f.compute_mean_gpu_fraction for f in compute_features(history)] == pytest.approx([0.1, 0.9])

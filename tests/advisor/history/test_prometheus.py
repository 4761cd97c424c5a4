"""The Prometheus source against a real Prometheus loaded with a history: the same features as the file gives.

Tolerances, and why: the range queries return exactly the samples the file holds, and the reader computes the
file's statistics over them (numpy's linear quantile rule is ``quantile_over_time``'s), so everything agrees to
floating-point rounding (1e-9 for fractions, 1 byte for memory) — also for workloads on several devices and over a
window cut into several chunks, as long as the samples held stay under ``exact_samples``. Past that, each
workload's samples are folded into summaries with a quantile every 1 % and merged (``merge.py``): those quantiles
are judged by rank — the share of the workload's samples below the estimate must be within 0.02 of the level
(measured worst 0.0125 with six folded chunks of 60 samples). Counts, sums, peaks, duty cycle and burstiness are
exact whatever the chunks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from advisor.features import compute_features
from advisor.history import promql, read_history
from advisor.history.prometheus import PrometheusClient, PrometheusSource
from advisor.model import QUANTILE_LEVELS, Window, WorkloadFeatures
from exporter.simulate.openmetrics import write_openmetrics as write_openmetrics_full
from slicewise.errors import JobFailed
from tests.advisor.history.fleet import A100, H100, small_fleet, whole_window
from tests.advisor.history.openmetrics import write_openmetrics
from tests.advisor.history.server import backfill, backfill_rules, prometheus_loaded_with, prometheus_serving
from tests.support import REPO, missing

pytestmark = pytest.mark.needs_binary
EXACT = (
    "samples",
    "coverage",
    "memory_peak_bytes",
    "memory_mean_bytes",
    "sharing",
    "mig_profile",
    "namespace",
    "process_count",
    "devices",
    "duty_cycle",
)


@pytest.fixture(scope="module")
def fleet_prometheus(tmp_path_factory):
    """The small fleet with A100 MIG compute measured by dcgm-exporter, served by a real Prometheus."""
    workdir = tmp_path_factory.mktemp("prometheus")
    history = small_fleet(a100_mig_compute=True)
    openmetrics = write_openmetrics(history, workdir / "fleet.om", dcgm=True)
    with prometheus_loaded_with(openmetrics, workdir, lookback="59s") as url:  # gaps end as staleness would end them
        yield url, history


def by_key(features: list[WorkloadFeatures]) -> dict:
    return {(f.workload, f.gpu_model): f for f in features}


def assert_exact(got: WorkloadFeatures, want: WorkloadFeatures) -> None:
    for name in EXACT:
        assert getattr(got, name) == pytest.approx(getattr(want, name), abs=1e-9), name
    for name in ("compute_peak_gpu_fraction", "compute_mean_gpu_fraction", "burstiness"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), abs=1e-9), name


def write_openmetrics_with_rules(history, out):
    return write_openmetrics_full(history, out, dcgm=True, recorded=True).path


def assert_quantiles_exact(got: WorkloadFeatures, want: WorkloadFeatures) -> None:
    assert_exact(got, want)
    assert got.memory_quantiles == pytest.approx(want.memory_quantiles, abs=1)
    assert (got.memory_p95_bytes, got.memory_p99_bytes) == pytest.approx(
        (want.memory_p95_bytes, want.memory_p99_bytes), abs=1
    )
    assert got.compute_quantiles == pytest.approx(want.compute_quantiles, abs=1e-9)
    assert got.compute_p95_gpu_fraction == pytest.approx(want.compute_p95_gpu_fraction, abs=1e-9)


def test_features_match_the_history_file(fleet_prometheus):
    url, history = fleet_prometheus
    window = whole_window()
    want = by_key(compute_features(history, window))
    with PrometheusSource(url) as source:
        got = by_key(source.features(window, step=timedelta(seconds=60)))
    assert got.keys() == want.keys()
    for key, f in got.items():
        assert_quantiles_exact(f, want[key])
    api = got[("web/api", A100)]
    assert api.devices == 2 and api.samples == 720  # two replicas: exact too (the samples, not summaries, merge)
    # what the fleet is made of came through: MIG with its profile, time-slicing, MPS, gaps, process counts
    assert (got[("ml/train", H100)].mig_profile, got[("ml/train", H100)].process_count) == ("3g.40gb", 2)
    assert got[("ts/b", A100)].sharing == "timeslice" and got[("mps/x", H100)].sharing == "mps"
    assert got[("nb/bob", H100)].coverage == pytest.approx(240 / 360)
    assert got[("hpc/sim", A100)].compute_known  # A100 MIG: from DCGM_FI_PROF_SM_ACTIVE
    assert got[("roam/job", H100)].coverage == got[("roam/job", A100)].coverage == 0.5  # counted per model


def rank_error(values: np.ndarray, estimate: float, q: float) -> float:
    """How far, in share of samples, ``estimate`` is from being a ``q`` quantile of ``values`` (0: it is one)."""
    ordered = np.sort(values)
    below = np.searchsorted(ordered, estimate, "left") / len(ordered)
    at_or_below = np.searchsorted(ordered, estimate, "right") / len(ordered)
    slack = 1 / len(ordered)  # interpolation between two neighbouring samples
    return 0.0 if below - slack <= q <= at_or_below + slack else min(abs(q - below), abs(q - at_or_below))


def test_chunks_sized_from_the_series_bound_every_query_and_keep_quantiles_exact(fleet_prometheus):
    """A 6,000-sample cap: several chunks, each query under the cap (Prometheus's own count), the file's figures."""
    url, history = fleet_prometheus
    window = whole_window()
    want = by_key(compute_features(history, window))
    with PrometheusSource(url, max_samples_per_query=6000, stats=True) as source:
        chunk = source.chunk_for(window, timedelta(seconds=60), source.sources(window))
        got = by_key(source.features(window))
        stats = source.client.stats
    assert chunk < window.end - window.start and source.folds == 0
    assert stats is not None and 0 < stats.peak_samples <= 6000
    assert stats.samples_read <= 3 * len(history)  # each raw sample read about once (history rows: 4,200)
    assert got.keys() == want.keys()
    for key, f in got.items():
        assert_quantiles_exact(f, want[key])


def test_chunked_features_agree_within_the_merge_error(fleet_prometheus):
    """Six chunks of 60 samples, each folded into summaries: quantiles from their mixture, judged by rank.

    A quantile where the data jumps (idle, then bursts) can move by the whole jump for a tiny change in rank, so
    the estimate is judged by the share of samples below it, not by its value.
    """
    url, history = fleet_prometheus
    window = whole_window()
    want = by_key(compute_features(history, window))
    with PrometheusSource(url, chunk=timedelta(hours=1), exact_samples=1) as source:
        got = by_key(source.features(window))
        assert source.folds == 6
    worst = 0.0
    for (workload, model), f in got.items():
        assert_exact(f, want[(workload, model)])
        rows = history[(history["workload"] == workload) & (history["gpu_model"] == model)]
        for q in QUANTILE_LEVELS:
            memory = rows["memory_used_bytes"].to_numpy()
            worst = max(worst, rank_error(memory, f.memory_quantiles[q], q))
            if f.compute_known:
                compute = rows["sm_active_gpu_fraction"].to_numpy()
                worst = max(worst, rank_error(compute, f.compute_quantiles[q], q))
    assert 0 < worst <= 0.02  # measured: 0.0125; 0 would mean the summaries were not merged at all


def test_per_sample_attribution_is_the_history_row(fleet_prometheus):
    """At one instant, each workload-device series is one history row (the recording rules' numbers)."""
    url, history = fleet_prometheus
    at = whole_window().end - timedelta(minutes=30)
    rows = history[history["timestamp"] == at]
    with PrometheusClient(url) as client:
        memory = client.query(promql.workload_device_memory(promql.INSTANT), at)
        compute = client.query(promql.workload_device_compute(promql.INSTANT), at)
    assert sorted((s.labels["workload"], s.labels["gpu_uuid"], s.value) for s in memory) == sorted(
        zip(
            rows["workload"].astype(str),
            rows["gpu_uuid"].astype(str),
            rows["memory_used_bytes"].astype(float),
            strict=True,
        )
    )
    want = {
        (w, g): x
        for w, g, x in zip(
            rows["workload"].astype(str), rows["gpu_uuid"].astype(str), rows["sm_active_gpu_fraction"], strict=True
        )
    }
    assert {(s.labels["workload"], s.labels["gpu_uuid"]): s.value for s in compute} == pytest.approx(want, abs=1e-12)


def test_without_dcgm_a100_mig_compute_is_unknown_and_strict_reading_needs_no_staleness(tmp_path):
    """A default server (5-minute lookback) with backfilled gaps: the strict sampler reads them as gaps."""
    history = small_fleet(a100_mig_compute=True)
    window = whole_window()
    with prometheus_loaded_with(write_openmetrics(history, tmp_path / "fleet.om", dcgm=False), tmp_path) as url:
        got = by_key(PrometheusSource(url, strict=True).features(window))
    want = by_key(compute_features(history, window))
    assert got[("nb/bob", H100)].samples == want[("nb/bob", H100)].samples == 240  # 120 missing minutes stay missing
    assert got[("nb/bob", H100)].memory_quantiles == pytest.approx(want[("nb/bob", H100)].memory_quantiles, abs=1)
    sim = got[("hpc/sim", A100)]
    assert not sim.compute_known and sim.duty_cycle is None and sim.compute_quantiles is None
    assert sim.memory_peak_bytes > 0 and sim.mig_profile == "2g.20gb"
    assert got[("ml/train", H100)].compute_known  # H100 MIG has GPM


def binned(history, step: str, end: datetime):
    """The history as a step coarser than its samples reads it: per workload, device and bin (t - step, t], the
    bin's largest memory, mean compute and largest compute; bins that end after ``end`` are not read yet."""
    keys = ["workload", "namespace", "node", "gpu_uuid", "gpu_model", "mig_profile"]
    rows = history.assign(timestamp=history["timestamp"].dt.ceil(step))
    rows = rows[rows["timestamp"] <= end]
    return (
        rows.groupby([*keys, "timestamp"], observed=True)
        .agg(
            memory_used_bytes=("memory_used_bytes", "max"),
            sm_active_gpu_fraction=("sm_active_gpu_fraction", "mean"),
            sm_active_peak_gpu_fraction=("sm_active_gpu_fraction", "max"),
            sharing=("sharing", "last"),
            process_count=("process_count", "max"),
        )
        .reset_index()
        .assign(bin_samples=pd.Timedelta(step) // pd.Timedelta("1min"))  # the reader's: step / the 60 s scrape
    )


def test_a_coarser_step_reads_bins_every_memory_peak_and_the_mean_compute(fleet_prometheus):
    """At 5 minutes each step reads its bin: memory as the bin's maximum, so no peak between two steps is missed
    and every memory quantile is at least the file's; compute as the bin's mean, so a workload's mean is the
    file's, and as its maximum, so the compute quantiles spread each bin as its largest sample and the rest at its
    mean (features.bin_values: a burst is neither averaged away nor counted five times); a fifth of the rows."""
    url, history = fleet_prometheus
    window = whole_window()
    every_minute = by_key(compute_features(history, window))
    want = by_key(compute_features(binned(history, "5min", window.end), window))
    with PrometheusSource(url, stats=True) as source:
        got = by_key(source.features(window, step=timedelta(minutes=5)))
        rows = source.rows
    assert got.keys() == want.keys() == every_minute.keys()
    assert rows is not None and len(rows) == len(binned(history, "5min", window.end)) < len(history) / 4
    for key, f in got.items():
        fine = every_minute[key]
        assert f.samples == want[key].samples and f.coverage == pytest.approx(want[key].coverage)
        assert f.memory_peak_bytes >= fine.memory_peak_bytes
        assert all(f.memory_quantiles[q] >= fine.memory_quantiles[q] - 1 for q in QUANTILE_LEVELS), key
        if f.process_count == 1:  # one series per device: its bin maxima are the file's bin maxima
            assert f.memory_peak_bytes == fine.memory_peak_bytes
            assert f.memory_quantiles == pytest.approx(want[key].memory_quantiles, abs=1)
        if f.sharing in ("exclusive", "timeslice", "mps") and fine.compute_known:  # measured per process
            assert f.compute_mean_gpu_fraction == pytest.approx(want[key].compute_mean_gpu_fraction, abs=1e-9)
            assert f.compute_mean_gpu_fraction == pytest.approx(fine.compute_mean_gpu_fraction, rel=0.02)
            assert f.compute_quantiles == pytest.approx(want[key].compute_quantiles, abs=1e-9)
            assert f.compute_peak_gpu_fraction == pytest.approx(fine.compute_peak_gpu_fraction, abs=1e-9)
            assert f.compute_p95_gpu_fraction == pytest.approx(fine.compute_p95_gpu_fraction, abs=0.05), key
    assert rows["sm_active_peak_gpu_fraction"].dropna().ge(rows["sm_active_gpu_fraction"].dropna() - 1e-12).all()
    from_rows = by_key(compute_features(rows, window))  # what the advisor uses (pipeline.from_history on the rows)
    for key, f in got.items():
        assert from_rows[key].compute_quantiles == pytest.approx(f.compute_quantiles, abs=1e-9)
        assert from_rows[key].memory_quantiles == pytest.approx(f.memory_quantiles, abs=1)


def test_recording_rules_asked_for_but_missing_is_a_clear_error(fleet_prometheus):
    url, _ = fleet_prometheus
    with pytest.raises(JobFailed, match=r"no workload_device:slicewise_memory_used_bytes:sum.*slicewise.rules.yml"):
        PrometheusSource(url, recorded=True).features(whole_window())


def test_recorded_series_written_by_the_simulator_read_to_the_files_features(tmp_path):
    """``write_openmetrics(recorded=True)`` writes the rules' per-workload series beside the raw ones:
    ``--prometheus.recording-rules`` reads them to the same features as the file (and the raw path)."""
    history = small_fleet(a100_mig_compute=True)
    window = whole_window()
    want = by_key(compute_features(history, window))
    om = write_openmetrics_with_rules(history, tmp_path / "fleet.om")
    with prometheus_loaded_with(om, tmp_path, lookback="59s") as url:
        with PrometheusSource(url, recorded=True, max_samples_per_query=6000, stats=True) as source:
            got = by_key(source.features(window))
            recorded_reads = source.client.stats.samples_read if source.client.stats else 0
        raw = by_key(PrometheusSource(url).features(window))
    assert got.keys() == want.keys() == raw.keys()
    for key, f in got.items():
        assert_quantiles_exact(f, want[key])
        assert_quantiles_exact(f, raw[key])
    assert 0 < recorded_reads <= 3 * len(history)


def test_an_empty_window_has_no_workloads(fleet_prometheus):
    url, _ = fleet_prometheus
    window = whole_window()
    earlier = Window(window.start - timedelta(days=3), window.start - timedelta(days=2))
    assert PrometheusSource(url).features(earlier) == []


def test_dcgm_exporter_alone_gives_features(tmp_path):
    """A cluster with dcgm-exporter only: workloads from pod labels, MIG fractions from the catalogue."""
    t0, steps = 1_767_225_600, 60
    a100, h100 = A100, H100
    devices = [
        # (labels, memory MiB, SM active or None, engine active or None)
        ({"UUID": "GPU-d1", "modelName": a100, "pod": "api-7d9f8b6c5d-x2k4p", "namespace": "web"}, 20000, 0.5, None),
        ({"UUID": "GPU-d2", "modelName": a100, "pod": "api-7d9f8b6c5d-q8z7m", "namespace": "web"}, 21000, 0.4, None),
        (
            {
                "UUID": "GPU-d3",
                "modelName": h100,
                "GPU_I_ID": "3",
                "GPU_I_PROFILE": "1g.10gb",
                "pod": "train-0",
                "namespace": "ml",
            },
            5000,
            0.66,
            None,
        ),
        (
            {
                "UUID": "GPU-d4",
                "modelName": a100,
                "exported_pod": "nb-x2k4p",
                "exported_namespace": "lab",
                "namespace": "gpu-operator",
                "pod": "dcgm-exporter-abcde",
            },
            3000,
            None,
            0.1,
        ),
        ({"UUID": "GPU-d5", "modelName": a100}, 1000, 0.9, None),  # held by no pod: not a workload
        ({"UUID": "GPU-d6", "modelName": a100, "pod": "a-x2k4p", "namespace": "ts"}, 8000, 0.3, None),
        ({"UUID": "GPU-d6", "modelName": a100, "pod": "b-q8z7m", "namespace": "ts"}, 8000, 0.3, None),
    ]
    lines = []
    for metric, column in (
        ("DCGM_FI_DEV_FB_USED", 1),
        ("DCGM_FI_PROF_SM_ACTIVE", 2),
        ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 3),
    ):
        lines.append(f"# TYPE {metric} gauge\n")
        for device in devices:
            if device[column] is None:
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in {**device[0], "job": "dcgm", "instance": "n:9400"}.items())
            lines += [f"{metric}{{{labels}}} {device[column]} {t0 + 60 * i}\n" for i in range(steps)]
    (tmp_path / "dcgm.om").write_text("".join(lines) + "# EOF\n")
    window = Window(datetime.fromtimestamp(t0 - 60, tz=UTC), datetime.fromtimestamp(t0 + 60 * (steps - 1), tz=UTC))
    with prometheus_loaded_with(tmp_path / "dcgm.om", tmp_path) as url:
        got = by_key(PrometheusSource(url).features(window))
    assert set(got) == {("web/api", A100), ("ml/train", H100), ("lab/nb", A100), ("ts/a", A100), ("ts/b", A100)}
    api = got[("web/api", A100)]
    assert (api.devices, api.samples, api.memory_peak_bytes) == (2, 120, 21000 * 2**20)
    assert api.compute_peak_gpu_fraction == pytest.approx(0.5) and api.sharing == "exclusive"
    train = got[("ml/train", H100)]
    assert (train.sharing, train.mig_profile, train.namespace) == ("mig", "1g.10gb", "ml")
    assert train.compute_mean_gpu_fraction == pytest.approx(0.66 * 16 / 132)
    assert got[("lab/nb", A100)].compute_p95_gpu_fraction == pytest.approx(0.1)  # engine activity, no SM series
    assert got[("ts/a", A100)].sharing == got[("ts/b", A100)].sharing == "timeslice"
    assert all(f.coverage == 1.0 and f.process_count == 1 for f in got.values())


RULES = REPO / "deploy" / "prometheus" / "slicewise.rules.yml"


@pytest.mark.slow
def test_recorded_mode_reads_the_recording_rules_to_the_same_features(tmp_path):
    """deploy/prometheus/slicewise.rules.yml backfilled over the history: recorded=True gives the same figures."""
    if not RULES.exists():
        missing("deploy/prometheus/slicewise.rules.yml", "it comes with the Prometheus rules (issue of deploy/)")
    history = small_fleet(a100_mig_compute=True)
    window = whole_window()
    data = backfill(write_openmetrics(history, tmp_path / "fleet.om", dcgm=True), tmp_path / "tsdb")
    for _ in range(2):  # the per-workload rules read the per-device rules: a second pass once those are loaded
        with prometheus_serving(data, tmp_path, lookback="59s") as url:
            backfill_rules(url, RULES, window.start, window.end + timedelta(hours=1), data, tmp_path)
    # a rule group runs at an offset within its interval (here 53 s), so each recorded sample lags its scrape by
    # less than a step: the same samples are one step later
    late = Window(window.start + timedelta(minutes=1), window.end + timedelta(minutes=1))
    with prometheus_serving(data, tmp_path, lookback="59s") as url, PrometheusSource(url, recorded=True) as source:
        got = by_key(source.features(late))
    want = by_key(compute_features(history, window))
    assert got.keys() == want.keys()
    for key, f in got.items():
        assert_exact(f, want[key])
        if f.devices == 1:
            assert f.memory_quantiles == pytest.approx(want[key].memory_quantiles, abs=1)
            assert f.compute_quantiles == pytest.approx(want[key].compute_quantiles, abs=1e-9)


@pytest.mark.slow
def test_the_simulated_mixed_fleet_through_prometheus(tmp_path):
    """A day of the simulator's mixed fleet (120 workloads: MIG with and without GPM, MPS, time-slicing, replicas),
    turned into the exporter's series and served by Prometheus, read in several chunks (a 300,000-sample cap):
    the same features as its history file, to floating-point rounding, replicas included."""
    from exporter.simulate.history import write_history

    path = tmp_path / "fleet.parquet"
    write_history(path, scenario="mixed", days=1, seed=0)
    history = read_history(path)
    window = Window(
        history["timestamp"].min().to_pydatetime() - timedelta(minutes=1), history["timestamp"].max().to_pydatetime()
    )
    want = by_key(compute_features(history, window))
    with (
        prometheus_loaded_with(write_openmetrics(history, tmp_path / "fleet.om"), tmp_path, lookback="59s") as url,
        PrometheusSource(url, max_samples_per_query=300_000, stats=True) as source,
    ):
        got = by_key(source.features(window))
        assert source.chunk_for(window, timedelta(seconds=60), source.sources(window)) < timedelta(hours=24)
        assert source.client.stats is not None and source.client.stats.peak_samples <= 300_000
    assert got.keys() == want.keys() and len(got) >= 70  # most of the 120 run on that day
    for (workload, model), f in got.items():
        assert f.compute_known == want[(workload, model)].compute_known  # A100/A30 MIG: unknown both ways
        if f.compute_known:
            assert_quantiles_exact(f, want[(workload, model)])
        else:
            assert_exact(f, want[(workload, model)])
            assert f.memory_quantiles == pytest.approx(want[(workload, model)].memory_quantiles, abs=1)

"""What a Prometheus connection reads at: the raw series every minute, the recording rules in 5-minute bins."""

from __future__ import annotations

from datetime import timedelta

import pytest

from advisor.history.connection import PrometheusConnection
from advisor.history.promql import Sampler
from slicewise.errors import BadInput


def test_the_rules_are_read_in_bins_and_a_given_step_wins() -> None:
    raw = PrometheusConnection("http://127.0.0.1:9")
    assert raw.resolution == timedelta(minutes=1) and raw.source().step == timedelta(minutes=1)
    rules = PrometheusConnection("http://127.0.0.1:9", recording_rules=True)
    assert rules.resolution == timedelta(minutes=5) and rules.source().step == timedelta(minutes=5)
    chosen = PrometheusConnection("http://127.0.0.1:9", recording_rules=True, step=timedelta(minutes=1))
    assert chosen.source().step == timedelta(minutes=1)


@pytest.mark.parametrize("step", [timedelta(seconds=5), timedelta(hours=2), timedelta(microseconds=15_000_500)])
def test_a_step_out_of_bounds_is_bad_input(step: timedelta) -> None:
    with pytest.raises(BadInput, match=r"--prometheus\.step"):
        PrometheusConnection("http://127.0.0.1:9", step=step)


def test_a_bin_reads_memory_peaks_and_compute_means() -> None:
    bins = Sampler.strict(timedelta(minutes=5))
    assert bins.peak()("m") == "max_over_time(m[299999ms])"
    assert bins.mean()("c") == "avg_over_time(c[299999ms])"
    assert bins("x") == "last_over_time(x[299999ms])"
    assert Sampler().peak()("m") == "m"  # instant: each step's own sample, whatever the function

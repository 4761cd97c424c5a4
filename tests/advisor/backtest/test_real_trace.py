"""The backtest on the real Alibaba trace (shared/data/real) at 50 % and 70 %: it runs and its counts add up.

What the advice must achieve there (0 OOM samples, no time-sliced GPU over its memory) is asserted with the
sizing work (tests of issue 13's advisor side), not here: this only checks the backtest's own bookkeeping.
"""

from __future__ import annotations

import pytest

from advisor.backtest import run_backtest
from advisor.history import read_history
from tests.support import shared_file

TRACE = "data/real/alibaba-gentd26-sd-pods.csv"


@pytest.mark.slow
def test_backtest_on_the_real_trace_at_50_and_70_percent() -> None:
    history = read_history(shared_file(TRACE))
    result = run_backtest(history, (0.5, 0.7), source=TRACE)
    assert len(result.origins) == 2
    first, second = result.origins
    assert first.origin < second.origin
    for o in result.origins:
        t = o.totals
        assert t.samples == sum(w.samples for w in o.workloads) > 0
        assert t.oom_samples == sum(w.oom_samples for w in o.workloads)
        assert t.timeslice_oom_samples == sum(w.timeslice_oom_samples for w in o.workloads)
        assert t.slowed_samples == sum(w.slowed_samples for w in o.workloads) <= t.measured_samples
        assert t.contended_samples == sum(w.contended_samples for w in o.workloads) <= t.timeslice_busy_samples
        assert t.oom_workloads == sum(1 for w in o.workloads if w.oom_samples or w.timeslice_oom_samples)
        assert t.samples + t.new_workload_samples == int((history["timestamp"] > o.origin).sum())
        assert all(w.memory_peak_bytes > 0 for w in o.workloads if w.samples)
        assert 0 < t.gpus_busy_at_once_max <= t.gpus_in_use
        assert t.gpus_needed > 0
    # the later origin replays a subset of the earlier one's period
    assert second.totals.samples + second.totals.new_workload_samples < first.totals.samples

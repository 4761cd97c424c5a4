"""The samples behind Prometheus's answers kept as history rows: the history file's columns and types, and a cap
past which they are dropped (the advisor then says its pools assume everyone present at once)."""

from __future__ import annotations

import numpy as np

from advisor.features import compute_features
from advisor.history import timeline
from advisor.history.timeline import Timeline
from advisor.plan.presence import Presence

H100 = "NVIDIA H100 80GB HBM3"
T0 = 1_760_000_000_000


def _add(t: Timeline, workload: str, start: int, n: int, sharing: int = timeline.EXCLUSIVE) -> None:
    millis = T0 + 60_000 * np.arange(start, start + n)
    t.add(
        millis,
        np.full(n, 4 * 1024**3, dtype=np.float64),
        np.where(np.arange(n) % 10 == 0, 0.5, 0.0),
        {"workload": workload, "namespace": "team", "gpu_uuid": "GPU-1", "node": "node-1"},
        H100,
        "1g.10gb" if sharing == timeline.MIG else "",
        np.full(n, sharing, dtype=np.int8),
    )


def test_rows_read_as_a_history_file_and_give_its_features_and_presence() -> None:
    t = Timeline()
    _add(t, "team/a", 0, 120)
    _add(t, "team/b", 60, 120, timeline.MIG)
    frame = t.frame()
    assert frame is not None and len(frame) == 240
    assert str(frame["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert set(frame["sharing"].astype(str)) == {"exclusive", "mig"}
    assert frame["timestamp"].is_monotonic_increasing
    features = {f.workload: f for f in compute_features(frame)}
    assert features["team/a"].memory_peak_bytes == 4 * 1024**3
    assert features["team/b"].mig_profile == "1g.10gb"
    assert abs((features["team/a"].duty_cycle or 0) - 0.1) < 1e-9
    # the two overlapped for an hour: presence sees both at once
    presence = Presence.from_history(frame)
    assert presence.peak(f.key for f in features.values()) == 2


def test_past_the_cap_nothing_is_kept() -> None:
    t = Timeline(max_rows=150)
    _add(t, "team/a", 0, 100)
    _add(t, "team/b", 0, 100)
    assert t.overflow and t.frame() is None

"""Where the backtest cuts: origins as percentages, fractions or times; weekly cuts for a long history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from advisor.backtest.origins import cuts, parse_origin
from slicewise.errors import BadInput

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_origins_parse_as_percentages_fractions_or_times() -> None:
    assert parse_origin("50%") == 0.5
    assert parse_origin(" 0.7 ") == 0.7
    assert parse_origin("2026-01-05T12:00:00Z") == datetime(2026, 1, 5, 12, tzinfo=UTC)
    assert parse_origin("2026-01-05T12:00:00") == datetime(2026, 1, 5, 12, tzinfo=UTC)  # UTC unless it says
    assert parse_origin("2026-01-05T13:00:00+01:00") == datetime(2026, 1, 5, 12, tzinfo=UTC)
    with pytest.raises(BadInput, match="not a percentage"):
        parse_origin("last tuesday")


def test_a_short_history_is_cut_at_50_and_70_percent_and_replayed_to_its_end() -> None:
    end = START + timedelta(days=10)
    got = cuts(START, end)
    assert [c.origin for c in got] == [START + timedelta(days=5), START + timedelta(days=7)]
    assert all(c.replay_end == end for c in got)
    bounded = cuts(START, end, (0.5,), timedelta(days=1))
    assert bounded[0].replay_end == START + timedelta(days=6)


def test_three_weeks_or_more_are_cut_every_week_each_replaying_the_next() -> None:
    end = START + timedelta(days=24)
    got = cuts(START, end)
    assert [c.origin - START for c in got] == [timedelta(days=7), timedelta(days=14), timedelta(days=21)]
    assert [c.replay_end - c.origin for c in got] == [timedelta(days=7), timedelta(days=7), timedelta(days=3)]


def test_origins_come_sorted_and_must_lie_inside_the_history() -> None:
    end = START + timedelta(days=10)
    assert [c.origin for c in cuts(START, end, (0.7, START + timedelta(days=1), 0.7))] == [
        START + timedelta(days=1),
        START + timedelta(days=7),
    ]
    for bad in (0.0, 1.0, -0.2, 50.0):
        with pytest.raises(BadInput, match="between 0 and 1"):
            cuts(START, end, (bad,))
    with pytest.raises(BadInput, match="outside the history"):
        cuts(START, end, (end + timedelta(hours=1),))
    with pytest.raises(BadInput, match="single instant"):
        cuts(START, START)

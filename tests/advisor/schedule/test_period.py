"""Which period a run belongs to: the schedule's latest fire time at or before the run, in its time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from advisor.schedule.period import period_key, period_of, trigger


@pytest.mark.parametrize(
    ("cron", "zone", "now", "expected"),
    [
        # Mondays 08:00 in Berlin: Wednesday belongs to this Monday, Monday 07:59 local to the Monday before
        ("0 8 * * mon", "Europe/Berlin", "2025-03-05T12:00:00+00:00", "2025-03-03T0800+0100"),
        ("0 8 * * mon", "Europe/Berlin", "2025-03-03T07:00:00+00:00", "2025-03-03T0800+0100"),
        ("0 8 * * mon", "Europe/Berlin", "2025-03-03T06:59:59+00:00", "2025-02-24T0800+0100"),
        # across the change to summer time the offset follows the zone
        ("0 8 * * mon", "Europe/Berlin", "2025-04-01T00:00:00+00:00", "2025-03-31T0800+0200"),
        ("*/5 * * * *", "UTC", "2025-03-05T12:03:10+00:00", "2025-03-05T1200+0000"),
        ("0 0 1 1 *", "UTC", "2025-11-30T12:00:00+00:00", "2025-01-01T0000+0000"),  # yearly: found a year back
        ("30 6 1 * *", "America/New_York", "2025-03-01T11:29:00+00:00", "2025-02-01T0630-0500"),
    ],
)
def test_period_of(cron: str, zone: str, now: str, expected: str) -> None:
    assert period_key(period_of(trigger(cron, zone), datetime.fromisoformat(now))) == expected


def test_period_keys_sort_in_time_order() -> None:
    weekly = trigger("0 8 * * mon", "UTC")
    keys = [
        period_key(period_of(weekly, datetime.fromisoformat(f"2025-{m:02d}-15T00:00:00+00:00"))) for m in range(1, 13)
    ]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("cron", "weekdays"),
    [
        ("0 8 * * 1", ["Monday"]),
        ("0 8 * * mon", ["Monday"]),
        ("0 8 * * 0", ["Sunday"]),
        ("0 8 * * 7", ["Sunday"]),
        ("0 8 * * 1-5", ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]),
        ("0 8 * * 5-7", ["Friday", "Saturday", "Sunday"]),
        ("0 8 * * 0,3", ["Sunday", "Wednesday"]),
        ("0 8 * * */2", ["Sunday", "Tuesday", "Thursday", "Saturday"]),
    ],
)
def test_weekdays_mean_what_crontab_means(cron: str, weekdays: list[str]) -> None:
    """APScheduler counts weekdays from Monday = 0; crontab (and Kubernetes CronJobs) from Sunday = 0."""
    schedule = trigger(cron, "UTC")
    start = datetime(2026, 11, 22, tzinfo=UTC)  # a Sunday
    fired, fire = [], schedule.get_next_fire_time(None, start)
    while fire is not None and fire < start + timedelta(days=7):
        fired.append(fire.strftime("%A"))
        fire = schedule.get_next_fire_time(fire, fire + timedelta(seconds=1))
    assert sorted(fired) == sorted(weekdays)


@pytest.mark.parametrize("cron", ["0 8 * * 8", "0 8 * * 5-2", "0 8 * *", "0 8 * * funday"])
def test_bad_crontab_is_refused(cron: str) -> None:
    with pytest.raises(ValueError):
        trigger(cron, "UTC")

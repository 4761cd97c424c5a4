"""Which scheduled run a report belongs to: the latest fire time of the cron schedule at or before now.

A run that fires late (missed while the scheduler was down, or retried hours later) still belongs to the period
of the fire time it stands for, so every attempt for one week shares one ledger entry per destination, and the
next week starts a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

# look back this far for the latest fire time, widening until one is found (a yearly cron needs the last step)
_LOOKBACK = (timedelta(hours=1), timedelta(days=1), timedelta(days=8), timedelta(days=32), timedelta(days=367))


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 (and 7) is Sunday


def crontab_day_of_week(field: str) -> str:
    """A crontab day-of-week field as day names, which APScheduler reads the way crontab means them.

    APScheduler 3 numbers weekdays from Monday = 0, so ``from_crontab("0 8 * * 1")`` would fire on Tuesday where
    cron, Kubernetes CronJobs and every user mean Monday. Names are unambiguous to both, so each list item, range
    and step is expanded with crontab's numbering and written back as names.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        else:
            lo, _, hi = span.partition("-")
            first, last = _crontab_day(lo), _crontab_day(hi or lo)
            if hi == "7" or (hi and hi.lower() == "sun" and first > 0):
                last = 7  # 5-7 and fri-sun run through Sunday
            if not hi and step_text:  # "1/2": from Monday every 2 days to the end of the week
                last = 6
        if step < 1 or first > last:
            raise ValueError(f"bad day-of-week {item!r}")
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def _crontab_day(text: str) -> int:
    text = text.lower()
    if text in _DAY_NAMES:
        return _DAY_NAMES.index(text)
    day = int(text)  # ValueError for anything else, which the config check reports
    if not 0 <= day <= 7:
        raise ValueError(f"day of week {day} is not 0-7")
    return day


def trigger(cron: str, timezone: str | None = None) -> CronTrigger:
    """The APScheduler trigger for a standard five-field crontab expression, with crontab's weekday numbering."""
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"a crontab expression has 5 fields (minute hour day month day_of_week), not {len(fields)}")
    minute, hour, day, month, day_of_week = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_day_of_week(day_of_week),
        timezone=timezone,
    )


def period_of(schedule: CronTrigger, now: datetime) -> datetime:
    """The latest fire time at or before ``now`` (in the trigger's time zone)."""
    now = now.astimezone(schedule.timezone)
    for back in _LOOKBACK:
        fire = schedule.get_next_fire_time(None, now - back)
        if fire is None or fire > now:
            continue
        while True:
            following = schedule.get_next_fire_time(fire, fire + timedelta(seconds=1))
            if following is None or following > now:
                return fire
            fire = following
    raise ValueError(f"the schedule {schedule} never fired in the year before {now}")


def period_key(fire: datetime) -> str:
    """A name for the period that sorts by time and is safe in file names: 2025-03-03T0800+0100."""
    return fire.strftime("%Y-%m-%dT%H%M%z")

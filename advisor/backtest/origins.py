"""Where the backtest cuts the history: origins as fractions of its span or as times, each with a replay period.

An origin splits the history into what the advice is fitted on (samples at or before it) and what is replayed
(samples after it, up to the next origin's horizon). By default a history of three weeks or more is cut every week
and each cut replays the following week ("last week's advice, this week"); a shorter one is cut at 50 % and 70 %
of its span and each cut replays everything after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from slicewise.errors import BadInput

DEFAULT_FRACTIONS = (0.5, 0.7)
WEEK = timedelta(days=7)
WEEKLY_FROM = timedelta(weeks=3)  # a history this long or longer is cut every week


@dataclass(frozen=True)
class Cut:
    origin: datetime
    replay_end: datetime  # inclusive: the last sample time replayed


def parse_origin(text: str) -> float | datetime:
    """``50%`` or ``0.5`` (a fraction of the span), or an ISO 8601 time (UTC unless it says otherwise)."""
    value = text.strip()
    try:
        if value.endswith("%"):
            return float(value[:-1]) / 100
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"origin {text!r}: not a percentage (50%), a fraction (0.5) or an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def cuts(
    start: datetime,
    end: datetime,
    origins: Sequence[float | datetime] | None = None,
    horizon: timedelta | None = None,
) -> list[Cut]:
    """The cuts of a history spanning ``start`` .. ``end``, oldest first. ``horizon`` bounds each replay period
    (default: to the end of the history, or one week for the weekly default)."""
    if end <= start:
        raise BadInput("the history spans a single instant: nothing to fit before an origin and replay after it")
    if not origins:
        if end - start >= WEEKLY_FROM:
            times = []
            at = start + WEEK
            while at < end:
                times.append(at)
                at += WEEK
            horizon = horizon or WEEK
        else:
            times = [_at(start, end, f) for f in DEFAULT_FRACTIONS]
    else:
        times = [o if isinstance(o, datetime) else _at(start, end, o) for o in origins]
    out = []
    for at in sorted(set(times)):
        if not start < at < end:
            raise BadInput(
                f"origin {at:%Y-%m-%d %H:%M:%S} UTC is outside the history ({start:%Y-%m-%d %H:%M:%S} .. "
                f"{end:%Y-%m-%d %H:%M:%S} UTC): it needs samples before and after it"
            )
        out.append(Cut(at, min(end, at + horizon) if horizon is not None else end))
    return out


def _at(start: datetime, end: datetime, fraction: float) -> datetime:
    if not 0 < fraction < 1:
        raise BadInput(f"origin {fraction:g}: a fraction of the history's span must be between 0 and 1 (0 % .. 100 %)")
    return start + (end - start) * fraction

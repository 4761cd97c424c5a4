"""What both console scripts share: error-to-exit-code mapping and Prometheus-style durations."""

from __future__ import annotations

import io
import logging
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from slicewise import redact
from slicewise.errors import SlicewiseError

_DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> timedelta:
    """Parse a Prometheus duration such as ``14d``, ``36h`` or ``1h30m`` (units largest first, as Prometheus wants)."""
    pos, total, last_rank = 0, timedelta(0), -1
    order = ["y", "w", "d", "h", "m", "s", "ms"]
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise ValueError(f"not a duration: {text!r} (use e.g. 14d, 36h, 1h30m)")
        rank = order.index(m.group(2))
        if rank <= last_rank:
            raise ValueError(f"not a duration: {text!r} (units must go from largest to smallest)")
        last_rank = rank
        try:
            total += int(m.group(1)) * _DURATION_UNITS[m.group(2)]
        except OverflowError:
            raise ValueError(f"not a duration: {text!r} (too long)") from None
        pos = m.end()
    if not text or total <= timedelta(0):
        raise ValueError(f"not a positive duration: {text!r}")
    return total


def format_duration(value: timedelta) -> str:
    """The shortest Prometheus duration for a whole number of seconds: 14d, 36h, 90s."""
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Duration(click.ParamType):
    """A click parameter for Prometheus durations."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def parse_end(text: str) -> datetime:
    """An RFC 3339 time with its offset (``Z`` or ``+01:00``): a window's end must not depend on the local zone."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        example = "2026-01-15T00:00:00Z"
        raise click.BadParameter(f"{text!r} is not an RFC 3339 time, e.g. {example}", param_hint="--end") from None
    if moment.tzinfo is None:
        raise click.BadParameter(f"{text!r} has no time zone: add Z (UTC) or an offset like +01:00", param_hint="--end")
    return moment.astimezone(UTC)


def run(command: click.Command, prog_name: str, args: list[str] | None = None) -> None:
    """Run a click command and exit with DESIGN.md's codes: 0 ok, 1 job failed, 2 bad usage or input."""
    log = logging.getLogger(prog_name)
    redact.install()  # no secret in any log record, whichever library writes it
    try:
        command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors: unknown flag, bad value, missing file
        shown = io.StringIO()
        exc.show(file=shown)
        click.echo(redact.redact(shown.getvalue()), err=True, nl=False)
        sys.exit(2)
    except SlicewiseError as exc:
        click.echo(f"{prog_name}: error: {redact.redact(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:  # a bug: say so plainly, with the traceback for the report
        log.exception("unexpected error")
        sys.exit(1)
    sys.exit(0)

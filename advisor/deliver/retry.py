"""Retrying a delivery that failed for a reason that may pass: backoff, and the server's own Retry-After.

Used for SMTP (connection refused, 4xx replies) and for the Slack steps that slack_sdk does not retry itself.
Slack's Web API and webhook calls retry inside slack_sdk through :class:`advisor.deliver.slack.RetryAfterHandler`,
which takes its delays from the same :class:`RetryPolicy`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one delivery attempt tries before it gives up and leaves the destination for a later cycle."""

    attempts: int = 4  # tries in all, the first included
    first_delay: float = 2.0  # seconds before the second try; doubles each time
    max_delay: float = 60.0  # no single wait is longer, whatever the server asks

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): the server's Retry-After when it gave one."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return min(self.first_delay * 2 ** (retry - 1), self.max_delay)


class Transient(Exception):
    """A failure worth retrying; ``retry_after`` is the server's wish in seconds, when it said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is seconds or an HTTP date (RFC 9110); anything else is ignored."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def with_retries(
    what: str,
    call: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``call`` until it succeeds, raises something other than :class:`Transient`, or runs out of attempts.

    The last :class:`Transient` is re-raised when the attempts are spent.
    """
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Transient as exc:
            if attempt == policy.attempts:
                raise
            wait = policy.delay(attempt, exc.retry_after)
            log.warning("%s: %s; retry %d of %d in %.1f s", what, exc, attempt, policy.attempts - 1, wait)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover

"""Secrets from an environment variable or a file, never shown; retry delays and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from advisor.deliver import RetryPolicy, read_secret
from advisor.deliver.retry import Transient, parse_retry_after, with_retries
from slicewise.errors import BadInput


def test_secret_from_env_or_file_is_stripped_and_never_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SW_TEST_SECRET", "hunter2\n")
    s = read_secret("SMTP password", env="SW_TEST_SECRET")
    assert s.reveal() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert "SW_TEST_SECRET" in repr(s)
    f = tmp_path / "token"
    f.write_text("xoxb-123\n")
    assert read_secret("Slack token", file=f).reveal() == "xoxb-123"


def test_missing_or_empty_secrets_name_the_variable_or_file_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SW_TEST_MISSING", raising=False)
    with pytest.raises(BadInput, match="SMTP password: the environment variable SW_TEST_MISSING is not set"):
        read_secret("SMTP password", env="SW_TEST_MISSING")
    with pytest.raises(BadInput, match=r"cannot read .*nope"):
        read_secret("SMTP password", file=tmp_path / "nope")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(BadInput, match="is empty"):
        read_secret("SMTP password", file=tmp_path / "empty")
    with pytest.raises(BadInput, match="exactly one"):
        read_secret("SMTP password")


def test_backoff_doubles_up_to_the_cap_and_retry_after_wins_within_it() -> None:
    p = RetryPolicy(attempts=6, first_delay=2, max_delay=20)
    assert [p.delay(n) for n in range(1, 6)] == [2, 4, 8, 16, 20]
    assert p.delay(1, retry_after=7) == 7
    assert p.delay(1, retry_after=3600) == 20  # a server cannot park the scheduler for an hour
    assert parse_retry_after("12") == 12
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(soon) or 0) <= 30
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_with_retries_stops_at_success_and_reraises_the_last_transient() -> None:
    waits: list[float] = []
    calls = iter([Transient("busy", retry_after=3), Transient("busy"), "done"])

    def call() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert with_retries("x", call, RetryPolicy(attempts=3, first_delay=1, max_delay=10), waits.append) == "done"
    assert waits == [3, 2]
    with pytest.raises(Transient, match="down"):
        with_retries("x", lambda: (_ for _ in ()).throw(Transient("down")), RetryPolicy(attempts=2), waits.append)

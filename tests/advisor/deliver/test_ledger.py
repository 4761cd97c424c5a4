"""The delivery ledger: exactly-once bookkeeping that survives a restart, and refuses a second send."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from advisor.deliver import DeliveryLedger, Status
from slicewise.errors import BadInput


def test_a_destination_moves_sending_to_sent_and_stays_sent_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = DeliveryLedger(path)
    ledger.begin_period("2025-03-03T0800+0000")
    assert ledger.mark_sending("2025-03-03T0800+0000", "email:a@example.com") is None
    ledger.mark_failed("2025-03-03T0800+0000", "email:a@example.com", "connection refused")
    before = ledger.mark_sending("2025-03-03T0800+0000", "email:a@example.com")
    assert before is not None and before.status == Status.FAILED and before.detail == "connection refused"
    ledger.mark_sent("2025-03-03T0800+0000", "email:a@example.com", "<id@example.com>")

    reopened = DeliveryLedger(path)  # a restart
    entry = reopened.entries("2025-03-03T0800+0000")["email:a@example.com"]
    assert (entry.status, entry.attempts, entry.detail) == (Status.SENT, 2, "<id@example.com>")
    assert reopened.pending("2025-03-03T0800+0000", ["email:a@example.com", "email:b@example.com"]) == [
        "email:b@example.com"
    ]
    assert reopened.periods() == ["2025-03-03T0800+0000"]
    with pytest.raises(ValueError, match="already has the report"):
        reopened.mark_sending("2025-03-03T0800+0000", "email:a@example.com")


def test_periods_are_separate_and_listed_in_time_order(tmp_path: Path) -> None:
    ledger = DeliveryLedger(tmp_path / "l.sqlite")
    for p in ("2025-03-10T0800+0000", "2025-03-03T0800+0000", "2025-03-10T0800+0000"):
        ledger.begin_period(p)
    ledger.mark_sending("2025-03-03T0800+0000", "slack:C1:message")
    ledger.mark_sent("2025-03-03T0800+0000", "slack:C1:message", "{}")
    assert ledger.periods() == ["2025-03-03T0800+0000", "2025-03-10T0800+0000"]
    assert ledger.pending("2025-03-10T0800+0000", ["slack:C1:message"]) == ["slack:C1:message"]


def test_two_racing_senders_cannot_both_send(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    DeliveryLedger(path)
    wins: list[str] = []
    errors: list[Exception] = []

    def sender(name: str) -> None:
        ledger = DeliveryLedger(path)
        try:
            ledger.mark_sending("p", "email:a@example.com")
            ledger.mark_sent("p", "email:a@example.com", name)
            wins.append(name)
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sender, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # a sender that starts after another marked it sent is refused; one that raced may only mark an entry that
    # is still "sending", so the ledger never holds two sends of one destination
    entry = DeliveryLedger(path).entries("p")["email:a@example.com"]
    assert entry.status == Status.SENT
    assert len(wins) + len(errors) == 4
    assert entry.detail in wins


def test_finishing_a_send_that_was_never_started_is_a_bug_not_a_silent_write(tmp_path: Path) -> None:
    ledger = DeliveryLedger(tmp_path / "l.sqlite")
    with pytest.raises(ValueError, match="no send in progress"):
        ledger.mark_sent("p", "email:a@example.com", "x")


def test_a_corrupt_ledger_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    path.write_bytes(b"this is not a database, it is a text file that someone put here" * 20)
    with pytest.raises(BadInput, match="cannot open the delivery ledger"):
        DeliveryLedger(path)

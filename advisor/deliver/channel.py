"""What every destination (email, Slack webhook, Slack bot) has in common, and the ledger view they write to.

A channel serves one or more ledger keys: email one per recipient (one SMTP transaction can accept some and refuse
others), a Slack bot two per channel (the message, then the report file in its thread, so that a failed upload
is retried without posting the message again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from advisor.deliver.ledger import DeliveryLedger, Entry, Status
from advisor.deliver.package import ReportPackage
from slicewise.redact import redact


@dataclass(frozen=True)
class Outcome:
    destination: str  # ledger key
    sent: bool
    detail: str  # sent: the server's id for it; not sent: the error, without secrets


class DeliveryError(Exception):
    """A failure that retrying now will not cure (bad password, unknown channel): recorded, retried next cycle."""


class PeriodLedger:
    """The ledger as one period's senders see it: start a send, then record how it ended."""

    def __init__(self, ledger: DeliveryLedger, period: str) -> None:
        self.ledger = ledger
        self.period = period

    def begin(self, destination: str) -> Entry | None:
        """Mark ``destination`` as being sent to; returns its previous entry (None: first try)."""
        return self.ledger.mark_sending(self.period, destination)

    def sent(self, destination: str, detail: str) -> Outcome:
        self.ledger.mark_sent(self.period, destination, detail)
        return Outcome(destination, True, detail)

    def failed(self, destination: str, error: str) -> Outcome:
        error = redact(error)  # a library's error text may quote a URL that is a secret
        self.ledger.mark_failed(self.period, destination, error)
        return Outcome(destination, False, error)

    def detail_of_sent(self, destination: str) -> str | None:
        entry = self.ledger.entries(self.period).get(destination)
        return entry.detail if entry is not None and entry.status == Status.SENT else None

    def in_flight(self, destinations: Sequence[str]) -> list[str]:
        entries = self.ledger.entries(self.period)
        return [d for d in destinations if d in entries and entries[d].status == Status.SENDING]


class Channel(Protocol):
    name: str  # for logs and messages, e.g. "email via smtp.example.com:587"; never a secret

    def destinations(self) -> tuple[str, ...]: ...

    def send(self, package: ReportPackage, pending: Sequence[str], ledger: PeriodLedger) -> list[Outcome]:
        """Send to the ``pending`` destinations, recording each in ``ledger`` as it goes."""
        ...

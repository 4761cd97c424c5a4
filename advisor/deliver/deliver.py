"""Deliver one period's report to every channel, each destination at most once, through the ledger.

A destination the ledger already marks ``sent`` for the period is skipped; the others are tried now (each with
its retries). Whatever happens, every send started here ends ``sent`` or ``failed`` in the ledger, so the next
cycle knows exactly what is still owed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.deliver.channel import Channel, Outcome, PeriodLedger
from advisor.deliver.ledger import DeliveryLedger
from advisor.deliver.package import ReportPackage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryResult:
    period: str
    sent: tuple[Outcome, ...]  # sent by this call
    already_sent: tuple[str, ...]  # destinations that had the report before this call
    failed: tuple[Outcome, ...]  # still owed: a later cycle retries them

    @property
    def complete(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        parts = [f"{len(self.sent)} sent", f"{len(self.already_sent)} already sent", f"{len(self.failed)} failed"]
        text = f"report {self.period}: " + ", ".join(parts)
        if self.failed:
            text += "; " + "; ".join(o.detail for o in self.failed)
        return text


def deliver(package: ReportPackage, channels: Sequence[Channel], ledger: DeliveryLedger) -> DeliveryResult:
    period = PeriodLedger(ledger, package.period)
    sent: list[Outcome] = []
    failed: list[Outcome] = []
    already: list[str] = []
    for channel in channels:
        keys = channel.destinations()
        pending = ledger.pending(package.period, keys)
        already += [k for k in keys if k not in pending]
        if not pending:
            continue
        try:
            outcomes = channel.send(package, pending, period)
        except Exception as exc:  # a bug or an error the channel did not expect: record it, do not lose the rest
            log.exception("%s: delivery failed", channel.name)
            outcomes = [period.failed(k, f"{channel.name}: {exc}") for k in period.in_flight(pending)]
        answered = {o.destination for o in outcomes}
        # a destination the channel could not try yet (a file upload waiting for its message) is still owed
        outcomes += [
            Outcome(k, False, f"{channel.name}: not tried yet (waits for an earlier step)")
            for k in pending
            if k not in answered
        ]
        for o in outcomes:
            (sent if o.sent else failed).append(o)
            if o.sent:
                log.info("%s: sent %s (%s)", channel.name, o.destination, o.detail)
            else:
                log.warning("%s: not sent %s: %s", channel.name, o.destination, o.detail)
    return DeliveryResult(package.period, tuple(sent), tuple(already), tuple(failed))

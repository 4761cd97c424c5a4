"""The delivery ledger: which week's report reached which destination, so that each gets it exactly once.

A SQLite file (one writer at a time, transactions that survive a crash). Each row is one period (the scheduled
run the report belongs to) and one destination key (``email:ops@example.com``, ``slack:C0123:message``). A key
moves ``sending`` -> ``sent`` or ``failed``; only ``sent`` is final. ``sending`` is written *before* the server is
asked, so a row left in ``sending`` says a process died (or a response was lost) mid-send: the outcome is unknown,
and the sender checks before it sends again where it can (email reuses its Message-ID; a Slack bot looks for its
own message in the channel first).

The ledger also lists the periods that were started, so a retry job knows which week is still owed.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from slicewise.errors import BadInput
from slicewise.redact import redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS periods (
    period TEXT PRIMARY KEY,
    started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    period TEXT NOT NULL,
    destination TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL,
    detail TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (period, destination)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Status(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class Entry:
    period: str
    destination: str
    status: Status
    attempts: int  # how many times a send was started
    detail: str  # sent: what the server gave back (Message-ID, message ts); failed: the error
    updated_at: datetime


class DeliveryLedger:
    """Open (creating if needed) the ledger at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(_SCHEMA)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise BadInput(f"{path}: cannot open the delivery ledger: {exc}") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:  # one transaction, committed on success
            yield db

    def deployment_id(self) -> str:
        """A random id made once per ledger, that is per deployment (state directory): it tells apart two
        deployments that mail from one address, in the email Message-ID."""
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('deployment', ?)", (uuid.uuid4().hex,))
            row = db.execute("SELECT value FROM meta WHERE key = 'deployment'").fetchone()
        return str(row[0])

    # periods

    def begin_period(self, period: str) -> None:
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO periods (period, started_at) VALUES (?, ?)", (period, _now().isoformat()))

    def periods(self) -> list[str]:
        """Periods started so far, oldest first (period keys sort by time)."""
        with self._connect() as db:
            return [row[0] for row in db.execute("SELECT period FROM periods ORDER BY period")]

    # deliveries

    def entries(self, period: str) -> dict[str, Entry]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT period, destination, status, attempts, detail, updated_at FROM deliveries WHERE period = ?",
                (period,),
            ).fetchall()
        return {r[1]: Entry(r[0], r[1], Status(r[2]), int(r[3]), r[4], datetime.fromisoformat(r[5])) for r in rows}

    def pending(self, period: str, destinations: Iterable[str]) -> list[str]:
        """The destinations of ``period`` that have not been sent to, in the given order."""
        done = {k for k, e in self.entries(period).items() if e.status == Status.SENT}
        return [d for d in destinations if d not in done]

    def mark_sending(self, period: str, destination: str) -> Entry | None:
        """Record that a send starts; returns the entry as it was before (None: never tried).

        Refuses (ValueError) to start a send for a destination already sent: the caller checks ``pending`` first,
        and this guard makes a second send impossible even if two processes race.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")  # take the write lock before reading: no two senders interleave here
            row = db.execute(
                "SELECT status, attempts, detail, updated_at FROM deliveries WHERE period = ? AND destination = ?",
                (period, destination),
            ).fetchone()
            before = (
                Entry(period, destination, Status(row[0]), int(row[1]), row[2], datetime.fromisoformat(row[3]))
                if row
                else None
            )
            if before is not None and before.status == Status.SENT:
                raise ValueError(f"{destination} already has the report of {period}")
            db.execute(
                "INSERT INTO deliveries (period, destination, status, attempts, detail, updated_at) "
                "VALUES (?, ?, 'sending', 1, '', ?) "
                "ON CONFLICT (period, destination) DO UPDATE SET status = 'sending', attempts = attempts + 1, "
                "updated_at = excluded.updated_at",
                (period, destination, _now().isoformat()),
            )
        return before

    def mark_sent(self, period: str, destination: str, detail: str) -> None:
        self._finish(period, destination, Status.SENT, detail)

    def mark_failed(self, period: str, destination: str, error: str) -> None:
        self._finish(period, destination, Status.FAILED, error)

    def _finish(self, period: str, destination: str, status: Status, detail: str) -> None:
        with self._connect() as db:
            updated = db.execute(
                "UPDATE deliveries SET status = ?, detail = ?, updated_at = ? "
                "WHERE period = ? AND destination = ? AND status = 'sending'",
                (status.value, redact(detail), _now().isoformat(), period, destination),
            ).rowcount
        if updated != 1:
            raise ValueError(f"{destination} ({period}): no send in progress to mark {status.value}")


def _now() -> datetime:
    return datetime.now(UTC)

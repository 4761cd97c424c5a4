"""Basic auth stays cheap under a flood: answers are remembered, bcrypt runs in bounded slots, a busy check says so."""

from __future__ import annotations

import base64
import threading
from typing import Any

import bcrypt
import pytest

from exporter.web import auth as auth_module
from exporter.web.auth import BasicAuth, Verdict

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class CountingBcrypt:
    """bcrypt.checkpw as it is, counted, and able to hold a check until released (a slow check in flight)."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self._real = bcrypt.checkpw

    def __call__(self, password: bytes, hashed: bytes) -> Any:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(10)
        return self._real(password, hashed)


@pytest.fixture
def checkpw(monkeypatch: pytest.MonkeyPatch) -> CountingBcrypt:
    counting = CountingBcrypt()
    monkeypatch.setattr(auth_module.bcrypt, "checkpw", counting)
    return counting


def test_answers_are_remembered_so_bcrypt_runs_once_per_credential(checkpw: CountingBcrypt) -> None:
    auth = BasicAuth({"prometheus": HASH})
    for _ in range(5):
        assert auth.verdict(header("prometheus", PASSWORD)) is Verdict.OK
        assert auth.verdict(header("prometheus", "wrong")) is Verdict.REFUSED
        assert auth.verdict(header("mallory", PASSWORD)) is Verdict.REFUSED  # unknown user: dummy hash, once
    assert checkpw.calls == 3
    for malformed in (None, "", "Bearer x", "Basic !!", "Basic " + base64.b64encode(b"no-colon").decode()):
        assert auth.verdict(malformed) is Verdict.REFUSED  # refused before any hashing
    assert checkpw.calls == 3
    assert auth.check(header("prometheus", PASSWORD)) and not auth.check(header("prometheus", "wrong"))


def test_a_check_finding_every_bcrypt_slot_busy_is_not_queued(checkpw: CountingBcrypt) -> None:
    auth = BasicAuth({"prometheus": HASH}, bcrypt_slots=1, bcrypt_wait_s=0.05)
    assert auth.verdict(header("prometheus", PASSWORD)) is Verdict.OK  # Prometheus, verified before the flood
    checkpw.release.clear()
    checkpw.entered.clear()
    verdicts: list[Verdict] = []
    slow = threading.Thread(target=lambda: verdicts.append(auth.verdict(header("prometheus", "guess-1"))))
    slow.start()
    assert checkpw.entered.wait(5)  # the one slot is taken by a wrong guess
    assert auth.verdict(header("prometheus", "guess-2")) is Verdict.BUSY
    assert auth.verdict(header("prometheus", PASSWORD)) is Verdict.OK  # remembered: needs no slot
    checkpw.release.set()
    slow.join(5)
    assert verdicts == [Verdict.REFUSED]
    assert auth.verdict(header("prometheus", "guess-2")) is Verdict.REFUSED  # checked once the slot is free


def test_the_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_module.bcrypt, "checkpw", lambda password, hashed: False)
    auth = BasicAuth({"prometheus": HASH})
    for i in range(auth_module._CACHE_LIMIT + 10):  # a brute force with distinct guesses
        assert auth.verdict(header("prometheus", f"guess-{i}")) is Verdict.REFUSED
    assert 0 < len(auth._refused) <= auth_module._CACHE_LIMIT

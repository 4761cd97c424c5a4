"""HTTP basic auth against the web config's bcrypt hashes, as exporter-toolkit does it, cheap to refuse under a flood.

bcrypt is slow on purpose (~0.1 s at cost 10 on a 2-core VM), so a flood of wrong passwords would otherwise keep
every worker hashing while Prometheus waits. Three things keep the cost bounded:

- every answer is remembered by a keyed hash (HMAC-SHA-256 with a per-process key) of user, password and stored
  hash: Prometheus sends the same credentials every scrape and pays bcrypt once; a password already refused is
  refused again without hashing (the stored hashes never change while the process runs, so neither does the answer);
- at most ``bcrypt_slots`` checks run at once (default 2, one per core of a small node); a request that finds
  them all busy for ``bcrypt_wait_s`` gets BUSY (the server answers 503 Retry-After) rather than queueing behind
  the flood;
- both caches are bounded, and cleared whole when full (an attacker can only make us pay bcrypt again).

An unknown user is checked against a dummy hash, so the time a first refusal takes does not tell which user names
exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from enum import Enum

import bcrypt

_DUMMY_HASH = bcrypt.hashpw(b"slicewise-exporter: no such user", bcrypt.gensalt(rounds=10))
_CACHE_LIMIT = 4096


class Verdict(Enum):
    OK = "ok"
    REFUSED = "refused"
    BUSY = "busy"  # not checked: every bcrypt slot was taken


class BasicAuth:
    def __init__(self, users: dict[str, str], bcrypt_slots: int = 2, bcrypt_wait_s: float = 0.25) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._key = os.urandom(32)
        self._verified: set[bytes] = set()
        self._refused: set[bytes] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(bcrypt_slots)
        self._wait_s = bcrypt_wait_s

    def check(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header carries a known user and the right password."""
        return self.verdict(authorization) is Verdict.OK

    def verdict(self, authorization: str | None) -> Verdict:
        if not authorization or not authorization.startswith("Basic "):
            return Verdict.REFUSED
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return Verdict.REFUSED
        user, sep, password = decoded.partition(":")
        if not sep:
            return Verdict.REFUSED
        hashed = self._users.get(user)
        key = hmac.digest(self._key, b"\0".join([user.encode(), password.encode(), hashed or b""]), hashlib.sha256)
        with self._lock:
            if key in self._verified:
                return Verdict.OK
            if key in self._refused:
                return Verdict.REFUSED
        if not self._slots.acquire(timeout=self._wait_s):
            return Verdict.BUSY
        try:
            ok = bcrypt.checkpw(password.encode(), hashed if hashed is not None else _DUMMY_HASH)
        except ValueError:  # a malformed hash in the config (load_web_config checks the prefix only)
            ok = False
        finally:
            self._slots.release()
        ok = ok and hashed is not None
        with self._lock:
            remembered = self._verified if ok else self._refused
            if len(remembered) >= _CACHE_LIMIT:
                remembered.clear()
            remembered.add(key)
        return Verdict.OK if ok else Verdict.REFUSED

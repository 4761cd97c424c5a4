"""HTTP basic auth against the web config's bcrypt hashes, as exporter-toolkit does it.

bcrypt is slow on purpose (tens of milliseconds at cost 10), and Prometheus sends the same credentials every
scrape, so a successful check is remembered by a SHA-256 of user, password and hash; a wrong password is never
remembered and always costs a full bcrypt. An unknown user is checked against a dummy hash, so the time a refusal
takes does not tell which user names exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading

import bcrypt

_DUMMY_HASH = bcrypt.hashpw(b"slicewise-exporter: no such user", bcrypt.gensalt(rounds=10))
_CACHE_LIMIT = 1024


class BasicAuth:
    def __init__(self, users: dict[str, str]) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header carries a known user and the right password."""
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        hashed = self._users.get(user)
        key = hashlib.sha256(b"\0".join([user.encode(), password.encode(), hashed or b""])).digest()
        with self._lock:
            if hashed is not None and key in self._verified:
                return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed if hashed is not None else _DUMMY_HASH)
        except ValueError:  # a malformed hash in the config (load_web_config checks the prefix only)
            ok = False
        if ok and hashed is not None:
            with self._lock:
                if len(self._verified) >= _CACHE_LIMIT:
                    self._verified.clear()
                self._verified.add(key)
            return True
        return False

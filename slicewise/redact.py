"""Keep secrets out of every log line and error message, whoever writes it (slicewise, slack_sdk, httpx, urllib).

Each secret slicewise reads (SMTP password, Slack bot token and webhook URL, Prometheus password and bearer token)
is registered here when it is read. :func:`install` wraps the logging record factory once, so every record any
library creates has its message and its exception text passed through :func:`redact` before a handler sees it,
at every level; the CLI passes its error messages through :func:`redact` too. Besides the registered values,
anything that looks like a secret is masked: the userinfo of a URL, a Slack webhook path, a Slack token.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "<redacted>"
# shorter values would mask ordinary words; every real secret here is longer
MIN_SECRET_LENGTH = 6

_PATTERNS = (
    (re.compile(r"(?<=://)[^/@\s]+@"), MASK + "@"),  # scheme://user:password@host
    (re.compile(r"(?<=hooks\.slack\.com/)services/[A-Za-z0-9/_-]+"), MASK),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]+"), MASK),
    (re.compile(r"(?i)(?<=authorization: )(bearer|basic) \S+"), MASK),
)

_lock = threading.Lock()
_secrets: set[str] = set()
_installed: list[bool] = []  # one element once the logging hook is in


def register(value: str) -> None:
    """A secret to mask wherever it appears from now on (and the logging hook, if not installed yet)."""
    value = value.strip()
    if len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)
    install()


def redact(text: str) -> str:
    """``text`` with every registered secret and every secret-looking part replaced by ``<redacted>``."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # the longest first: a URL before its token
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_url(url: str) -> str:
    """A URL fit for a message: without its userinfo (``https://<redacted>@host/``), else unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    if parts.username is None and parts.password is None:
        return redact(url)
    host = parts.hostname or ""
    netloc = f"{MASK}@{host}" + (f":{parts.port}" if _port(parts) else "")
    return redact(urlunsplit(parts._replace(netloc=netloc)))


def has_userinfo(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return "@" in url
    return parts.username is not None or parts.password is not None


def _port(parts: Any) -> int | None:
    try:
        port: int | None = parts.port
        return port
    except ValueError:
        return None


def install() -> None:
    """Redact every log record from now on, whichever logger or library creates it (idempotent)."""
    with _lock:
        if _installed:
            return
        _installed.append(True)
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: let the handler report it as it would
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``https://user:pass@host/`` -> (``https://host/``, user, pass), percent-decoded; the password is
    registered as a secret. A URL without userinfo comes back as it is."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if password:
        register(password)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc)), username, password

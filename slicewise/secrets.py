"""Secrets (SMTP password, Slack tokens and webhook URLs) come from an environment variable or a file, never from
the command line (other users see it in ``ps``) or the config file (it gets committed), and never reach a log:
each is registered with :mod:`slicewise.redact` when read, which masks it in every log record and error message.

A missing variable or an unreadable file is one clear error naming the variable or the file, not the value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from slicewise.errors import BadInput
from slicewise.redact import register


@dataclass(frozen=True)
class Secret:
    """A resolved secret whose ``repr`` and ``str`` do not show it, so it cannot leak through a log or a traceback."""

    _value: str
    source: str  # where it came from, e.g. "environment variable SMTP_PASSWORD": safe to print

    def __post_init__(self) -> None:
        register(self._value)  # masked in every log line and error from now on (slicewise.redact)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__


def read_secret(what: str, env: str | None = None, file: Path | None = None) -> Secret:
    """Read ``what`` (e.g. "SMTP password") from the variable ``env`` or the file ``file`` (exactly one)."""
    if (env is None) == (file is None):
        raise BadInput(f"{what}: give exactly one of an environment variable or a file")
    if env is not None:
        value = os.environ.get(env)
        if value is None or not value.strip():
            raise BadInput(f"{what}: the environment variable {env} is not set")
        return Secret(value.strip(), f"environment variable {env}")
    assert file is not None
    try:
        value = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{what}: cannot read {file}: {exc.strerror or exc}") from None
    if not value.strip():
        raise BadInput(f"{what}: {file} is empty")
    # a file holds one secret; the trailing newline editors add is not part of it
    return Secret(value.strip(), f"file {file}")

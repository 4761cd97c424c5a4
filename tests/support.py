"""Helpers the tests share: real components found or demanded, free loopback ports, the shared reference data."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SLICEWISE_SHARED", REPO.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, how: str) -> None:
    """A real component is missing: fail in CI (where scripts/test installs it), skip on a developer's machine."""
    message = f"{what} is missing: {how}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(f"the program {name!r}", "scripts/test installs it (Debian package)")
    assert path is not None
    return path


def shared_file(relative: str) -> Path:
    """A file under ../shared (reference tables, real data); CI clones the project with shared/ beside it."""
    path = SHARED / relative
    if not path.exists():  # not a component to install: CI always has it beside the clone, a bare clone may not
        pytest.skip(f"{path} is missing: shared/ sits beside the checkout (or set SLICEWISE_SHARED)")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

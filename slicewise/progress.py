"""Progress on long runs, shown only when standard error is a terminal (never in logs, pipes or CI)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Protocol


class Progress(Protocol):
    def advance(self, steps: float = 1) -> None: ...

    def describe(self, text: str) -> None: ...


class _Silent:
    def advance(self, steps: float = 1) -> None:
        pass

    def describe(self, text: str) -> None:
        pass


class _Rich:
    def __init__(self, bar: object, task: object) -> None:
        self._bar, self._task = bar, task

    def advance(self, steps: float = 1) -> None:
        self._bar.advance(self._task, steps)  # type: ignore[attr-defined]

    def describe(self, text: str) -> None:
        self._bar.update(self._task, description=text)  # type: ignore[attr-defined]


@contextlib.contextmanager
def progress(description: str, total: float | None, enabled: bool | None = None) -> Iterator[Progress]:
    """A progress bar on stderr for ``total`` steps (``None``: unknown), off unless stderr is a terminal."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _Silent()
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield _Rich(bar, task)

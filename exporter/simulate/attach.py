"""Attach a simulated node beneath pynvml for the whole process: every pynvml user (the exporter, nvitop, a script)
then talks to the simulated GPUs through pynvml's own code.

pynvml loads ``libnvidia-ml.so.1`` into ``pynvml.nvmlLib`` on ``nvmlInit`` (only if it is still None) and caches
every function it resolves in ``pynvml._nvmlGetFunctionPointer_cache``. Attaching sets ``nvmlLib`` to the fake
library and empties that cache; detaching puts both back as they were, so a real driver (if any) is used again.
One process is one node, as on a real fleet.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pynvml

from exporter.simulate.fake_nvml import FakeNvml
from exporter.simulate.fleet import Fleet, Node
from slicewise.errors import JobFailed

_lock = threading.Lock()


class _State:
    active: Attachment | None = None


@dataclass
class Attachment:
    """A fleet's node installed beneath pynvml. ``detach()`` (or leaving the ``with`` block) restores pynvml."""

    fleet: Fleet
    node: Node
    library: FakeNvml
    _saved_lib: Any = field(repr=False, default=None)
    _saved_cache: dict[str, Any] = field(repr=False, default_factory=dict)
    _saved_refcount: int = field(repr=False, default=0)
    attached: bool = True

    def detach(self) -> None:
        with _lock:
            if not self.attached:
                return
            with pynvml.libLoadLock:
                pynvml.nvmlLib = self._saved_lib
                pynvml._nvmlGetFunctionPointer_cache.clear()
                pynvml._nvmlGetFunctionPointer_cache.update(self._saved_cache)
                pynvml._nvmlLib_refcount = self._saved_refcount
            self.attached = False
            if _State.active is self:
                _State.active = None

    def __enter__(self) -> Attachment:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.detach()


def attach(fleet: Fleet, node: str | None = None) -> Attachment:
    """Install ``fleet``'s node ``node`` (default: the first) as libnvidia-ml for this process.

    Until detached, ``pynvml.nvmlInit()`` and every other pynvml call answer from the simulated node; the node's
    ``proc_source``, ``pod_directory`` and ``container_names`` describe the pids those calls return. Attaching while
    another fleet is attached is refused: detach it first.
    """
    target = fleet.node(node)
    with _lock:
        current = _State.active
        if current is not None and current.attached:
            raise JobFailed(
                f"a simulated node ({current.node.name}) is already attached beneath pynvml: detach it first"
            )
        library = FakeNvml(target, loads_at=fleet.clock.now() + fleet.faults.driver_loads_after_s)
        with pynvml.libLoadLock:
            attachment = Attachment(
                fleet,
                target,
                library,
                _saved_lib=pynvml.nvmlLib,
                _saved_cache=dict(pynvml._nvmlGetFunctionPointer_cache),
                _saved_refcount=pynvml._nvmlLib_refcount,
            )
            pynvml.nvmlLib = library
            pynvml._nvmlGetFunctionPointer_cache.clear()
            pynvml._nvmlLib_refcount = 0
        _State.active = attachment
    return attachment


def attached() -> Attachment | None:
    """The attachment in force, if any."""
    current = _State.active
    return current if current is not None and current.attached else None


def attach_scenario(scenario: str, node: str | None = None, *, seed: int = 0) -> tuple[Attachment, Node]:
    """Build ``scenario`` on the wall clock and attach ``node`` of it: what ``slicewise-exporter --simulate`` does."""
    from exporter.simulate.scenarios import build_scenario

    fleet = build_scenario(scenario, seed=seed)
    attachment = attach(fleet, node)
    return attachment, attachment.node

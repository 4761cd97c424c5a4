"""Fixtures: a scenario attached beneath pynvml on a manual clock, detached (and NVML shut down) afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pynvml
import pytest

from exporter.simulate import ANCHOR, Attachment, Fleet, ManualClock, attach, build_scenario

# 14:00 UTC on a Monday: services near their peak, notebooks' working day under way on most nodes
AFTERNOON = ANCHOR + 14 * 3600


@pytest.fixture
def attach_scenario() -> Iterator[Callable[..., Attachment]]:
    """``attach_scenario(name, node=None, seed=0, at=AFTERNOON, init=True)``: build, attach and nvmlInit."""
    attachments: list[Attachment] = []

    def make(
        name: str,
        node: str | None = None,
        seed: int = 0,
        at: float = AFTERNOON,
        init: bool = True,
        fleet: Fleet | None = None,
    ) -> Attachment:
        fleet = fleet or build_scenario(name, seed=seed, clock=ManualClock(at))
        attachment = attach(fleet, node)
        attachments.append(attachment)
        if init:
            pynvml.nvmlInit()
        return attachment

    yield make
    for a in attachments:
        while a.library.init_count > 0:
            with contextlib.suppress(pynvml.NVMLError):
                pynvml.nvmlShutdown()
        a.detach()


def clock_of(a: Attachment) -> ManualClock:
    clock = a.fleet.clock
    assert isinstance(clock, ManualClock)
    return clock

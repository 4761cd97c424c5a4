"""How numbers read in every report: GiB with one decimal, percentages, GPU fractions, short GPU names.

One place, so that the HTML, Markdown, text and Slack versions of a report say the same figure the same way.
"""

from __future__ import annotations

from datetime import datetime

from advisor.model import Decision, Mode

GIB = 1024**3

MODE_NAMES = {
    Mode.MIG: "MIG",
    Mode.MPS: "MPS",
    Mode.TIMESLICE: "time-slicing",
    Mode.EXCLUSIVE: "whole GPU",
}


def gib(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value / GIB:.1f} GiB"


def pct(value: float | None, digits: int = 0) -> str:
    """A share 0..1 as a percentage; below 1 % shows one decimal so that 0.4 % does not read as 0 %."""
    if value is None:
        return "—"
    if 0 < value < 0.01 and digits == 0:
        return f"{value * 100:.1f} %"
    return f"{value * 100:.{digits}f} %"


def gpu_fraction(value: float | None) -> str:
    """Compute in fractions of a whole GPU's SMs; None means it was not measured."""
    return "not measured" if value is None else f"{value:.2f} GPU"


def short_model(nvml_name: str) -> str:
    """``NVIDIA H100 80GB HBM3`` -> ``H100 80GB HBM3``: the vendor is the same on every line of the report."""
    return nvml_name.removeprefix("NVIDIA ").strip()


def when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M %Z").strip()


def day(value: datetime) -> str:
    return value.strftime("%Y-%m-%d")


def decision_title(d: Decision) -> str:
    """The decision in a few words: ``MIG 1g.10gb``, ``MPS 25 % SMs``, ``time-slicing ×4``, ``whole GPU``."""
    if d.mode == Mode.MIG:
        return f"MIG {d.profile}"
    if d.mode == Mode.MPS:
        return f"MPS {d.mps_active_thread_percentage} % SMs"
    if d.mode == Mode.TIMESLICE:
        return f"time-slicing ×{d.replicas}"
    return "whole GPU"


def decision_detail(d: Decision) -> str:
    """The decision's limits in one line, for a reader who will apply it."""
    if d.mode == Mode.MIG:
        return f"MIG {d.profile}: {gib(d.memory_limit_bytes)}, {d.compute_limit_gpu_fraction:.2f} of the SMs"
    if d.mode == Mode.MPS:
        return (
            f"MPS, {d.replicas} per GPU: {d.mps_active_thread_percentage} % of the SMs and "
            f"{gib(d.memory_limit_bytes)} pinned memory each"
        )
    if d.mode == Mode.TIMESLICE:
        return f"time-slicing, {d.replicas} per GPU: sized for {gib(d.memory_limit_bytes)} each, no memory isolation"
    return f"a whole GPU: {gib(d.memory_limit_bytes)}"


def signed(value: int) -> str:
    return f"+{value}" if value > 0 else str(value)

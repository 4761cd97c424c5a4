"""The report's charts as PNG bytes (matplotlib, Agg, no display): PNG because mail clients show it everywhere
(Gmail drops SVG and data: URIs), and bytes so the file report can inline them while email attaches them by CID.

Three charts: the fleet (GPUs now vs needed per model, utilisation before/after), and per class the memory and
the compute it used against the limit the decision gives it. Figures are built with the object API
(``matplotlib.figure.Figure``), never pyplot, so rendering holds no global state and is safe in a scheduler thread.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from advisor.model import Mode
from advisor.report.formatting import GIB, pct
from advisor.report.view import ClassRow, MemberGroup, ReportView

WIDTH_IN = 7.2  # at DPI this is 1440 px, shown at 720 px: sharp on high-density screens
DPI = 200
INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e4e7eb"
BEFORE = "#b8c0cc"
AFTER = "#0f766e"
MODE_COLOURS = {
    Mode.MIG: "#2563eb",
    Mode.MPS: "#d97706",
    Mode.TIMESLICE: "#059669",
    Mode.EXCLUSIVE: "#7c3aed",
}


# one envelope row: the limit, the bar (p99 memory / p95 compute; None: not measured), the peak tick, the members'
# dots, and the text printed beside it
Bar = tuple[float, float | None, float | None, list[float], str]


@dataclass(frozen=True)
class Chart:
    name: str  # file stem, also the Content-ID's left part
    title: str
    alt: str  # what the chart says, for mail clients that block images and for screen readers
    png: bytes
    width_px: int  # the width to show it at in HTML


def _figure(height_in: float) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, facecolor="white")
    fig.set_layout_engine("constrained")
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def _style(ax: Axes) -> None:
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.spines["bottom"].set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=8, length=0)
    ax.grid(axis="x", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)


def fleet_chart(view: ReportView) -> Chart:
    """GPUs now vs needed per model (with the proven lower bound), and mean utilisation before vs after."""
    fig = _figure(2.7)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
    names = [m.model for m in view.models]
    now = [m.gpus_now for m in view.models]
    needed = [m.gpus_needed for m in view.models]
    bound = [m.gpus_lower_bound for m in view.models]
    if len(view.models) != 1:  # the fleet's total, unless it would repeat the one model's bars
        hl = view.headline
        names, now, needed, bound = (
            [*names, "All"],
            [*now, hl.gpus_now],
            [*needed, hl.gpus_needed],
            [*bound, hl.gpus_lower_bound],
        )
    ys = list(range(len(names)))[::-1]
    h = 0.36
    left.barh([y + h / 2 for y in ys], now, height=h, color=BEFORE, label="in the fleet now")
    left.barh([y - h / 2 for y in ys], needed, height=h, color=AFTER, label="needed")
    for y, n, d, b in zip(ys, now, needed, bound, strict=True):
        left.text(n + 0.2, y + h / 2, str(n), va="center", fontsize=8, color=MUTED)
        left.text(d + 0.2, y - h / 2, str(d), va="center", fontsize=8, color=AFTER, fontweight="bold")
        left.plot([b, b], [y - h, y], color=INK, linewidth=1.4)
    left.set_yticks(ys, names, fontsize=8, color=INK)
    left.set_xlim(0, max(now + needed) * 1.15 + 1)
    left.set_title("GPUs per model", loc="left", fontsize=10, color=INK, fontweight="bold")
    _style(left)
    handles = [
        Patch(color=BEFORE, label="in the fleet now"),
        Patch(color=AFTER, label="needed"),
        Line2D([], [], color=INK, linewidth=1.4, label="lower bound"),
    ]
    left.legend(handles=handles, fontsize=7, frameon=False, loc="lower right", bbox_to_anchor=(1.0, -0.32), ncol=3)

    hl = view.headline
    groups = [("Memory", hl.memory_before, hl.memory_after), ("Compute", hl.compute_before, hl.compute_after)]
    xs = list(range(len(groups)))
    w = 0.36
    for x, (_, before, after) in zip(xs, groups, strict=True):
        for dx, value, colour in ((-w / 2, before, BEFORE), (w / 2, after, AFTER)):
            if value is None:
                right.text(x + dx, 0.02, "n/a", ha="center", fontsize=7, color=MUTED)
                continue
            right.bar(x + dx, value, width=w, color=colour)
            right.text(x + dx, value + 0.02, pct(value), ha="center", fontsize=8, color=INK)
    right.set_xticks(xs, [g[0] for g in groups], fontsize=8, color=INK)
    top = max(v for _, b, a in groups for v in (b, a) if v is not None)
    right.set_ylim(0, min(1.0, top + 0.15) if top < 0.85 else 1.1)
    right.yaxis.set_major_formatter(lambda v, _: f"{v * 100:.0f} %")
    right.set_title("Utilisation, before → after", loc="left", fontsize=10, color=INK, fontweight="bold")
    _style(right)
    right.grid(axis="x", visible=False)
    right.grid(axis="y", color=GRID, linewidth=0.8)
    alt = (
        f"{hl.gpus_needed} GPUs needed against {hl.gpus_now} in the fleet (lower bound {hl.gpus_lower_bound}); "
        + "; ".join(f"{m.model}: {m.gpus_now} → {m.gpus_needed}" for m in view.models)
        + f". Memory utilisation {pct(hl.memory_before)} → {pct(hl.memory_after)}, "
        f"compute {pct(hl.compute_before)} → {pct(hl.compute_after)}."
    )
    return Chart("fleet", "GPUs and utilisation", alt, _png(fig), 720)


@dataclass(frozen=True)
class Row:
    """One bar: the members of a class on one GPU model that got the same decision."""

    card: ClassRow
    group: MemberGroup

    @property
    def label(self) -> str:
        r, g = self.card, self.group
        label = r.label if len(r.label) <= 30 else r.label[:29] + "…"
        count = f" ({len(g.members)})" if r.class_id != "outlier" and len(r.members) > 1 else ""
        return f"{r.class_id} · {label}{count}\n{g.title} · {r.model}"


def _rows(view: ReportView) -> list[Row]:
    return [Row(card, group) for card, group in view.chart_rows()]


def _envelope_chart(
    view: ReportView,
    name: str,
    title: str,
    unit: str,
    value_of: Callable[[MemberGroup], Bar],
) -> Chart:
    rows = _rows(view)
    fig = _figure(0.62 * len(rows) + 1.0)
    ax = fig.subplots()
    ys = list(range(len(rows)))[::-1]
    xmax = 0.0
    alt_parts = []
    for y, row in zip(ys, rows, strict=True):
        colour = MODE_COLOURS[row.group.decision.mode]
        limit, p_mid, peak, dots, text = value_of(row.group)
        xmax = max(xmax, limit, peak or 0.0)
        ax.barh(y, limit, height=0.62, color=colour, alpha=0.16, edgecolor=colour, linewidth=0.8)
        if p_mid is None:
            ax.text(limit * 0.02, y, "not measured", va="center", fontsize=7.5, color=MUTED, style="italic")
        elif peak is not None:
            ax.barh(y, p_mid, height=0.28, color=colour)
            ax.scatter(dots, [y] * len(dots), s=9, color="white", edgecolors=colour, linewidths=0.8, zorder=3)
            ax.plot([peak, peak], [y - 0.24, y + 0.24], color=INK, linewidth=1.6, zorder=4)
        ax.text(limit, y, "  " + text, va="center", fontsize=7.5, color=INK)
        who = row.card.label if row.card.class_id == "outlier" else row.card.class_id  # "20 outliers" or a name
        alt_parts.append(f"{who} ({row.group.title}, {row.card.model}): {text}")
    ax.set_yticks(ys, [row.label for row in rows], fontsize=7.5, color=INK)
    ax.set_xlim(0, xmax * 1.42)  # room for the text beside the longest bar
    ticks = MaxNLocator(nbins=6).tick_values(0, xmax)
    ax.set_xticks([t for t in ticks if 0 <= t <= xmax * 1.001])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel(unit, fontsize=8, color=MUTED)
    _style(ax)
    handles = [
        Patch(facecolor="#9aa5b1", alpha=0.35, edgecolor="#9aa5b1", label="limit it gets"),
        Patch(color="#52606d", label="p99" if name == "memory" else "p95"),
        Line2D([], [], color=INK, linewidth=1.6, label="peak" if name == "memory" else "highest p95"),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markersize=4,
            markerfacecolor="white",
            color="#52606d",
            label="each member",
        ),
    ]
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4)
    return Chart(name, title, f"{title}. " + "; ".join(alt_parts) + ".", _png(fig), 720)


def memory_chart(view: ReportView) -> Chart:
    """Per class and GPU model: p99 and peak memory of its members against the memory limit of its decision."""

    def values(g: MemberGroup) -> Bar:
        e = g.envelope
        limit = g.decision.memory_limit_bytes / GIB
        peak = e.memory_peak_bytes / GIB
        return (
            limit,
            e.memory_p99_bytes / GIB,
            peak,
            [p / GIB for p in e.member_memory_peaks],
            (f"peak {peak:.1f} of {limit:.1f} GiB"),
        )

    return _envelope_chart(view, "memory", "Memory used vs the limit each workload gets", "GiB per workload", values)


def compute_chart(view: ReportView) -> Chart:
    """Per class and GPU model: p95 compute of its members against the SM share of its decision."""

    def values(g: MemberGroup) -> Bar:
        e = g.envelope
        limit = g.decision.compute_limit_gpu_fraction
        shared = " (shared)" if g.decision.mode == Mode.TIMESLICE else ""
        if e.compute_p95 is None:
            return limit, None, None, [], f"limit {limit:.2f}{shared}, compute not measured"
        return (
            limit,
            e.compute_p95,
            e.compute_p95,
            list(e.member_compute_p95s),
            (f"p95 {e.compute_p95:.2f} of {limit:.2f}{shared}"),
        )

    return _envelope_chart(
        view, "compute", "Compute used vs the SM share each workload gets", "fraction of a whole GPU's SMs", values
    )


def render_charts(view: ReportView) -> tuple[Chart, ...]:
    charts = [fleet_chart(view)]
    if _rows(view):
        charts += [memory_chart(view), compute_chart(view)]
    return tuple(charts)

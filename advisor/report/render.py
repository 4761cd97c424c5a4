"""Render a Recommendation as HTML (for the file and for email), Markdown and plain text, with jinja2 templates.

HTML comes back in two forms from one rendering of the charts: ``document``, self-contained with the PNG charts
as data: URIs (report.html on disk opens anywhere, offline), and ``email``, the same page referring to the charts
by ``cid:`` so that the mailer attaches them as inline parts (Gmail and Outlook drop data: URIs and SVG).
"""

from __future__ import annotations

import base64
import hashlib
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import jinja2
from markupsafe import Markup, escape

from advisor.model import Mode, Recommendation
from advisor.report.charts import MODE_COLOURS, Chart, render_charts
from advisor.report.formatting import day, gib, gpu_fraction, pct, when
from advisor.report.view import ReportView, build_view

if TYPE_CHECKING:
    from advisor.backtest.model import BacktestResult

_RISK_COLOURS = {"low": ("#065f46", "#d1fae5"), "medium": ("#92400e", "#fef3c7"), "high": ("#991b1b", "#fee2e2")}
_MODE_TINTS = {Mode.MIG: "#dbeafe", Mode.MPS: "#fef3c7", Mode.TIMESLICE: "#d1fae5", Mode.EXCLUSIVE: "#ede9fe"}
_ATTACHMENT_HELP = {
    "recommendation.json": "everything above as data (DESIGN.md's recommendation format)",
    "configs/mig-parted.yaml": "nvidia-mig-parted apply -f mig-parted.yaml -c <config> on each MIG node",
    "configs/device-plugin.yaml": "the NVIDIA device plugin's sharing config (time-slicing, MPS)",
    "configs/resource-requests.yaml": "the GPU resource each workload should request",
    "configs/nos.yaml": "nebuly nos requests and annotations",
}


@dataclass(frozen=True)
class InlineImage:
    """A chart for email: attach ``png`` as image/png with ``Content-ID: <cid>`` inside multipart/related."""

    cid: str  # without angle brackets
    filename: str
    png: bytes
    alt: str


@dataclass(frozen=True)
class RenderedHtml:
    document: str  # self-contained: write it to report.html
    email: str  # refers to ``images`` by cid:
    images: tuple[InlineImage, ...]


def _cid(chart: Chart) -> str:
    return f"{chart.name}.{hashlib.sha256(chart.png).hexdigest()[:16]}@slicewise"


def _frac_short(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _breakable(name: str) -> Markup:
    """A workload name that may wrap after its namespace: ``serving/<wbr>embeddings`` fits a narrow MIG cell."""
    return Markup("/<wbr>").join(escape(part) for part in str(name).split("/"))


def _names(names: Sequence[str], limit: int) -> str:
    """A list of workloads that stays short: the rest are in the table below and in recommendation.json."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _md(text: object) -> str:
    """Free text in Markdown: a pipe would split a table cell and ``<`` would start raw HTML."""
    return _md_code(text).replace("<", "&lt;").replace(">", "&gt;")


def _md_code(text: object) -> str:
    """Text inside a code span: GFM still splits table cells at an unescaped pipe, even there."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|")


def _wrap(text: str, first: str, rest: str, width: int = 100) -> str:
    return textwrap.fill(str(text), width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("advisor.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        gib=gib,
        pct=pct,
        frac=gpu_fraction,
        frac_short=_frac_short,
        md=_md,
        names=_names,
        md_code=_md_code,
        breakable=_breakable,
        wrap=_wrap,
        day=day,
        when=when,
        mode_colour=lambda m: MODE_COLOURS[Mode(m)],
        mode_tint=lambda m: _MODE_TINTS[Mode(m)],
        attachment_help=lambda name: _ATTACHMENT_HELP.get(name, ""),
    )
    env.globals["risk_colours"] = lambda level: _RISK_COLOURS.get(level, _RISK_COLOURS["high"])
    return env


# Gmail clips an HTML body over 102 KB behind "[Message clipped]"; each workload row is ~0.4 KB, so the email lists
# this many and points to the attachment for the rest (the file report lists all)
EMAIL_WORKLOAD_ROWS = 150


def _html(
    view: ReportView,
    charts: tuple[Chart, ...],
    image_src: Callable[[Chart], str],
    max_workload_rows: int | None = None,
) -> str:
    template = _environment().get_template("report.html.j2")
    by_name = {c.name: c for c in charts}
    named = {name: by_name.get(name) for name in ("fleet", "memory", "compute")}
    return template.render(v=view, charts=named, image_src=image_src, max_workload_rows=max_workload_rows)


def render_html(
    rec: Recommendation, previous: Recommendation | None = None, *, backtest: BacktestResult | None = None
) -> RenderedHtml:
    """The HTML report in its two forms; ``previous`` (last week's recommendation) adds "what changed",
    ``backtest`` the replay of the advice's past (advisor.backtest)."""
    view = build_view(rec, previous, backtest)
    charts = render_charts(view)
    images = tuple(InlineImage(_cid(c), f"{c.name}.png", c.png, c.alt) for c in charts)
    cids = {c.name: _cid(c) for c in charts}
    document = _html(view, charts, lambda c: "data:image/png;base64," + base64.b64encode(c.png).decode("ascii"))
    email = _html(view, charts, lambda c: "cid:" + cids[c.name], EMAIL_WORKLOAD_ROWS)
    return RenderedHtml(document=document, email=email, images=images)


def render_markdown(
    rec: Recommendation, previous: Recommendation | None = None, *, backtest: BacktestResult | None = None
) -> str:
    """The report as Markdown (GitHub-flavoured tables), for report.md, a wiki or a merge request."""
    return _environment().get_template("report.md.j2").render(v=build_view(rec, previous, backtest))


def render_text(
    rec: Recommendation, previous: Recommendation | None = None, *, backtest: BacktestResult | None = None
) -> str:
    """The report as plain text: the terminal's ``--format text`` and the email's text alternative."""
    return _environment().get_template("report.txt.j2").render(v=build_view(rec, previous, backtest))

"""Reports from one Recommendation: HTML (file and email forms, with PNG charts), Markdown and plain text.

``render_html(rec, previous)`` -> ``RenderedHtml`` (``.document`` self-contained, ``.email`` + ``.images`` for CID),
``render_markdown(rec, previous)`` and ``render_text(rec, previous)`` -> ``str``. ``previous``, last week's
recommendation, adds "what changed". ``build_view`` gives the same content as typed data (Slack uses it).
"""

from advisor.report.render import InlineImage, RenderedHtml, render_html, render_markdown, render_text
from advisor.report.view import ReportView, build_view

__all__ = [
    "InlineImage",
    "RenderedHtml",
    "ReportView",
    "build_view",
    "render_html",
    "render_markdown",
    "render_text",
]

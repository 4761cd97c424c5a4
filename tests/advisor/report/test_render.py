"""The three report formats from one realistic recommendation: content, self-containment, email form, escaping."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from advisor.model import Recommendation
from advisor.report import RenderedHtml, render_html, render_markdown, render_text
from tests.advisor.report.fixtures import last_week, this_week

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Tags(HTMLParser):
    """Every start tag with its attributes, to check what a browser or mail client would fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


@pytest.fixture(scope="module")
def rendered() -> RenderedHtml:
    return render_html(this_week(), last_week())


def test_file_html_is_self_contained_with_png_charts(rendered: RenderedHtml) -> None:
    found = tags(rendered.document)
    names = {t for t, _ in found}
    assert "script" not in names and "link" not in names and "iframe" not in names
    images = [a for t, a in found if t == "img"]
    assert len(images) == 3  # fleet, memory, compute
    for attrs in images:
        src = attrs["src"] or ""
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
        assert attrs["alt"] and len(attrs["alt"]) > 40  # says what the chart shows when images are blocked
    # nothing is fetched from anywhere: no src or href to the network
    for _, attrs in found:
        for key in ("src", "href", "background"):
            assert not (attrs.get(key) or "").startswith(("http:", "https:", "//")), attrs


def test_email_html_refers_to_each_chart_by_content_id(rendered: RenderedHtml) -> None:
    srcs = [a["src"] for t, a in tags(rendered.email) if t == "img"]
    assert srcs == [f"cid:{i.cid}" for i in rendered.images]
    assert "data:image" not in rendered.email
    for image in rendered.images:
        assert image.png.startswith(PNG_MAGIC)
        assert re.fullmatch(r"[a-z]+\.[0-9a-f]{16}@slicewise", image.cid)
        assert image.filename.endswith(".png")
    # the two forms differ only in how they refer to the images
    assert re.sub(r'src="[^"]*"', "", rendered.email) == re.sub(r'src="[^"]*"', "", rendered.document)


def test_html_shows_headline_classes_decisions_and_risks(rendered: RenderedHtml) -> None:
    html = rendered.document
    assert "14 GPUs can do the work of 20: 6 freed." in html
    for text in (
        "c1 · steady online inference, small memory",
        "MIG 1g.10gb",
        "MPS 25 % SMs",
        "time-slicing ×4",
        "MIG 3g.40gb",
        "whole GPU",
        "Outlier · hpc/cfd-solver",
        "compute <i>not measured</i>",  # c3 on A100 MIG: not drawn as zero
        "medium risk",
        "integer program (optimal for these decisions)",
    ):
        assert text in html, text
    rec = this_week()
    for w in rec.workloads:
        if w.workload != "train/moe-giant":
            assert w.workload.replace("/", "/<wbr>") in html  # in the workload table, breakable after the namespace
    # the unplaced workload is reported, not dropped
    assert "<b>train/moe-giant</b> on H100 80GB HBM3: its 78.9 GiB peak plus 15 % headroom" in html


def test_what_changed_lists_the_differences_from_last_week(rendered: RenderedHtml) -> None:
    html = rendered.document
    assert "What changed since 2025-02-24" in html
    assert "GPUs needed: 15 → 14 (-1); GPUs in use: 21 → 20 (-1)." in html
    assert "serving/ocr on H100 80GB HBM3: MPS 25 % SMs → MIG 1g.10gb." in html
    assert "batch/doc-embed on A100-SXM4-80GB: MIG 4g.40gb → MIG 3g.40gb." in html
    assert "New this week: speech/vad (H100 80GB HBM3)." in html
    assert "No longer seen: research/nb-hugo (A100-SXM4-80GB)." in html


def test_no_previous_no_changes_section_and_identical_weeks_say_so() -> None:
    rec = this_week()
    assert "What changed" not in render_markdown(rec)
    assert "Nothing changed: the same workloads" in render_text(rec, rec)


def test_markdown_tables_are_well_formed() -> None:
    md = render_markdown(this_week(), last_week())
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) > 40
    table: list[str] = []
    for line in [*md.splitlines(), ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:  # every row of a table has as many unescaped pipes as its header
            widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table}
            assert len(widths) == 1, table
            assert re.fullmatch(r"\|(:?-+:?\|)+", table[1]), table[1]
            table = []
    assert md.startswith("# slicewise · GPU sharing report: 14 GPUs can do the work of 20: 6 freed")
    assert "| c3 · batch inference, medium memory (3) | A100-SXM4-80GB | **MIG 3g.40gb** |" in md
    assert "## What changed since 2025-02-24" in md


def test_text_report_for_terminals_and_the_email_text_part() -> None:
    text = render_text(this_week(), last_week())
    assert text.startswith("SLICEWISE · GPU SHARING REPORT\n14 GPUs can do the work of 20: 6 freed.")
    assert "  GPUs needed        14 of 20 in the fleet (6 freed, 30 %; lower bound 13)" in text
    assert "      1g.10gb   serving/chat-api" in text
    assert "compute not measured" in text
    assert not re.search(r"</?(b|i|span|br|wbr|td|p)\b|&lt;|&amp;", text)  # no markup or entities leak in
    prose = [line for line in text.splitlines() if not line.startswith(("  serving", "  research", "  batch", "  "))]
    assert all(len(line) <= 130 for line in prose)


def test_names_are_escaped_in_html_and_markdown() -> None:
    rec = this_week()
    evil = "ml/<script>alert(1)</script>|x"
    w0 = replace(rec.workloads[0], workload=evil)
    rec = replace(rec, workloads=(w0, *rec.workloads[1:]))
    html = render_html(rec).document
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    md = render_markdown(rec)
    assert "`ml/<script>alert(1)</script>\\|x`" in md  # in a code span: literal, but the pipe escaped
    assert "Workloads: ml/&lt;script&gt;alert(1)&lt;/script&gt;\\|x," in md  # in prose: no raw HTML
    row = next(line for line in md.splitlines() if "alert(1)" in line and line.startswith("| `"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 9  # 8 columns: the pipe in the code span is escaped


def test_a_recommendation_read_back_from_json_renders_the_same() -> None:
    rec = this_week()
    again = Recommendation.from_json(rec.to_json())
    assert render_markdown(again, last_week()) == render_markdown(rec, last_week())
    assert render_text(again) == render_text(rec)


def test_a_fleet_with_nothing_to_share_still_renders() -> None:
    rec = this_week()
    bare = replace(
        rec,
        classes=(),
        workloads=(),
        plan=replace(rec.plan, models=(), gpus=(), unplaced=(), gpus_now=0, gpus_needed=0, gpus_lower_bound=0),
        notes=(),
    )
    out = render_html(bare)
    assert len(out.images) == 1  # the fleet chart only: no classes to chart
    assert "0 GPUs needed, as many as the fleet has." in out.document
    assert "0 workloads in 0 classes" in render_text(bare)


def test_a_large_fleet_stays_under_gmails_clipping_limit_in_email_and_complete_in_the_file() -> None:
    rec = this_week()
    many = tuple(replace(w, workload=f"{w.workload}-{i:03d}") for i in range(20) for w in rec.workloads)  # 500
    big = replace(rec, workloads=many)
    out = render_html(big)
    assert len(out.email.encode()) < 102_000  # Gmail shows "[Message clipped]" beyond 102 KB
    assert "… and 350 more: every workload is in the attached recommendation.json" in out.email
    # the file lists every workload, and the 40 outliers (renamed copies are no longer the unplaced one) in a table
    assert out.document.count('<tr><td class="c" style="font-size:12px;">') == 500 + 40
    assert "Outliers, decided on their own" in out.document and "Outlier · " not in out.document
    assert "40 outliers" in out.images[1].alt or "20 outliers" in out.images[1].alt  # merged chart rows

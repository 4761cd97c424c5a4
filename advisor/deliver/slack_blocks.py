"""The Slack summary: a Block Kit message with the headline numbers, the decisions by class, what changed, and a
link to (or, with a bot token, a thread holding) the full report.

Built with slack_sdk's block models, which enforce Slack's limits (header 150 characters, section text 3000,
10 fields) when the message is built rather than when Slack refuses it.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from advisor.deliver.package import ReportPackage
from advisor.report.formatting import day, pct, when

SECTION_LIMIT = 3000
MAX_LINES = 12  # a channel message is a summary: the rest is in the report


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _bullets(lines: list[str], more: str) -> str:
    shown = lines[:MAX_LINES]
    if len(lines) > MAX_LINES:
        shown.append(f"… and {len(lines) - MAX_LINES} more {more} in the report")
    text = "\n".join(f"• {line}" for line in shown)
    return text if len(text) <= SECTION_LIMIT else text[: SECTION_LIMIT - 1] + "…"


def summary_blocks(package: ReportPackage, with_thread: bool = False) -> list[dict[str, Any]]:
    """The message's blocks as JSON-ready dicts. ``with_thread``: say the full report follows in the thread."""
    v = package.view
    hl = v.headline
    blocks: list[Block] = [
        HeaderBlock(text=f"GPU sharing report · {day(v.window_start)} – {day(v.window_end)}"),
        SectionBlock(
            text=MarkdownTextObject(
                text=f"*{escape(hl.sentence)}* (no plan can use fewer than {hl.gpus_lower_bound})."
            ),
            fields=[
                MarkdownTextObject(text=f"*GPUs needed*\n{hl.gpus_needed} of {hl.gpus_now} in use"),
                MarkdownTextObject(text=f"*GPUs freed*\n{hl.gpus_freed} ({pct(hl.freed_share)})"),
                MarkdownTextObject(text=f"*Memory utilisation*\n{pct(hl.memory_before)} → {pct(hl.memory_after)}"),
                MarkdownTextObject(text=f"*Compute utilisation*\n{pct(hl.compute_before)} → {pct(hl.compute_after)}"),
            ],
        ),
    ]
    models = [f"{escape(m.model)}: {m.gpus_now} → *{m.gpus_needed}* (bound {m.gpus_lower_bound})" for m in v.models]
    if models:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="*Per GPU model*\n" + _bullets(models, "models"))))
    decisions = [
        f"*{escape(r.title)}* for {escape(r.class_id if r.class_id != 'outlier' else 'outlier')} "
        f"{escape(r.label)} on {escape(r.model)} ({len(r.members)}) · {r.decision.risk.level} risk"
        for r in v.classes
    ]
    if decisions:
        blocks.append(DividerBlock())
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text="*Decisions by class*\n" + _bullets(decisions, "classes")))
        )
    if v.changes is not None:
        changes = [escape(s) for s in v.changes.sentences()]
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"*What changed since {day(v.changes.since)}*\n" + _bullets(changes, "changes")
                )
            )
        )
    if v.unplaced:
        names = ", ".join(escape(u.workload) for u in v.unplaced)
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=f":warning: *Fits no GPU model the fleet has:* {names}"))
        )
    if package.report_url:
        blocks.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        text="Open the full report", url=package.report_url, action_id="open_report", style="primary"
                    )
                ]
            )
        )
    where = "The full report and its configs are in the thread." if with_thread else ""
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"{where} Source `{escape(v.source)}` · generated {when(v.generated_at)} by slicewise".strip()
                )
            ]
        )
    )
    return [b.to_dict() for b in blocks]

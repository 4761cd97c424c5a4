"""One week's report, rendered once, in every form the destinations need: subject, text, HTML with its inline
charts, the attachments (recommendation JSON and configs) and the headline view for Slack's summary.

Every destination of a period gets the same package, so a destination retried on Thursday sends the very report
that the others got on Monday.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.backtest import BacktestResult
from advisor.model import Recommendation
from advisor.report import RenderedHtml, ReportView, build_view, render_html, render_text
from advisor.report.formatting import day


@dataclass(frozen=True)
class Attachment:
    filename: str  # what the reader sees, e.g. "mig-parted.yaml"
    content: bytes
    mime: str  # "application/json", "application/yaml", "text/html"


@dataclass(frozen=True)
class ReportPackage:
    period: str  # the ledger's period key: which scheduled run this report belongs to
    subject: str
    view: ReportView
    text: str
    html: RenderedHtml
    attachments: tuple[Attachment, ...]  # for email: the data and the configs (the HTML is the body)
    report_url: str | None  # where the report is published, when the config says; Slack links to it

    @property
    def report_file(self) -> Attachment:
        """The self-contained HTML report as a file (uploaded to Slack)."""
        return Attachment(f"slicewise-report-{self.period}.html", self.html.document.encode("utf-8"), "text/html")


def subject_for(view: ReportView) -> str:
    return f"slicewise GPU report {day(view.window_end)}: {view.headline.sentence}"


def build_package(
    rec: Recommendation,
    previous: Recommendation | None,
    period: str,
    report_url: str | None = None,
    backtest: BacktestResult | None = None,
) -> ReportPackage:
    view = build_view(rec, previous, backtest)
    attachments = [
        Attachment("recommendation.json", rec.to_json().encode("utf-8") + b"\n", "application/json"),
        Attachment("mig-parted.yaml", rec.configs.mig_parted.encode("utf-8"), "application/yaml"),
        Attachment("device-plugin.yaml", rec.configs.device_plugin.encode("utf-8"), "application/yaml"),
        Attachment("resource-requests.yaml", rec.configs.resource_requests.encode("utf-8"), "application/yaml"),
    ]
    if rec.configs.nos is not None:
        attachments.append(Attachment("nos.yaml", rec.configs.nos.encode("utf-8"), "application/yaml"))
    return ReportPackage(
        period=period,
        subject=subject_for(view),
        view=view,
        text=render_text(rec, previous, backtest=backtest),
        html=render_html(rec, previous, backtest=backtest),
        attachments=tuple(attachments),
        report_url=report_url,
    )

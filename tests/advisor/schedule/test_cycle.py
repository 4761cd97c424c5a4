"""The whole cycle: the real advisor on a history file -> the out directory -> reports -> email and Slack, through
outages, retries and a second week that differs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from advisor.deliver import Status
from advisor.schedule.config import load_config
from advisor.schedule.cycle import ledger_of, owed_period, run_cycle
from advisor.schedule.jobs import retry_deliveries
from tests.advisor.deliver.servers import Failure, start_smtp
from tests.advisor.schedule.conftest import SMTP_PASSWORD, SMTP_USER, TO, Site
from tests.advisor.schedule.history import write_fleet

pytestmark = pytest.mark.slow  # the real advisor runs in each test (a few seconds)

SLICEWISE = [sys.executable, "-c", "from slicewise.cli import main; main()"]


def test_once_runs_the_advisor_and_delivers_by_email_and_slack_exactly_once(site: Site) -> None:
    config = site.write()
    run = subprocess.run(
        [*SLICEWISE, "schedule", "--config", str(config), "--once"],
        env=site.subprocess_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    assert "5 sent, 0 already sent, 0 failed (advisor ran" in run.stdout
    # the out directory of the period, and "latest" pointing at it
    reports = site.tmp / "reports"
    [period_dir] = [p for p in reports.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
    assert (reports / "latest").resolve() == period_dir.resolve()
    for name in (
        "recommendation.json",
        "backtest.json",
        "report.html",
        "report.md",
        "configs/mig-parted.yaml",
        "advisor.prom",
    ):
        assert (period_dir / name).is_file(), name
    backtest = json.loads((period_dir / "backtest.json").read_text())
    assert backtest["origins"] and backtest["unavailable"] is None  # a history file: last period's advice replayed
    # email: one message, both recipients, text + HTML with inline charts + attachments
    [mail] = site.smtp.received
    assert sorted(mail.rcpt_tos) == sorted(TO) and mail.authenticated_as == SMTP_USER
    text = mail.message.get_body(preferencelist=("plain",)).get_content()
    html = mail.message.get_body(preferencelist=("html",)).get_content()
    assert "GPUs needed" in text and "10 workloads in 2 classes" in text
    assert "Backtest" in text and "OOM" in text  # what the advice of an earlier origin would have done
    assert html.count('src="cid:') == 3
    attachments = {a.get_filename() for a in mail.message.iter_attachments()}
    assert "recommendation.json" in attachments and "mig-parted.yaml" in attachments
    sent_rec = json.loads(
        next(a for a in mail.message.iter_attachments() if a.get_filename() == "recommendation.json").get_content()
    )
    assert sent_rec == json.loads((period_dir / "recommendation.json").read_text())
    # Slack: the webhook summary links to the published report; the bot's thread has the files
    [hook] = site.slack.state.webhook_posts
    button = next(b for b in hook["blocks"] if b["type"] == "actions")["elements"][0]
    assert button["url"] == f"https://gpu-reports.example.com/slicewise/{period_dir.name}/report.html"
    [message] = site.slack.state.messages
    assert {s.thread_ts for s in site.slack.state.shared} == {message.ts} and len(site.slack.state.shared) == 2
    # nothing leaks the secrets
    assert SMTP_PASSWORD not in run.stderr + run.stdout and "xoxb" not in run.stderr + run.stdout

    again = subprocess.run(
        [*SLICEWISE, "schedule", "--config", str(config), "--once"],
        env=site.subprocess_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert again.returncode == 0, again.stderr
    assert "0 sent, 5 already sent, 0 failed (reused this period's recommendation" in again.stdout
    assert len(site.smtp.received) == 1 and len(site.slack.state.webhook_posts) == 1
    assert len(site.slack.state.messages) == 1 and len(site.slack.state.shared) == 2


def test_an_smtp_outage_and_a_slack_500_are_recovered_by_the_retry_job_without_double_sending(
    site: Site,
) -> None:
    config_path = site.write()
    config = load_config(config_path)
    port = site.smtp.port
    site.smtp.stop()  # the mail server is down
    site.slack.state.fail("webhook", Failure(500), Failure(500))  # Slack is failing too (2 attempts per cycle)
    site.slack.state.fail("chat.postMessage", Failure(500), Failure(503))
    first = run_cycle(config)
    assert first.advisor_ran and not first.delivery.complete
    assert {o.destination for o in first.delivery.failed} == {
        "email:ops@example.com",
        "email:ml-platform@example.com",
        "slack-webhook:gpu-fleet:" + first.delivery.failed[2].destination.rsplit(":", 1)[1],
        "slack:C0GPUFLEET:message",
        "slack:C0GPUFLEET:report",
    }
    assert owed_period(config) == first.period
    recommendation = first.out_dir / "recommendation.json"
    written = recommendation.stat().st_mtime_ns

    # both come back; the retry job (as the scheduler would call it) finishes the period
    site.smtp = start_smtp(site.certs, "starttls", users={SMTP_USER: SMTP_PASSWORD}, port=port)
    retry_deliveries(str(config_path))
    assert len(site.smtp.received) == 1
    assert len(site.slack.state.webhook_posts) == 1
    assert len(site.slack.state.messages) == 1 and len(site.slack.state.shared) == 2
    assert recommendation.stat().st_mtime_ns == written  # the same report, not a new advisor run
    assert owed_period(config) is None
    entries = ledger_of(config).entries(first.period)
    assert {e.status for e in entries.values()} == {Status.SENT}
    assert entries["email:ops@example.com"].attempts == 2
    # and the retry job has nothing left to do
    retry_deliveries(str(config_path))
    assert len(site.smtp.received) == 1 and len(site.slack.state.webhook_posts) == 1


def test_the_second_week_says_what_changed(site: Site, tmp_path: Path) -> None:
    config = load_config(site.write())
    first = run_cycle(config, period="2026-03-02T0800+0100")
    assert first.delivery.complete
    # a week later the fleet has one more notebook
    write_fleet(site.history.parent / "week2.csv", seed=1, extra_notebook=True)
    week2 = load_config(site.write("week2.yaml", source={"history": str(site.history.parent / "week2.csv")}))
    second = run_cycle(week2, period="2026-03-09T0800+0100")
    assert second.delivery.complete
    latest = site.smtp.received[-1].message
    html = latest.get_body(preferencelist=("html",)).get_content()
    assert "What changed since " in html
    assert "New this week: research/nb-chen (A100-SXM4-80GB)." in html
    assert "What changed since" in (second.out_dir / "report.md").read_text()
    assert "What changed" not in (first.out_dir / "report.md").read_text()
    assert [m.ts for m in site.slack.state.messages] == sorted(m.ts for m in site.slack.state.messages)
    assert len(site.slack.state.messages) == 2


def test_an_advisor_failure_sends_nothing_and_is_retried(site: Site) -> None:
    broken = site.tmp / "broken.csv"
    broken.write_text("timestamp,workload\n1,a\n")
    config_path = site.write(source={"history": str(broken)})
    config = load_config(config_path)
    with pytest.raises(Exception, match=r"broken\.csv"):
        run_cycle(config)
    assert not site.smtp.received and not site.slack.state.webhook_posts
    period = owed_period(config)
    assert period is not None  # started, owed
    # the file is fixed; the retry job runs the advisor for the same period
    write_fleet(broken)
    retry_deliveries(str(config_path))
    assert len(site.smtp.received) == 1
    assert site.smtp.received[0].message["X-Slicewise-Period"] == period


def test_two_cycles_at_once_send_each_destination_one_copy(site: Site) -> None:
    # --once started by hand while the service runs the same period: the second waits, then finds it all sent
    config = load_config(site.write())
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(run_cycle(config))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 2
    assert len(site.smtp.received) == 1
    assert len(site.slack.state.webhook_posts) == 1 and len(site.slack.state.messages) == 1
    assert len(site.slack.state.shared) == 2

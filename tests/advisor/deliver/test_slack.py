"""Slack against a local HTTP server that answers like Slack: a webhook and a bot (chat.postMessage, the files
upload flow), with 5xx, 429 + Retry-After and lost responses, recovered without posting twice."""

from __future__ import annotations

import json
import logging
import time

import pytest

from advisor.deliver import (
    DeliveryLedger,
    ReportPackage,
    RetryPolicy,
    Secret,
    SlackBotChannel,
    SlackWebhookChannel,
    Status,
    deliver,
)
from advisor.deliver.slack import EVENT_TYPE
from tests.advisor.deliver.servers import Failure, SlackHttpServer

TOKEN = "xoxb-test-token"


def bot(slack: SlackHttpServer, policy: RetryPolicy, channels: tuple[str, ...] = ("C0GPUFLEET",)) -> SlackBotChannel:
    return SlackBotChannel(Secret(TOKEN, "test"), channels, policy, api_url=slack.api_url, timeout=10)


def webhook(slack: SlackHttpServer, policy: RetryPolicy) -> SlackWebhookChannel:
    return SlackWebhookChannel("gpu-fleet", Secret(slack.webhook_url, "test"), policy, timeout=10)


def texts(blocks: list[dict]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_webhook_posts_a_block_kit_summary_with_the_headline_and_a_link(
    slack: SlackHttpServer, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    result = deliver(package, [webhook(slack, policy)], ledger)
    assert result.complete
    [post] = slack.state.webhook_posts
    assert post["text"] == package.subject  # the notification's fallback text
    blocks = post["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "GPU sharing report · 2025-02-17 – 2025-03-03", "emoji": True},
    }
    body = texts(blocks)
    assert "*14 GPUs can do the work of 20: 6 freed* (no plan can use fewer than 13)." in body
    assert "*Memory utilisation*\\n31 % → 58 %" in body
    assert "*MIG 1g.10gb* for c1 steady online inference, small memory on H100 80GB HBM3 (6)" in body
    assert "serving/ocr on H100 80GB HBM3: MPS 25 % SMs → MIG 1g.10gb." in body
    assert ":warning: *Fits no GPU model the fleet has:* train/moe-giant" in body
    [button] = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert button["url"] == "https://reports.example.com/slicewise/"
    # the webhook URL is the secret: the ledger names the webhook by label and digest only
    [key] = ledger.entries(package.period)
    assert key.startswith("slack-webhook:gpu-fleet:") and "XXXX" not in key


def test_webhook_500s_are_retried_and_the_summary_arrives_once(
    slack: SlackHttpServer, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    slack.state.fail("webhook", Failure(500), Failure(503))
    result = deliver(package, [webhook(slack, policy)], ledger)
    assert result.complete
    assert slack.state.count("webhook") == 3
    assert len(slack.state.webhook_posts) == 1


def test_webhook_down_for_a_whole_cycle_is_sent_by_a_later_cycle_once(
    slack: SlackHttpServer, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    slack.state.fail("webhook", *[Failure(500)] * policy.attempts)
    first = deliver(package, [webhook(slack, policy)], ledger)
    assert not first.complete and "HTTP 500" in first.failed[0].detail
    assert not slack.state.webhook_posts
    second = deliver(package, [webhook(slack, policy)], ledger)
    third = deliver(package, [webhook(slack, policy)], ledger)
    assert second.complete and len(second.sent) == 1
    assert third.complete and not third.sent
    assert len(slack.state.webhook_posts) == 1


def test_bot_posts_the_summary_and_uploads_the_report_into_its_thread(
    slack: SlackHttpServer, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    result = deliver(package, [bot(slack, policy, ("C0GPUFLEET", "C0PLATFORM"))], ledger)
    assert result.complete and len(result.sent) == 4
    assert [m.channel for m in slack.state.messages] == ["C0GPUFLEET", "C0PLATFORM"]
    message = slack.state.messages[0]
    assert message.metadata == {"event_type": EVENT_TYPE, "event_payload": {"period": package.period}}
    assert "The full report and its configs are in the thread." in texts(message.blocks)
    shared = [s for s in slack.state.shared if s.channel == "C0GPUFLEET"]
    assert {s.title for s in shared} == {f"slicewise-report-{package.period}.html", "recommendation.json"}
    assert all(s.thread_ts == message.ts for s in shared)
    html = next(s for s in shared if s.title.endswith(".html")).content.decode()
    assert html.startswith("<!DOCTYPE html>") and "data:image/png;base64," in html  # opens on its own
    assert slack.state.requests.count("files.completeUploadExternal") == 2


def test_bot_honours_retry_after_on_429(
    slack: SlackHttpServer, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    slack.state.fail("chat.postMessage", Failure(429, {"Retry-After": "1"}, body='{"ok":false,"error":"ratelimited"}'))
    started = time.monotonic()
    result = deliver(package, [bot(slack, policy)], ledger)
    waited = time.monotonic() - started
    assert result.complete
    assert waited >= 1.0  # what the server asked, not the policy's 0.05 s
    assert slack.state.count("chat.postMessage") == 2
    assert len(slack.state.messages) == 1


def test_bot_does_not_post_twice_when_slack_posted_but_answered_500(
    slack: SlackHttpServer, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    # the message is posted, then the answer is lost: a blind retry would post it again
    slack.state.fail("chat.postMessage", Failure(500, effect=True))
    result = deliver(package, [bot(slack, policy)], ledger)
    assert result.complete
    assert len(slack.state.messages) == 1
    assert slack.state.count("conversations.history") == 1
    assert slack.state.count("chat.postMessage") == 1
    # and the report went into the thread of the message that was found
    assert {s.thread_ts for s in slack.state.shared} == {slack.state.messages[0].ts}


def test_bot_upload_failing_for_a_cycle_is_finished_later_without_reposting(
    slack: SlackHttpServer,
    package: ReportPackage,
    ledger: DeliveryLedger,
    policy: RetryPolicy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    slack.state.fail("upload", *[Failure(500)] * policy.attempts)
    first = deliver(package, [bot(slack, policy)], ledger)
    assert [o.destination for o in first.sent] == ["slack:C0GPUFLEET:message"]
    assert [o.destination for o in first.failed] == ["slack:C0GPUFLEET:report"]
    assert not slack.state.shared
    second = deliver(package, [bot(slack, policy)], ledger)
    assert [o.destination for o in second.sent] == ["slack:C0GPUFLEET:report"]
    assert second.already_sent == ("slack:C0GPUFLEET:message",)
    assert len(slack.state.messages) == 1
    assert {s.thread_ts for s in slack.state.shared} == {slack.state.messages[0].ts}
    assert TOKEN not in caplog.text


def test_bot_slack_down_for_a_cycle_then_both_steps_happen_once(
    slack: SlackHttpServer, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    slack.state.fail("chat.postMessage", *[Failure(500)] * policy.attempts)
    first = deliver(package, [bot(slack, policy)], ledger)
    assert not first.sent and len(first.failed) == 2  # the upload waits for its message
    entries = ledger.entries(package.period)
    assert entries["slack:C0GPUFLEET:message"].status == Status.FAILED
    assert "slack:C0GPUFLEET:report" not in entries  # never started
    second = deliver(package, [bot(slack, policy)], ledger)
    assert second.complete and len(second.sent) == 2
    assert len(slack.state.messages) == 1 and len(slack.state.shared) == 2


def test_bot_with_a_bad_token_or_channel_fails_clearly_without_retrying(
    slack: SlackHttpServer, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    wrong = SlackBotChannel(Secret("xoxb-wrong", "test"), ("C0GPUFLEET",), policy, api_url=slack.api_url)
    result = deliver(package, [wrong], ledger)
    assert "invalid_auth" in result.failed[0].detail
    assert slack.state.count("chat.postMessage") == 1
    missing = bot(slack, policy, ("C0NOWHERE",))
    result = deliver(package, [missing], ledger)
    assert "channel_not_found" in result.failed[0].detail

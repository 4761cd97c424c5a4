"""Slack refusing connections (down, or a firewall): a counted, retried delivery failure in the ledger, and the
report goes out once Slack is back. It used to end the bot's send with an unhandled URLError traceback."""

from __future__ import annotations

import logging

import pytest

from advisor.deliver import DeliveryLedger, ReportPackage, RetryPolicy, Secret, SlackBotChannel, Status, deliver
from tests.advisor.deliver.servers import SlackHttpServer
from tests.support import free_port


def test_a_refused_bot_connection_is_a_retried_failure_without_a_traceback(
    slack: SlackHttpServer,
    package: ReportPackage,
    ledger: DeliveryLedger,
    policy: RetryPolicy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = Secret(slack.state.token, "test")
    closed = f"http://127.0.0.1:{free_port()}/api/"
    refused = SlackBotChannel(token, ("C0GPUFLEET",), policy, api_url=closed, timeout=5, sleep=lambda s: None)
    with caplog.at_level(logging.DEBUG):
        result = deliver(package, [refused], ledger)
    assert not result.sent and len(result.failed) == 2  # the message, and the upload that waits for it
    message = ledger.entries(package.period)["slack:C0GPUFLEET:message"]
    assert message.status == Status.FAILED and message.attempts == 1
    assert "Connection refused" in message.detail
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    retries = [r for r in caplog.records if r.name == "advisor.deliver.retry" and "retry" in r.getMessage()]
    assert len(retries) == policy.attempts - 1
    # Slack is back: the next cycle posts once and uploads
    back = SlackBotChannel(token, ("C0GPUFLEET",), policy, api_url=slack.api_url, timeout=5)
    assert deliver(package, [back], ledger).complete
    assert len(slack.state.messages) == 1 and len(slack.state.shared) == 2

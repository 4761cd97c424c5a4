"""Email against a real SMTP server (aiosmtpd on a loopback port): STARTTLS and TLS with AUTH, what arrives,
deferrals and outages recovered without a second copy, refused recipients, and a password that never leaks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from advisor.deliver import (
    DeliveryLedger,
    EmailChannel,
    ReportPackage,
    RetryPolicy,
    SmtpSettings,
    Status,
    deliver,
    read_secret,
)
from tests.advisor.deliver.servers import Certificates, SmtpHandler, SmtpServer, start_smtp
from tests.support import free_port

# aiosmtpd cannot tell that an implicit-TLS session is TLS, so the TLS server allows AUTH without STARTTLS
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

PASSWORD = "s3cret-Passw0rd!"
TO = ["ops@example.com", "ml-platform@example.com"]


def settings(
    server: SmtpServer | None, security: str, port: int | None = None, password: str = PASSWORD
) -> SmtpSettings:
    assert server is not None or port is not None
    return SmtpSettings(
        host="127.0.0.1",
        port=port or server.port,  # type: ignore[union-attr]
        security=security,  # type: ignore[arg-type]
        sender="slicewise <gpu-reports@example.com>",
        username="reports",
        password=read_secret("SMTP password", env="TEST_SMTP_PASSWORD") if password == PASSWORD else None,
        timeout=10,
        ca_file=server.ca_file if server else None,
    )


@pytest.fixture(autouse=True)
def smtp_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_the_report_arrives_as_html_with_a_text_alternative_inline_charts_and_attachments(
    security: str, certs: Certificates, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    server = start_smtp(certs, security, users={"reports": PASSWORD})
    try:
        result = deliver(package, [EmailChannel(settings(server, security), TO, policy)], ledger)
    finally:
        server.stop()
    assert result.complete and len(result.sent) == 2
    [got] = server.received
    assert got.authenticated_as == "reports"
    assert sorted(got.rcpt_tos) == sorted(TO)
    assert got.mail_from == "gpu-reports@example.com"
    msg = got.message
    assert msg["Subject"] == "slicewise GPU report 2025-03-03: 14 GPUs can do the work of 20: 6 freed"
    assert msg["Message-ID"].startswith("<slicewise.") and msg["Message-ID"].endswith("@example.com>")
    assert msg.get_content_type() == "multipart/mixed"
    alternative, *attachments = msg.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    text, related = alternative.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert "14 GPUs can do the work of 20: 6 freed." in text.get_content()
    assert related.get_content_type() == "multipart/related"
    html, *images = related.iter_parts()
    assert html.get_content_type() == "text/html"
    body = html.get_content()
    assert "What changed since 2025-02-24" in body
    assert [i.get_content_type() for i in images] == ["image/png"] * 3
    for image in images:
        cid = image["Content-ID"].strip("<>")
        assert f'src="cid:{cid}"' in body  # every chart the HTML shows travels with it
        assert image.get_content().startswith(b"\x89PNG")
    names = {a.get_filename(): a for a in attachments}
    assert set(names) == {"recommendation.json", "mig-parted.yaml", "device-plugin.yaml", "resource-requests.yaml"}
    assert b'"gpus_needed": 14' in names["recommendation.json"].get_content()
    assert "mig-configs:" in names["mig-parted.yaml"].get_content().decode()
    sent = ledger.entries(package.period)
    assert {e.status for e in sent.values()} == {Status.SENT}
    assert {e.detail for e in sent.values()} == {msg["Message-ID"]}


def test_a_deferral_is_retried_in_the_same_cycle_and_arrives_once(
    certs: Certificates, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    handler = SmtpHandler()
    handler.defer = 1  # 451 on the first DATA
    server = start_smtp(certs, "starttls", users={"reports": PASSWORD}, handler=handler)
    try:
        result = deliver(package, [EmailChannel(settings(server, "starttls"), TO, policy)], ledger)
    finally:
        server.stop()
    assert result.complete
    assert len(server.received) == 1
    assert handler.connections >= 2


def test_an_smtp_outage_leaves_the_report_owed_and_a_later_cycle_sends_it_once(
    certs: Certificates,
    package: ReportPackage,
    ledger: DeliveryLedger,
    policy: RetryPolicy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    channel = EmailChannel(settings(None, "starttls", port=port), TO, policy)
    # the server is down: connection refused on every retry
    first = deliver(package, [channel], ledger)
    assert not first.complete and len(first.failed) == 2
    assert "Connection refused" in first.failed[0].detail
    assert {e.status for e in ledger.entries(package.period).values()} == {Status.FAILED}
    # it comes back; the next cycle delivers, once
    server = start_smtp(certs, "starttls", users={"reports": PASSWORD}, port=port)
    try:
        channel = EmailChannel(settings(server, "starttls"), TO, policy)
        second = deliver(package, [channel], ledger)
        third = deliver(package, [channel], ledger)  # e.g. the retry job fires again: nothing is owed
    finally:
        server.stop()
    assert second.complete and len(second.sent) == 2
    assert third.complete and not third.sent and len(third.already_sent) == 2
    assert len(server.received) == 1
    assert all(e.attempts == 2 for e in ledger.entries(package.period).values())
    assert PASSWORD not in caplog.text


def test_a_refused_recipient_does_not_hold_back_the_others_and_is_retried_alone(
    certs: Certificates, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    handler = SmtpHandler()
    handler.refuse = {"ml-platform@example.com"}
    server = start_smtp(certs, "starttls", users={"reports": PASSWORD}, handler=handler)
    try:
        channel = EmailChannel(settings(server, "starttls"), TO, policy)
        first = deliver(package, [channel], ledger)
        handler.refuse = set()  # the mailbox was created
        second = deliver(package, [channel], ledger)
    finally:
        server.stop()
    assert [o.destination for o in first.sent] == ["email:ops@example.com"]
    assert [o.destination for o in first.failed] == ["email:ml-platform@example.com"]
    assert "550 5.1.1 no such mailbox here" in first.failed[0].detail
    assert [o.destination for o in second.sent] == ["email:ml-platform@example.com"]
    assert [r.rcpt_tos for r in server.received] == [["ops@example.com"], ["ml-platform@example.com"]]
    # the same message both times: one Message-ID, every recipient in To
    assert server.received[0].message["Message-ID"] == server.received[1].message["Message-ID"]
    assert server.received[1].message["To"] == "ops@example.com, ml-platform@example.com"


def test_a_wrong_password_fails_at_once_without_leaking_it(
    certs: Certificates,
    package: ReportPackage,
    ledger: DeliveryLedger,
    policy: RetryPolicy,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-" + PASSWORD)
    handler = SmtpHandler()
    server = start_smtp(certs, "starttls", users={"reports": PASSWORD}, handler=handler)
    caplog.set_level(logging.DEBUG)
    try:
        result = deliver(package, [EmailChannel(settings(server, "starttls"), TO, policy)], ledger)
    finally:
        server.stop()
    assert not result.complete
    assert "authentication failed (535" in result.failed[0].detail
    assert handler.connections == 1  # not retried: a human must fix it
    assert not server.received
    assert PASSWORD not in caplog.text and PASSWORD not in result.summary()
    assert all(PASSWORD not in e.detail for e in ledger.entries(package.period).values())


def test_an_untrusted_certificate_is_refused(
    certs: Certificates, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy
) -> None:
    server = start_smtp(certs, "tls", users={"reports": PASSWORD})
    try:
        untrusted = SmtpSettings("127.0.0.1", server.port, "tls", "gpu-reports@example.com", timeout=10)
        result = deliver(package, [EmailChannel(untrusted, TO, policy)], ledger)
    finally:
        server.stop()
    assert not result.complete
    assert "certificate is not trusted" in result.failed[0].detail
    assert not server.received


def test_a_send_cut_off_mid_way_is_sent_again_as_the_same_message(
    certs: Certificates, package: ReportPackage, ledger: DeliveryLedger, policy: RetryPolicy, tmp_path: Path
) -> None:
    # a process died after marking the send: the ledger says "sending"
    ledger.mark_sending(package.period, "email:ops@example.com")
    server = start_smtp(certs, "starttls", users={"reports": PASSWORD})
    try:
        result = deliver(package, [EmailChannel(settings(server, "starttls"), TO[:1], policy)], ledger)
    finally:
        server.stop()
    assert result.complete
    [got] = server.received
    from advisor.deliver.email import message_id, report_digest

    sender = "slicewise <gpu-reports@example.com>"
    expected = message_id(package.period, sender, ledger.deployment_id(), report_digest(package))
    assert got.message["Message-ID"] == expected

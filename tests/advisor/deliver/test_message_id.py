"""The email Message-ID: one per deployment and report, the same for every retry of that report (issue 14: two
deployments mailing from one address in one period sent the same Message-ID, and mail clients hid one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.deliver import DeliveryLedger, EmailChannel, ReportPackage, RetryPolicy, build_package, deliver
from advisor.deliver.email import message_id, report_digest
from tests.advisor.deliver.servers import Certificates, SmtpHandler, start_smtp
from tests.advisor.deliver.test_email import PASSWORD, settings
from tests.advisor.report.fixtures import last_week

SENDER = "slicewise <gpu-reports@example.com>"


@pytest.fixture(autouse=True)
def smtp_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)


def test_two_deployments_mailing_from_one_address_send_different_message_ids(
    certs: Certificates, package: ReportPackage, policy: RetryPolicy, tmp_path: Path
) -> None:
    handler = SmtpHandler()
    handler.defer = 1  # the first DATA of deployment A is deferred: A retries within its cycle
    server = start_smtp(certs, "starttls", users={"reports": PASSWORD}, handler=handler)
    a, b = DeliveryLedger(tmp_path / "a" / "ledger.sqlite"), DeliveryLedger(tmp_path / "b" / "ledger.sqlite")
    try:
        channel = EmailChannel(settings(server, "starttls"), ["ops@example.com"], policy)
        assert deliver(package, [channel], a).complete
        assert deliver(package, [channel], b).complete
    finally:
        server.stop()
    ids = [m.message["Message-ID"] for m in server.received]
    assert len(ids) == 2 and ids[0] != ids[1], ids  # the deferred try never arrived; A's retry and B's did
    assert a.entries(package.period)["email:ops@example.com"].detail == ids[0]
    assert b.entries(package.period)["email:ops@example.com"].detail == ids[1]
    # A's retry (in that cycle, or in a later process reading the same ledger) is the same message
    assert a.deployment_id() == DeliveryLedger(tmp_path / "a" / "ledger.sqlite").deployment_id()
    assert message_id(package.period, SENDER, a.deployment_id(), report_digest(package)) == ids[0]
    assert handler.connections >= 3  # the deferral really was retried


def test_another_report_for_the_same_period_gets_its_own_message_id(package: ReportPackage, tmp_path: Path) -> None:
    deployment = DeliveryLedger(tmp_path / "ledger.sqlite").deployment_id()
    remade = build_package(last_week(), None, package.period)
    assert report_digest(remade) != report_digest(package)
    assert message_id(package.period, SENDER, deployment, report_digest(package)) != message_id(
        package.period, SENDER, deployment, report_digest(remade)
    )
    assert message_id(package.period, SENDER, deployment, report_digest(package)) == message_id(
        package.period, SENDER, deployment, report_digest(build_package(*_same(package)))
    )


def _same(package: ReportPackage) -> tuple[object, ...]:
    from tests.advisor.report.fixtures import this_week

    return (this_week(), last_week(), package.period, package.report_url)

"""Fixtures the delivery tests share: one rendered report, a fresh ledger, fast retries, test certificates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from advisor.deliver import DeliveryLedger, ReportPackage, RetryPolicy, build_package
from tests.advisor.deliver.servers import Certificates, SlackHttpServer, fake_slack
from tests.advisor.report.fixtures import last_week, this_week

PERIOD = "2025-03-03T0800+0100"


@pytest.fixture(scope="session")
def package() -> ReportPackage:
    return build_package(this_week(), last_week(), PERIOD, report_url="https://reports.example.com/slicewise/")


@pytest.fixture
def ledger(tmp_path: Path) -> DeliveryLedger:
    return DeliveryLedger(tmp_path / "state" / "ledger.sqlite")


@pytest.fixture
def policy() -> RetryPolicy:
    return RetryPolicy(attempts=3, first_delay=0.05, max_delay=2.0)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def slack() -> Iterator[SlackHttpServer]:
    with fake_slack() as server:
        yield server

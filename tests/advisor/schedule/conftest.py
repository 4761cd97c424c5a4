"""A complete place for the weekly job to run: a history file, a real SMTP server with STARTTLS and AUTH, a local
Slack (webhook and bot), secrets in environment variables, and a config file that ties them together."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.advisor.deliver.servers import Certificates, SlackHttpServer, SmtpServer, fake_slack, start_smtp
from tests.advisor.schedule.history import write_fleet

SMTP_USER, SMTP_PASSWORD = "gpu-reports", "smtp-Secret-42"
BOT_TOKEN = "xoxb-schedule-test"
TO = ["ops@example.com", "ml-platform@example.com"]


@dataclass
class Site:
    tmp: Path
    history: Path
    smtp: SmtpServer
    slack: SlackHttpServer
    certs: Certificates
    env: dict[str, str]

    def config(self, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "source": {"history": str(self.history)},
            "window": "14d",
            "schedule": {"cron": "0 8 * * mon", "timezone": "Europe/Berlin", "retry_every": "30m"},
            "output_dir": str(self.tmp / "reports"),
            "report_url": "https://gpu-reports.example.com/slicewise",
            "email": {
                "smtp": {
                    "host": "127.0.0.1",
                    "port": self.smtp.port,
                    "security": "starttls",
                    "username": SMTP_USER,
                    "password_env": "SLICEWISE_TEST_SMTP_PASSWORD",
                    "ca_file": str(self.certs.ca_file),
                    "timeout": "10s",
                },
                "from": "slicewise <gpu-reports@example.com>",
                "to": TO,
            },
            "slack": {
                "webhook": {"name": "gpu-fleet", "url_env": "SLICEWISE_TEST_WEBHOOK"},
                "bot": {"token_env": "SLICEWISE_TEST_BOT_TOKEN", "channels": ["C0GPUFLEET"]},
                "api_url": self.slack.api_url,
                "timeout": "10s",
            },
            "delivery": {"attempts": 2, "backoff": 0.05, "max_backoff": "2s"},
        }
        for key, value in overrides.items():
            config[key] = value
        return config

    def write(self, name: str = "schedule.yaml", **overrides: Any) -> Path:
        path = self.tmp / name
        path.write_text(yaml.safe_dump(self.config(**overrides), sort_keys=False))
        return path

    def subprocess_env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "MPLBACKEND": "Agg"}


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def fleet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fleet(tmp_path_factory.mktemp("history") / "fleet.csv")


@pytest.fixture
def site(tmp_path: Path, certs: Certificates, fleet_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    smtp = start_smtp(certs, "starttls", users={SMTP_USER: SMTP_PASSWORD})
    with fake_slack(token=BOT_TOKEN) as slack:
        env = {
            "SLICEWISE_TEST_SMTP_PASSWORD": SMTP_PASSWORD,
            "SLICEWISE_TEST_WEBHOOK": slack.webhook_url,
            "SLICEWISE_TEST_BOT_TOKEN": BOT_TOKEN,
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        try:
            yield Site(tmp_path, fleet_file, smtp, slack, certs, env)
        finally:
            smtp.stop()

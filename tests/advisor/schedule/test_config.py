"""The schedule config: every field, its defaults, and every mistake as one clear error with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from advisor.schedule.config import load_config
from advisor.schedule.cycle import channels_of
from slicewise.errors import BadInput

SLICEWISE = [sys.executable, "-c", "from slicewise.cli import main; main()"]

FULL = """
source:
  prometheus:
    url: https://prometheus.example.com
    username: slicewise
    password_file: secrets/prometheus-password
    ca_file: /etc/ssl/private-ca.pem
    timeout: 2m
    tenant: team-a
    recording_rules: true
    step: 10m
window: 21d
seed: 3
schedule:
  cron: "30 7 * * mon"
  timezone: Europe/Berlin
  misfire_grace: 2d
  retry_every: 15m
output_dir: reports
state_dir: /var/lib/slicewise/state
report_url: https://gpu-reports.example.com/slicewise
email:
  smtp:
    host: smtp.example.com
    security: tls
    username: gpu-reports@example.com
    password_env: SMTP_PASSWORD
  from: "slicewise <gpu-reports@example.com>"
  to: [ml-platform@example.com, "Ops <ops@example.com>"]
slack:
  webhook:
    name: gpu-fleet
    url_env: SLACK_WEBHOOK_URL
  bot:
    token_file: secrets/slack-bot-token
    channels: [C0123ABCD]
    upload_report: false
delivery:
  attempts: 5
  backoff: 1s
  max_backoff: 2m
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "schedule.yaml"
    path.write_text(text)
    return path


def test_every_field_is_read_and_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    p = config.source.prometheus
    assert p is not None and p.url == "https://prometheus.example.com" and p.timeout == timedelta(minutes=2)
    assert p.password_file == tmp_path / "secrets" / "prometheus-password"
    assert p.ca_file == Path("/etc/ssl/private-ca.pem")
    assert (p.tenant, p.recording_rules, p.step) == ("team-a", True, timedelta(minutes=10))
    assert config.window == timedelta(days=21) and config.seed == 3
    assert config.schedule.cron == "30 7 * * mon" and config.schedule.timezone == "Europe/Berlin"
    assert config.schedule.misfire_grace == timedelta(days=2)
    assert config.schedule.retry_every == timedelta(minutes=15)
    assert config.output_dir == tmp_path / "reports"
    assert config.state == Path("/var/lib/slicewise/state")
    assert config.email is not None and config.email.smtp.effective_port == 465
    assert config.email.to == ["ml-platform@example.com", "Ops <ops@example.com>"]
    assert config.slack is not None and config.slack.bot is not None
    assert config.slack.bot.token_file == tmp_path / "secrets" / "slack-bot-token"
    assert config.slack.bot.upload_report is False
    assert config.delivery.attempts == 5 and config.delivery.max_backoff == timedelta(minutes=2)


def test_the_smallest_config_takes_the_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "source: {history: fleet.parquet}\noutput_dir: out\nslack: {webhook: {url_env: HOOK}}\n",
        )
    )
    assert config.source.history == tmp_path / "fleet.parquet"
    assert config.window == timedelta(days=14)
    assert (config.schedule.cron, config.schedule.timezone) == ("0 8 * * mon", "UTC")
    assert config.schedule.misfire_grace == timedelta(days=6)
    assert config.state == tmp_path / "out" / ".state"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"source": {"history": "a.csv", "prometheus": {"url": "http://p:9090"}}},
            "source: Value error, give exactly one",
        ),
        ({"source": {"prometheus": {"url": "prometheus:9090"}}}, "source.prometheus.url: String should match"),
        (
            {"source": {"prometheus": {"url": "http://p", "username": "u"}}},
            "password_env (an environment variable) or password_file (a file) is required",
        ),
        (
            {"source": {"prometheus": {"url": "http://p", "step": "5s"}}},
            "source.prometheus: Value error, a step of 0:00:05 is not between 0:00:15 and 1:00:00",
        ),
        ({"schedule": {"cron": "every monday"}}, "schedule.cron: Value error, not a crontab expression"),
        (
            {"schedule": {"timezone": "Mars/Olympus"}},
            "schedule.timezone: Value error, unknown time zone 'Mars/Olympus'",
        ),
        ({"window": "two weeks"}, "window: Value error, not a duration: 'two weeks'"),
        ({"email": {"smtp": {"host": "h", "port": 70000}, "from": "a@b.c", "to": ["x@y.z"]}}, "email.smtp.port"),
        ({"email": {"smtp": {"host": "h"}, "from": "a@b.c", "to": []}}, "email.to: List should have at least 1 item"),
        ({"email": {"smtp": {"host": "h"}, "from": "a@b.c", "to": ["not-an-address"]}}, "not an email address"),
        ({"email": {"smtp": {"host": "h"}, "from": "a@b.c", "to": [""]}}, "not an email address: ''"),
        (
            {"email": {"smtp": {"host": "h", "pasword_env": "X"}, "from": "a@b.c", "to": ["x@y.z"]}},
            "email.smtp.pasword_env: Extra inputs are not permitted",
        ),
        ({"slack": {"bot": {"token_env": "T", "channels": []}}}, "slack.bot.channels: List should have at least 1"),
        ({"slack": {}}, "slack: Value error, give a 'webhook' or a 'bot'"),
        ({"slack": None, "email": None}, "the report must go somewhere"),
    ],
)
def test_each_mistake_is_named_with_its_field(tmp_path: Path, change: dict, message: str) -> None:
    base = {
        "source": {"history": "fleet.csv"},
        "output_dir": "out",
        "slack": {"webhook": {"url_env": "HOOK"}},
    }
    base.update(change)
    raw = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(BadInput) as error:
        load_config(write(tmp_path, yaml.safe_dump(raw)))
    assert str(error.value).startswith(f"{tmp_path / 'schedule.yaml'}: ")
    assert message in str(error.value)


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as error:
        load_config(write(tmp_path, "source: {}\noutput_dir: out\nschedule: {cron: x, timezone: Nowhere}\n"))
    text = str(error.value)
    assert "3 problems in the schedule config" in text
    for field in ("source:", "schedule.cron:", "schedule.timezone:"):
        assert f"  {field}" in text


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"not valid YAML at line 3, column \d+"):
        load_config(write(tmp_path, "source:\n  history: a.csv\n  - oops\n"))
    with pytest.raises(BadInput, match="expected a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(BadInput, match="cannot read the schedule config"):
        load_config(tmp_path / "missing.yaml")


def test_a_missing_secret_is_named_without_its_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLICEWISE_TEST_NO_SUCH_VAR", raising=False)
    config = load_config(
        write(
            tmp_path,
            "source: {history: f.csv}\noutput_dir: out\nslack: {bot: {token_env: SLICEWISE_TEST_NO_SUCH_VAR, "
            "channels: [C1]}}\n",
        )
    )
    with pytest.raises(
        BadInput, match="Slack bot token: the environment variable SLICEWISE_TEST_NO_SUCH_VAR is not set"
    ):
        channels_of(config)


def test_the_command_exits_2_with_one_clear_message(tmp_path: Path) -> None:
    bad = write(tmp_path, "source: {history: f.csv}\noutput_dir: out\nemail: {smtp: {host: h}, to: [a@b.c]}\n")
    run = subprocess.run(
        [*SLICEWISE, "schedule", "--config", str(bad), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"slicewise: error: {bad}: 1 problem in the schedule config:\n  email.from: Field required"
    )
    assert run.stdout == ""
    missing = subprocess.run(
        [*SLICEWISE, "schedule", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2 and "nope.yaml: cannot read the schedule config" in missing.stderr

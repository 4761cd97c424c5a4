"""No secret in any output, at any log level: planted secrets (SMTP password, Slack bot token and webhook URL,
Prometheus basic-auth password, bearer token and URL userinfo) are looked for in stdout, stderr, a DEBUG log of
every logger, every report file and the delivery ledger, after runs that fail in every way they can (refused
connections, 5xx with retries, wrong credentials) and one that succeeds, against the real local SMTP server
(aiosmtpd) and Slack and Prometheus stand-ins on 127.0.0.1."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from slicewise.cli import main
from tests.advisor.deliver.servers import Failure
from tests.advisor.schedule.conftest import SMTP_PASSWORD, Site
from tests.support import free_port

pytestmark = pytest.mark.slow  # the real advisor runs twice (a few seconds each)

WRONG_SMTP_PASSWORD = "PLANTED-wrong-smtp-password-1"
PROMETHEUS_URL_PASSWORD = "PLANTED-url-userinfo-pw-2"
PROMETHEUS_PASSWORD = "PLANTED-basic-auth-pw-3"
PROMETHEUS_BEARER = "PLANTED-bearer-token-4"


class _Refusing(BaseHTTPRequestHandler):
    """A Prometheus that wants other credentials: 401 for everything."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"Unauthorized\n")

    def do_POST(self) -> None:
        self.do_GET()


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Every record of every logger, at DEBUG, into a file."""
    path = tmp_path / "debug.log"
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out + captured.err


def test_no_planted_secret_reaches_any_output(
    site: Site,
    prometheus: str,
    debug_log: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhook_secret = site.slack.webhook_path.rsplit("/", 1)[1]
    bot_token = site.slack.state.token
    planted = [
        SMTP_PASSWORD,
        WRONG_SMTP_PASSWORD,
        bot_token,
        site.slack.webhook_url,
        webhook_secret,
        PROMETHEUS_URL_PASSWORD,
        PROMETHEUS_PASSWORD,
        PROMETHEUS_BEARER,
    ]
    outputs: list[str] = []
    closed = f"http://127.0.0.1:{free_port()}"

    # 1. everything fails: SMTP refuses the password, the webhook answers 500 until the retries are spent, the bot's
    #    Slack refuses connections
    monkeypatch.setenv("SLICEWISE_TEST_SMTP_PASSWORD", WRONG_SMTP_PASSWORD)
    site.slack.state.fail("webhook", *[Failure(500)] * 2)  # every attempt of cycle 1
    config = site.config()
    config["slack"]["api_url"] = closed + "/api/"
    failing = site.tmp / "failing.yaml"
    failing.write_text(yaml.safe_dump(config))
    code, text = _run(["schedule", "--config", str(failing), "--once"], capsys)
    assert code == 1, text
    assert "failed" in text and "Traceback" not in text
    outputs.append(text)

    # 2. the webhook URL itself unreachable (slack_sdk's connection retries log the request line)
    monkeypatch.setenv("SLICEWISE_TEST_WEBHOOK", closed + site.slack.webhook_path)
    code, text = _run(["schedule", "--config", str(failing), "--once"], capsys)
    assert code == 1 and "Traceback" not in text, text
    outputs.append(text)

    # 3. everything works: the report goes out
    monkeypatch.setenv("SLICEWISE_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("SLICEWISE_TEST_WEBHOOK", site.slack.webhook_url)
    code, text = _run(["schedule", "--config", str(site.write()), "--once"], capsys)
    assert code == 0, text
    assert len(site.smtp.received) == 1 and site.slack.state.webhook_posts
    outputs.append(text)

    # 4. Prometheus refusing each kind of credentials, and unreachable, and a URL that is not http(s)
    secrets = tmp_path_factory.mktemp("secrets")  # where the secrets are meant to be: not searched
    password_file = secrets / "prometheus-password"
    password_file.write_text(PROMETHEUS_PASSWORD + "\n")
    bearer_file = secrets / "prometheus-bearer"
    bearer_file.write_text(PROMETHEUS_BEARER)
    for args, exit_code in (
        (["--prometheus", f"http://alice:{PROMETHEUS_URL_PASSWORD}@{prometheus}"], 1),
        (["--prometheus", f"http://alice:{PROMETHEUS_URL_PASSWORD}@127.0.0.1:{free_port()}/prom"], 1),
        (["--prometheus", f"http://{prometheus}", "--prometheus.username", "alice", "--prometheus.password-file",
          str(password_file)], 1),
        (["--prometheus", f"http://{prometheus}", "--prometheus.bearer-token-file", str(bearer_file)], 1),
        (["--prometheus", f"ftp://alice:{PROMETHEUS_URL_PASSWORD}@{prometheus}"], 2),
    ):  # fmt: skip
        code, text = _run(["advise", *args, "--prometheus.timeout", "5s", "--out", str(tmp_path / "out")], capsys)
        assert code == exit_code and "Traceback" not in text, text
        assert "slicewise: error:" in text or "Error:" in text, text
        outputs.append(text)

    logged = debug_log.read_text()
    assert "Going to retry the same request" in logged  # the line that used to carry the webhook URL is there
    assert "DEBUG" in logged
    files = {p: p.read_bytes() for p in site.tmp.rglob("*") if p.is_file() and p.suffix != ".yaml" and p != debug_log}
    assert any(p.name.endswith(".sqlite") for p in files), "the ledger was not written"
    assert any(p.name == "report.html" for p in files)
    for secret in planted:
        for i, text in enumerate(outputs):
            assert secret not in text, f"{secret!r} in the output of run {i + 1}"
        assert secret not in logged, f"{secret!r} in the DEBUG log"
        for path, data in files.items():
            assert secret.encode() not in data, f"{secret!r} in {path}"

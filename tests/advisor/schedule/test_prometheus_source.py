"""The schedule pointed at a real Prometheus behind TLS and basic auth (its own web config), as in production:
the advisor reads the last two days from it, and the report goes out by email and Slack."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import pytest

from advisor.history import read_history
from advisor.schedule.config import load_config
from advisor.schedule.cycle import run_cycle
from slicewise.cli import main
from tests.advisor.deliver.servers import Certificates
from tests.advisor.history.openmetrics import write_openmetrics
from tests.advisor.history.server import WebConfig, backfill, prometheus_serving
from tests.advisor.schedule.conftest import Site
from tests.advisor.schedule.history import STEP, STEPS, write_fleet

PROM_USER, PROM_PASSWORD = "slicewise", "prom-Secret-7"


@contextmanager
def secured_prometheus(openmetrics: Path, workdir: Path, certs: Certificates) -> Iterator[str]:
    """Prometheus serving a backfilled TSDB over HTTPS with basic auth; yields its https:// URL."""
    data = backfill(openmetrics, workdir / "tsdb")
    cert, key = workdir / "server.pem", workdir / "server.key"
    certs.server.cert_chain_pems[0].write_to_path(str(cert))
    certs.server.private_key_pem.write_to_path(str(key))
    hashed = bcrypt.hashpw(PROM_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = workdir / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth_users:\n  {PROM_USER}: '{hashed}'\n"
    )
    secured = WebConfig(web, (PROM_USER, PROM_PASSWORD), ssl.create_default_context(cafile=certs.ca_file))
    with prometheus_serving(data, workdir, web=secured) as url:
        yield url


def _slicewise(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.slow
@pytest.mark.needs_binary
def test_the_schedule_reads_a_secured_prometheus_and_delivers(
    site: Site, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # two days of the fleet, ending a few minutes ago, as the exporter would have given Prometheus
    end = int(time.time()) // STEP * STEP - 10 * 60
    history = write_fleet(site.tmp / "recent.csv", t0=end - STEP * STEPS)
    openmetrics = write_openmetrics(read_history(history), site.tmp / "fleet.om")
    monkeypatch.setenv("SLICEWISE_TEST_PROM_PASSWORD", PROM_PASSWORD)
    with secured_prometheus(openmetrics, site.tmp, site.certs) as url:
        source = {
            "prometheus": {
                "url": url,
                "username": PROM_USER,
                "password_env": "SLICEWISE_TEST_PROM_PASSWORD",
                "ca_file": str(site.certs.ca_file),
            }
        }
        config = load_config(site.write(source=source, window="3d"))
        result = run_cycle(config)
        # `slicewise advise` reaches the same Prometheus with its --prometheus.* flags, the password from a file
        password_file = site.tmp / "prometheus-password"
        password_file.write_text(PROM_PASSWORD + "\n")
        auth = ["--prometheus.username", PROM_USER, "--prometheus.password-file", str(password_file)]
        advise = ["advise", "--prometheus", url, "--window", "3d", "--format", "json", *auth]
        code, out, err = _slicewise([*advise, "--prometheus.ca-file", str(site.certs.ca_file)], capsys)
        assert code == 0, err
        advised = json.loads(out)
        assert advised["source"] == url
        assert {w["workload"] for w in advised["workloads"]} >= {"train/llm-ft", "research/nb-alice"}
        # without the private CA the server's certificate is refused: exit 1, saying why
        code, _, err = _slicewise(advise, capsys)
        assert code == 1 and "certificate" in err.lower()
        # a wrong password is a clear failure, not a report about nothing
        monkeypatch.setenv("SLICEWISE_TEST_PROM_PASSWORD", "wrong")
        with pytest.raises(Exception, match="401"):
            run_cycle(config, period="2000-01-03T0800+0100")
    assert result.delivery.complete
    rec = (result.out_dir / "recommendation.json").read_text()
    assert f'"source": "{url}"' in rec
    # the backtest replayed the rows behind Prometheus's answers, as `slicewise advise --prometheus` does
    backtest = json.loads((result.out_dir / "backtest.json").read_text())
    assert backtest["source"] == url and len(backtest["origins"]) == 2
    assert all(o["totals"]["samples"] > 0 for o in backtest["origins"])
    [mail] = site.smtp.received
    text = mail.message.get_body(preferencelist=("plain",)).get_content()
    assert f"from {url}" in text
    assert "train/llm-ft" in text and "research/nb-alice" in text
    assert len(site.slack.state.webhook_posts) == 1 and len(site.slack.state.shared) == 2

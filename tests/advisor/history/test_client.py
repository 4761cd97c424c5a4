"""The Prometheus HTTP client against a real local HTTP server: auth, retries with backoff, clear errors."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from advisor.history.prometheus import PrometheusClient, PrometheusSource
from advisor.model import Window
from slicewise.errors import JobFailed
from tests.support import free_port

AT = datetime(2026, 1, 1, tzinfo=UTC)
VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {"workload": "a/b"}, "value": [0, "42.5"]}]},
}


class Script:
    """What the server answers, one entry per request (the last one repeats), and what it was asked."""

    def __init__(self, *answers: tuple[int, object] | Callable[[], tuple[int, object]]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, object]] = []

    def next(self) -> tuple[int, object]:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer() if callable(answer) else answer


@pytest.fixture
def server() -> Iterator[Callable[..., tuple[str, Script]]]:
    servers: list[ThreadingHTTPServer] = []

    def start(*answers) -> tuple[str, Script]:
        script = Script(*answers)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                script.requests.append(
                    {
                        "path": self.path,
                        "form": form,
                        "auth": self.headers.get("Authorization"),
                        "tenant": self.headers.get("X-Scope-OrgID"),
                    }
                )
                status, body = script.next()
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError):  # the client gave up waiting (the timeout test)
                    self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}", script

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def test_query_posts_the_expression_and_time(server):
    url, script = server((200, VECTOR))
    with PrometheusClient(url + "/prometheus/") as client:  # Mimir-style prefix kept
        (sample,) = client.query("up", AT)
    assert sample.labels == {"workload": "a/b"} and sample.value == 42.5
    (request,) = script.requests
    assert request["path"] == "/prometheus/api/v1/query"
    assert request["form"] == {"query": ["up"], "time": [f"{AT.timestamp():.3f}"]}


def test_basic_auth_and_bearer_token(server):
    url, script = server((200, VECTOR))
    PrometheusClient(url, username="ops", password="s3cret").query("up", AT)
    PrometheusClient(url, bearer_token="tok-123", headers={"X-Scope-OrgID": "team"}).query("up", AT)
    assert script.requests[0]["auth"] == "Basic b3BzOnMzY3JldA=="
    assert script.requests[1]["auth"] == "Bearer tok-123"
    with pytest.raises(ValueError, match="not both"):
        PrometheusClient(url, username="a", bearer_token="b")


def test_retries_with_backoff_then_succeeds(server):
    busy = {"status": "error", "errorType": "unavailable", "error": "busy"}
    url, script = server((503, busy), (429, busy), (200, VECTOR))
    started = time.monotonic()
    assert PrometheusClient(url, retries=3, backoff=0.05).query("up", AT)[0].value == 42.5
    assert len(script.requests) == 3
    assert time.monotonic() - started >= 0.05 + 0.1  # 0.05 s, then 0.1 s


def test_gives_up_after_the_retries_with_the_answer(server):
    url, script = server((503, {"status": "error", "errorType": "unavailable", "error": "overloaded"}))
    with pytest.raises(JobFailed, match=r"answered 503 \(unavailable\): overloaded"):
        PrometheusClient(url, retries=2, backoff=0.01).query("up", AT)
    assert len(script.requests) == 3


def test_a_bad_query_fails_at_once_with_prometheus_words(server):
    error = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    url, script = server((400, error))
    with pytest.raises(JobFailed, match=r"answered 400 \(bad_data\): parse error"):
        PrometheusClient(url, backoff=0.01).query("up}", AT)
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        ((401, "Unauthorized"), "refused the credentials"),
        ((200, "<html>login</html>"), "not its API's JSON"),
        ((200, {"status": "success", "data": {"resultType": "matrix", "result": []}}), "not a vector"),
    ],
)
def test_wrong_answers_are_clear_errors(server, answer, words):
    url, _ = server(answer)
    with pytest.raises(JobFailed, match=words):
        PrometheusClient(url, backoff=0.01).query("up", AT)


def test_unreachable_and_timeouts(server):
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with pytest.raises(JobFailed, match=rf"Prometheus at http://127.0.0.1:{port} is unreachable"):
        PrometheusClient(f"http://127.0.0.1:{port}", retries=2, backoff=0.01).query("up", AT)
    assert time.monotonic() - started < 5

    def slow() -> tuple[int, object]:
        time.sleep(1.0)
        return 200, VECTOR

    url, script = server(slow)
    with pytest.raises(JobFailed, match=r"is slow: no answer within the 0.2 s timeout, for the query 'up'") as err:
        PrometheusClient(url, timeout=0.2, retries=3, backoff=0.01).query("up", AT)
    assert "Raise --prometheus.timeout" in str(err.value) and "unreachable" not in str(err.value)
    assert len(script.requests) == 1  # not rerun: the server may still be computing it


@pytest.mark.parametrize(
    "answer",
    [
        (504, "<html>Gateway Timeout</html>"),
        (503, {"status": "error", "errorType": "timeout", "error": "query timed out in expression evaluation"}),
    ],
)
def test_a_query_the_server_gave_up_on_is_slow_and_not_retried(server, answer):
    url, script = server(answer)
    with pytest.raises(JobFailed, match="is slow: the server gave up"):
        PrometheusClient(url, retries=3, backoff=0.01).query("sum(rate(x[5m]))", AT)
    assert len(script.requests) == 1


def test_tenant_header(server):
    url, script = server((200, VECTOR))
    PrometheusClient(url, tenant="team-gpu").query("up", AT)
    assert script.requests[0]["tenant"] == "team-gpu"


def test_the_source_fails_as_a_whole_on_the_first_error(server):
    url, _ = server(
        (422, {"status": "error", "errorType": "execution", "error": "query processing would load too many samples"})
    )
    source = PrometheusSource(url, backoff=0.01, chunk=timedelta(hours=1))
    with pytest.raises(JobFailed, match="too many samples"):
        source.features(Window(AT, AT + timedelta(hours=2)))

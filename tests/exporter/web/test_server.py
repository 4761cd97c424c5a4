"""The HTTP(S) server over real sockets on loopback: routes, basic auth, TLS, client certificates, slow clients."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from exporter.web.auth import BasicAuth
from exporter.web.config import WebConfig, load_web_config
from exporter.web.server import build_server, make_app, parse_listen_address
from slicewise.errors import BadInput
from tests.exporter.certs import Authority, server_certificate
from tests.support import free_port

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


class OneGauge:
    def collect(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily("slicewise_test_up", "A gauge the server must serve.", value=1)]


@contextmanager
def running(config: WebConfig, telemetry_path: str = "/metrics", host: str = "127.0.0.1") -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(OneGauge())
    auth = BasicAuth(config.basic_auth_users) if config.basic_auth_users else None
    app = make_app(registry, telemetry_path, auth, list(config.http_server_config.headers.items()))
    port = free_port()
    server = build_server(f"{host}:{port}", app, config)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if config.tls_server_config else "http"
    try:
        yield f"{scheme}://{'[::1]' if ':' in host else host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_routes_and_headers(tmp_path: Path) -> None:
    path = tmp_path / "web.yml"
    path.write_text("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
    with running(load_web_config(path), telemetry_path="/gpu-metrics") as url:
        metrics = httpx.get(f"{url}/gpu-metrics")
        assert metrics.status_code == 200
        assert "slicewise_test_up 1.0" in metrics.text
        assert metrics.headers["content-type"].startswith("text/plain")
        assert metrics.headers["x-frame-options"] == "deny"
        landing = httpx.get(f"{url}/")
        assert landing.status_code == 200 and 'href="/gpu-metrics"' in landing.text
        assert httpx.get(f"{url}/metrics").status_code == 404
        openmetrics = httpx.get(f"{url}/gpu-metrics", headers={"Accept": "application/openmetrics-text"})
        assert openmetrics.text.rstrip().endswith("# EOF")


def test_basic_auth(tmp_path: Path) -> None:
    config = WebConfig(basic_auth_users={"prometheus": HASH})
    with running(config) as url:
        refused = httpx.get(f"{url}/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(f"{url}/metrics", auth=("prometheus", "wrong")).status_code == 401
        assert httpx.get(f"{url}/metrics", auth=("mallory", PASSWORD)).status_code == 401
        assert httpx.get(f"{url}/metrics", headers={"Authorization": "Basic !!notbase64"}).status_code == 401
        for _ in range(3):  # the second and later checks come from the cache, with the same answer
            assert httpx.get(f"{url}/metrics", auth=("prometheus", PASSWORD)).status_code == 200
        assert httpx.get(f"{url}/", auth=("prometheus", "wrong")).status_code == 401  # every path is protected


def tls_config(tmp_path: Path, extra: str = "") -> tuple[WebConfig, Authority]:
    ca, server = server_certificate(tmp_path)
    path = tmp_path / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n{extra}")
    return load_web_config(path), ca


def client_context(ca: Authority, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.files.cert))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def test_https_with_basic_auth(tmp_path: Path) -> None:
    config, ca = tls_config(tmp_path, f"basic_auth_users:\n  prometheus: '{HASH}'\n")
    with running(config) as url:
        good = httpx.get(f"{url}/metrics", verify=client_context(ca), auth=("prometheus", PASSWORD))
        assert good.status_code == 200 and "slicewise_test_up" in good.text
        assert httpx.get(f"{url}/metrics", verify=client_context(ca)).status_code == 401
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the server's CA
            httpx.get(f"{url}/metrics", verify=ssl.create_default_context())
        with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port
            httpx.get(url.replace("https://", "http://") + "/metrics")


def test_client_certificates_and_allowed_sans(tmp_path: Path) -> None:
    clients = Authority(tmp_path, "client-ca")
    allowed = clients.issue("prometheus", ["prometheus.monitoring.svc"], [], client=True)
    other_name = clients.issue("someone", ["someone.else.svc"], [], client=True)
    stranger_ca = Authority(tmp_path, "stranger-ca")
    stranger = stranger_ca.issue("stranger", ["prometheus.monitoring.svc"], [], client=True)
    config, ca = tls_config(
        tmp_path,
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {clients.files.cert}\n"
        "  client_allowed_sans: [prometheus.monitoring.svc]\n",
    )
    with running(config) as url:
        ok = httpx.get(f"{url}/metrics", verify=client_context(ca, allowed.cert, allowed.key))
        assert ok.status_code == 200
        for refused in (None, other_name, stranger):
            context = client_context(ca, refused.cert, refused.key) if refused else client_context(ca)
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{url}/metrics", verify=context)


def test_a_silent_client_does_not_block_scrapes(tmp_path: Path) -> None:
    config, ca = tls_config(tmp_path)
    with running(config) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)):  # connects, never starts the TLS handshake
            response = httpx.get(f"{url}/metrics", verify=client_context(ca), timeout=5)
            assert response.status_code == 200


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with running(WebConfig(), host="::1") as url:
            assert httpx.get(f"{url}/metrics").status_code == 200
    except BadInput as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")


def test_listen_address_parsing_and_errors() -> None:
    assert parse_listen_address(":10052") == ("", 10052)
    assert parse_listen_address("127.0.0.1:9") == ("127.0.0.1", 9)
    assert parse_listen_address("[::1]:10052") == ("::1", 10052)
    for bad in ("10052", "host:", ":http", ":70000"):
        with pytest.raises(BadInput, match=r"web\.listen-address"):
            parse_listen_address(bad)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(BadInput, match="cannot listen there"):
            build_server(
                f"127.0.0.1:{taken.getsockname()[1]}", make_app(CollectorRegistry(), "/metrics", None), WebConfig()
            )
    finally:
        taken.close()


def raw_request(url: str, request: bytes) -> tuple[bytes, bytes]:
    """Send ``request`` on a fresh connection; the answer's head and whatever came after it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def test_head_gets_the_headers_of_get_and_no_body() -> None:
    config = WebConfig(basic_auth_users={"prometheus": HASH})
    with running(config) as url:
        get = httpx.get(f"{url}/metrics", auth=("prometheus", PASSWORD))
        head = httpx.head(f"{url}/metrics", auth=("prometheus", PASSWORD))
        assert head.status_code == 200
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["content-length"] == get.headers["content-length"]  # of the (gzip) body GET sends
        assert head.headers.get("content-encoding") == get.headers.get("content-encoding")
        assert httpx.head(f"{url}/metrics").status_code == 401  # HEAD is no way around the password
        auth = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
        status, body = raw_request(url, f"HEAD /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
        assert status.startswith(b"HTTP/1.0 200") and body == b""  # on the wire: not one byte of body
        status, body = raw_request(url, f"HEAD / HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
        assert status.startswith(b"HTTP/1.0 200") and body == b""


def test_other_methods_and_malformed_requests_are_refused() -> None:
    with running(WebConfig()) as url:
        post = httpx.post(f"{url}/metrics", content=b"x")
        assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
        # http.server's answers; too garbled a request line gets them HTTP/0.9 style, without a status line
        assert b"505" in b"".join(raw_request(url, b"GET /metrics HTTP/2.0\r\n\r\n"))
        assert b"400" in b"".join(raw_request(url, b"NONSENSE\r\n\r\n"))
        status, _ = raw_request(url, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n")
        assert status == b""  # headers past the limit: closed without an answer

"""The HTTP(S) server: ``/metrics`` (``--web.telemetry-path``) and a landing page, behind optional TLS and basic auth.

prometheus_client's WSGI app renders the exposition, so content negotiation (OpenMetrics, gzip) is the library's;
``exporter.web.listener`` carries it over sockets so that a flood of bad clients cannot starve the scrapes (see
there). ``HEAD`` gets the headers ``GET`` would, with no body; other methods get 405.
"""

from __future__ import annotations

import html
import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from exporter.web.auth import BasicAuth, Verdict
from exporter.web.config import WebConfig, ssl_context
from exporter.web.listener import ExporterServer, Limits
from exporter.web.stats import HttpError, HttpStats
from slicewise.errors import BadInput

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def parse_listen_address(text: str) -> tuple[str, int]:
    """``[host]:port`` as Prometheus exporters take it: ``:10052``, ``127.0.0.1:10052``, ``[::1]:10052``."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--web.listen-address {text!r}: expected [host]:port, e.g. :10052 or 127.0.0.1:10052")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


def make_app(
    registry: CollectorRegistry,
    telemetry_path: str,
    auth: BasicAuth | None,
    headers: Sequence[tuple[str, str]] = (),
    stats: HttpStats | None = None,
) -> App:
    metrics = make_wsgi_app(registry)
    extra = list(headers)
    path_html = html.escape(telemetry_path, quote=True)
    landing = (
        "<html><head><title>slicewise exporter</title></head><body><h1>slicewise exporter</h1>"
        f'<p>GPU, MIG and process metrics: <a href="{path_html}">{path_html}</a></p></body></html>\n'
    ).encode()

    def route(environ: dict[str, Any], respond: StartResponse) -> Iterable[bytes]:
        if auth is not None:
            verdict = auth.verdict(environ.get("HTTP_AUTHORIZATION"))
            if verdict is Verdict.BUSY:
                if stats is not None:
                    stats.count(HttpError.AUTH_BUSY)
                respond("503 Service Unavailable", [("Retry-After", "1"), ("Content-Type", "text/plain")])
                return [b"Too many password checks at once, retry\n"]
            if verdict is not Verdict.OK:
                if stats is not None:
                    stats.count(HttpError.UNAUTHORIZED)
                respond(
                    "401 Unauthorized",
                    [("WWW-Authenticate", 'Basic realm="slicewise-exporter"'), ("Content-Type", "text/plain")],
                )
                return [b"Unauthorized\n"]
        path = environ.get("PATH_INFO") or "/"
        if path == telemetry_path:
            return metrics(environ, respond)
        if path == "/":
            respond("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [landing]
        respond("404 Not Found", [("Content-Type", "text/plain")])
        return [b"Not Found\n"]

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def respond(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, response_headers + extra, exc_info)

        method = environ.get("REQUEST_METHOD", "GET")
        if method == "GET":
            return route(environ, respond)
        if method != "HEAD":
            respond("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")])
            return [b"Method Not Allowed\n"]
        # HEAD: what GET would answer, headers only (Content-Length included, as for GET).
        answer: list[Any] = []

        def keep(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, response_headers, exc_info]
            return lambda data: None

        body = b"".join(route({**environ, "REQUEST_METHOD": "GET"}, keep))
        status, response_headers, exc_info = answer
        response_headers = [(k, v) for k, v in response_headers if k.lower() != "content-length"]
        respond(status, [*response_headers, ("Content-Length", str(len(body)))], exc_info)
        return []

    return app


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    if host == "":
        if socket.has_dualstack_ipv6():
            return socket.create_server(("::", port), family=socket.AF_INET6, backlog=backlog, dualstack_ipv6=True)
        return socket.create_server(("0.0.0.0", port), backlog=backlog)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=backlog)


def build_server(
    listen_address: str,
    app: Any,
    config: WebConfig,
    stats: HttpStats | None = None,
    limits: Limits | None = None,
) -> ExporterServer:
    """Bind and listen (not yet serve); ``:port`` listens on every IPv6 and IPv4 address where the host allows."""
    host, port = parse_listen_address(listen_address)
    limits = limits or Limits()
    context = ssl_context(config)
    tls = config.tls_server_config
    try:
        listening = _listen(host, port, limits.backlog)
    except OSError as exc:
        raise BadInput(f"--web.listen-address {listen_address}: cannot listen there: {exc.strerror or exc}") from exc
    allowed = frozenset(tls.client_allowed_sans if tls else ())
    return ExporterServer(listening, app, context, allowed, limits, stats)

"""The HTTP(S) server: ``/metrics`` (``--web.telemetry-path``) and a landing page, behind optional TLS and basic auth.

wsgiref with one thread per request (scrapes are serialised in the collector anyway; threads only keep a slow or
stuck client from holding up the next scrape) and prometheus_client's WSGI app for the exposition itself, so
content negotiation (OpenMetrics, gzip) is the library's. The TLS handshake happens in the request's thread, not
in ``accept``, so a client that connects and says nothing cannot block the listener.
"""

from __future__ import annotations

import html
import ipaddress
import logging
import socket
import socketserver
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

from exporter.web.auth import BasicAuth
from exporter.web.config import WebConfig, ssl_context
from slicewise.errors import BadInput

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
REQUEST_TIMEOUT_S = 30


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
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)
    extra = list(headers)
    path_html = html.escape(telemetry_path, quote=True)
    landing = (
        "<html><head><title>slicewise exporter</title></head><body><h1>slicewise exporter</h1>"
        f'<p>GPU, MIG and process metrics: <a href="{path_html}">{path_html}</a></p></body></html>\n'
    ).encode()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def respond(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, response_headers + extra, exc_info)

        if auth is not None and not auth.check(environ.get("HTTP_AUTHORIZATION")):
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

    return app


def _peer_names(cert: dict[str, Any]) -> set[str]:
    names = set()
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "IP Address":
            names.add(str(ipaddress.ip_address(value.strip())))
        else:
            names.add(value)
    return names


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S
    allowed_sans: frozenset[str] = frozenset()

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.do_handshake()
            if self.allowed_sans:
                cert = self.connection.getpeercert() or {}
                if not _peer_names(cert) & self.allowed_sans:
                    raise PermissionError("client certificate names none of client_allowed_sans")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class ExporterServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up with getfqdn, which can stall on DNS; nothing here needs it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # TLS failures, resets and refused client certificates are the client's business: keep them out of stderr.
        log.debug("request from %s failed", client_address, exc_info=True)


def _server_class(host: str) -> type[ExporterServer]:
    family = socket.AF_INET6 if ":" in host or host == "" else socket.AF_INET
    return type("Server", (ExporterServer,), {"address_family": family})


def build_server(listen_address: str, app: Any, config: WebConfig) -> ExporterServer:
    """Bind (not yet serve) the server; ``:port`` listens on every IPv6 and IPv4 address where the host allows."""
    host, port = parse_listen_address(listen_address)
    context = ssl_context(config)
    handler = type(
        "Handler",
        (_Handler,),
        {"allowed_sans": frozenset(config.tls_server_config.client_allowed_sans if config.tls_server_config else ())},
    )
    try:
        if host == "":
            try:
                server = _server_class("")(("::", port), handler, bind_and_activate=False)
                server.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:  # no IPv6 on this host
                server = _server_class("0.0.0.0")(("0.0.0.0", port), handler, bind_and_activate=False)
        else:
            server = _server_class(host)((host, port), handler, bind_and_activate=False)
        server.server_bind()
        server.server_activate()
    except OSError as exc:
        raise BadInput(f"--web.listen-address {listen_address}: cannot listen there: {exc.strerror or exc}") from exc
    server.set_app(app)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server

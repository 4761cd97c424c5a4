"""The server under hostile clients on loopback: scrapes keep succeeding, bad clients cost no thread, stderr clean.

What the issue reproduced against the thread-per-connection server (listen backlog 5): of 200 concurrent
connections 22 timed out, a scrape during a flood of wrong passwords failed on a handshake timeout, and broken TLS
connections printed wsgiref tracebacks (1,151 lines in one probe run).
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from exporter.web.auth import BasicAuth
from exporter.web.config import WebConfig, load_web_config
from exporter.web.listener import ExporterServer, Limits
from exporter.web.server import build_server, make_app
from exporter.web.stats import HttpError, HttpStats
from tests.exporter.certs import Authority, server_certificate
from tests.support import free_port

PASSWORD = "correct horse battery staple"
IDLE = 200  # connections that never send a byte
SLOWLORIS = 20  # TLS clients sending their headers a byte at a time, reconnecting when cut off
GUESSERS = 6  # threads sending wrong passwords, each guess new (so each costs a bcrypt at cost 10)
FLOOD_S = 4.0
SCRAPE_DEADLINE_S = 5.0  # what httpx gives by default; the scrape failed on it


class Gauges:
    """``slicewise_test_up`` and ``series`` more samples: enough makes an answer that takes many TLS writes."""

    def __init__(self, series: int = 0) -> None:
        self.series = series

    def collect(self) -> list[GaugeMetricFamily]:
        many = GaugeMetricFamily("slicewise_test_series", "Bulk for a large answer.", labels=["i"])
        for i in range(self.series):
            many.add_metric([str(i)], i)
        return [GaugeMetricFamily("slicewise_test_up", "A gauge the server must serve.", value=1), many]


@dataclass
class Served:
    url: str
    port: int
    ca: Authority
    stats: HttpStats
    server: ExporterServer

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca.files.cert))


@contextmanager
def serving(tmp_path: Path, password_hash: str | None, limits: Limits, series: int = 0) -> Iterator[Served]:
    ca, cert = server_certificate(tmp_path)
    path = tmp_path / "web.yml"
    users = f"basic_auth_users:\n  prometheus: '{password_hash}'\n" if password_hash else ""
    path.write_text(f"tls_server_config:\n  cert_file: {cert.cert}\n  key_file: {cert.key}\n{users}")
    config: WebConfig = load_web_config(path)
    registry = CollectorRegistry()
    registry.register(Gauges(series))
    stats = HttpStats()
    auth = BasicAuth(config.basic_auth_users) if config.basic_auth_users else None
    port = free_port()
    server = build_server(f"127.0.0.1:{port}", make_app(registry, "/metrics", auth, stats=stats), config, stats, limits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"https://127.0.0.1:{port}", port, ca, stats, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Flood:
    """Client threads that run until ``stop`` is set, counting what they did."""

    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def run(self, target: Callable[[], None], copies: int) -> None:
        for _ in range(copies):
            thread = threading.Thread(target=self._loop, args=(target,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _loop(self, target: Callable[[], None]) -> None:
        while not self.stop.is_set():
            try:
                target()
            except (OSError, httpx.HTTPError):
                self.count("client_error")

    def end(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


def reset_on_close(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.slow
def test_scrapes_keep_succeeding_under_a_flood_of_bad_clients(tmp_path: Path) -> None:
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()  # a realistic cost
    limits = Limits(header_timeout_s=2.0)
    with serving(tmp_path, password_hash, limits) as served:
        context = served.context()
        scrape = httpx.Client(verify=context, auth=("prometheus", PASSWORD), timeout=SCRAPE_DEADLINE_S)
        assert scrape.get(f"{served.url}/metrics").status_code == 200  # Prometheus scraped before the flood
        flood = Flood()
        idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(IDLE)]
        guesses = iter(range(10**9))
        answers: dict[int, int] = {}

        def guess() -> None:
            with httpx.Client(verify=context, timeout=30) as client:
                status = client.get(f"{served.url}/metrics", auth=("prometheus", f"guess-{next(guesses)}")).status_code
            with flood.lock:
                answers[status] = answers.get(status, 0) + 1

        def slowloris() -> None:
            raw = socket.create_connection(("127.0.0.1", served.port), timeout=10)
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                flood.count("slowloris_connections")
                for byte in b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000:
                    tls.sendall(bytes([byte]))
                    if flood.stop.wait(0.1):
                        return

        def garbage() -> None:
            with socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw:
                raw.sendall(os.urandom(517))
                flood.count("garbage_connections")
                reset_on_close(raw)
            time.sleep(0.02)

        flood.run(guess, GUESSERS)
        flood.run(slowloris, SLOWLORIS)
        flood.run(garbage, 2)
        latencies: list[float] = []
        statuses: list[int] = []
        try:
            started = time.monotonic()
            while time.monotonic() - started < FLOOD_S:
                began = time.monotonic()
                statuses.append(scrape.get(f"{served.url}/metrics").status_code)
                latencies.append(time.monotonic() - began)
                time.sleep(0.2)
            server_threads = [t for t in threading.enumerate() if t.name.startswith("exporter-http-")]
        finally:
            flood.end()
            scrape.close()
        print(
            f"\nflood: {IDLE} idle, {flood.counts}, wrong-password answers {answers}; "
            f"{len(statuses)} scrapes, statuses {set(statuses)}, slowest {max(latencies):.2f} s; "
            f"{served.stats.snapshot()}"
        )
        assert statuses and set(statuses) == {200}, statuses
        assert max(latencies) < SCRAPE_DEADLINE_S
        assert sum(answers.values()) >= GUESSERS and set(answers) <= {401, 503}  # no guess ever got in
        assert len(server_threads) == limits.workers  # bad clients cost no thread
        for sock in idle:  # silent clients are cut off at the header deadline, not kept forever
            sock.settimeout(limits.header_timeout_s + 5)
            with suppress(ConnectionResetError):
                assert sock.recv(1) == b""
            sock.close()
        counted = served.stats.snapshot()
        assert counted[HttpError.HEADER_TIMEOUT] >= IDLE
        assert counted[HttpError.TLS_HANDSHAKE] >= flood.counts.get("garbage_connections", 0) > 0
        assert flood.counts.get("slowloris_connections", 0) >= SLOWLORIS


def test_more_connections_than_the_limit_shed_the_oldest_idle_ones(tmp_path: Path) -> None:
    limits = Limits(max_connections=20, header_timeout_s=30)
    with serving(tmp_path, None, limits) as served:
        idle = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(60)]
        response = httpx.get(f"{served.url}/metrics", verify=served.context(), timeout=SCRAPE_DEADLINE_S)
        assert response.status_code == 200
        shed = 0
        for sock in idle[:40]:  # the 40 oldest were closed to keep 20 open
            sock.settimeout(5)
            try:
                shed += sock.recv(1) == b""
            except ConnectionResetError:
                shed += 1
        assert shed == 40
        assert served.stats.snapshot()[HttpError.CONNECTION_SHED] >= 40
        for sock in idle:
            sock.close()


def test_broken_tls_clients_leave_stderr_clean_and_are_counted(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with serving(tmp_path, None, Limits(header_timeout_s=2.0), series=3000) as served:  # a ~100 KiB answer
        context = served.context()
        for _ in range(10):  # random bytes instead of a ClientHello
            with socket.create_connection(("127.0.0.1", served.port)) as raw:
                raw.sendall(os.urandom(300))
        for _ in range(5):  # plain HTTP on the TLS port
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"http://127.0.0.1:{served.port}/metrics", timeout=5)
        for _ in range(5):  # a ClientHello, then a reset in the middle of the handshake
            with socket.create_connection(("127.0.0.1", served.port)) as raw:
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                client = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
                with pytest.raises(ssl.SSLWantReadError):
                    client.do_handshake()
                raw.sendall(outgoing.read())
                assert raw.recv(100)  # the server has answered with its hello
                reset_on_close(raw)
        for _ in range(10):  # a whole request, then a reset before the answer is read
            raw = socket.create_connection(("127.0.0.1", served.port))
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                reset_on_close(tls)
        response = httpx.get(f"{served.url}/metrics", verify=context, timeout=SCRAPE_DEADLINE_S)
        assert response.status_code == 200 and "slicewise_test_up" in response.text
        time.sleep(0.5)  # let the workers finish with the reset clients
        counted = served.stats.snapshot()
    captured = capfd.readouterr()
    assert captured.err == ""
    assert counted[HttpError.TLS_HANDSHAKE] >= 15

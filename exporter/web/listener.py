"""The connection side of the server: one event-loop thread reads requests, a small fixed pool of threads answers.

Why not one thread per connection (what ``socketserver.ThreadingMixIn`` does): a client that connects and says
nothing, or sends its headers one byte a minute (slowloris), would hold a thread each, without bound. Here the
loop thread does everything that waits on the client -- ``accept``, the TLS handshake and reading the request
line and headers, all non-blocking -- and hands only complete requests to the ``workers`` threads, which run the
WSGI app and write the answer with a socket timeout. So:

- idle, silent and slow clients cost a file descriptor and a few KiB, never a thread, and are closed when the
  handshake and headers are not complete within ``header_timeout_s`` (Go's ``ReadHeaderTimeout``);
- past ``max_connections`` open-but-incomplete connections, the oldest is closed: a real scraper sends its request
  at once, so it is never the oldest;
- the listen backlog is ``backlog`` (the kernel caps it at ``net.core.somaxconn``), not socketserver's 5;
- a full worker queue sheds the new request rather than queueing without bound.

Kept on the standard library rather than a WSGI server package: waitress has no TLS, cheroot and gunicorn would
bring their own TLS adapters and process models for one route; this is ~400 lines that the tests drive hard.
Each request is one connection (HTTP/1.0 answers, as wsgiref gives), which is what a scrape every 15 s needs.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import logging
import queue
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, cast
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler

from exporter.web.stats import HttpError, HttpStats

log = logging.getLogger(__name__)

_HEADER_END = (b"\r\n\r\n", b"\n\n")


@dataclass(frozen=True)
class Limits:
    """How much the server gives any client; defaults sized for one Prometheus (or a few) per node."""

    workers: int = 8
    backlog: int = 1024
    max_connections: int = 512
    header_timeout_s: float = 10.0
    write_timeout_s: float = 10.0
    max_header_bytes: int = 32 * 1024
    queue_size: int = 64


@dataclass
class _Connection:
    sock: socket.socket
    address: Any
    deadline: float
    handshaken: bool
    events: int = selectors.EVENT_READ
    head: bytearray = field(default_factory=bytearray)


def _peer_names(cert: dict[str, Any]) -> set[str]:
    names = set()
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "IP Address":
            names.add(str(ipaddress.ip_address(value.strip())))
        else:
            names.add(value)
    return names


class _Writer:
    """``wfile`` for wsgiref: every write is sent whole (under the socket's timeout) or raises."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


class _ServerHandler(ServerHandler):
    stats: HttpStats
    server_software = "slicewise-exporter"  # not wsgiref's name and Python's version

    def log_exception(self, exc_info: Any) -> None:
        # wsgiref prints these to stderr; a client gone mid-answer (TLS EOF, timeout) is counted, a bug is logged.
        if isinstance(exc_info[1], OSError):
            self.stats.count(HttpError.CLIENT_GONE)
            log.debug("client went away while answered", exc_info=exc_info)
        else:
            log.error("the metrics app failed", exc_info=exc_info)

    def handle_error(self) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # no 500 to send to a client that is gone
            self.log_exception(sys.exc_info())
            self.close()
            return
        super().handle_error()


class _RequestHandler(WSGIRequestHandler):
    """Parses the already-read head with http.server and runs the app through wsgiref (no request bodies)."""

    server: Any
    server_version = "slicewise-exporter"
    sys_version = ""

    def __init__(self, sock: socket.socket, address: Any, server: Any, head: bytes) -> None:
        self._head = head
        super().__init__(sock, address, server)

    def setup(self) -> None:
        self.connection = self.request
        self.rfile = io.BytesIO(self._head)
        self.wfile = _Writer(self.connection)  # type: ignore[assignment]

    def handle(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.parse_request():  # http.server has answered 400 or 505
            self.server.stats.count(HttpError.MALFORMED_REQUEST)
            return
        handler = _ServerHandler(
            self.rfile, cast(IO[bytes], self.wfile), io.StringIO(), self.get_environ(), multithread=True
        )
        handler.stats = self.server.stats
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.app)

    def finish(self) -> None:
        pass  # the worker closes the socket

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class ExporterServer:
    """Serve ``app`` on a bound, listening socket (``build_server`` makes one) until ``shutdown``."""

    def __init__(
        self,
        listening: socket.socket,
        app: Callable[..., Any],
        context: ssl.SSLContext | None = None,
        allowed_sans: frozenset[str] = frozenset(),
        limits: Limits | None = None,
        stats: HttpStats | None = None,
    ) -> None:
        self.socket = listening
        self.app = app
        self.limits = limits or Limits()
        self.stats = stats or HttpStats()
        self.tls = context is not None
        self.server_address = listening.getsockname()
        host, port = self.server_address[:2]
        self.base_environ = {
            "SERVER_NAME": str(host),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PORT": str(port),
            "REMOTE_HOST": "",
            "CONTENT_LENGTH": "",
            "SCRIPT_NAME": "",
        }
        self._context = context
        self._allowed_sans = allowed_sans
        listening.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._pending: dict[int, _Connection] = {}  # by file descriptor, oldest first
        self._ready: queue.Queue[_Connection | None] = queue.Queue(max(self.limits.queue_size, self.limits.workers))
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._closed = False

    # -- lifecycle: the socketserver names, so callers need not know which server this is

    def serve_forever(self) -> None:
        self._stop.clear()
        self._stopped.clear()
        if not self._workers:
            for i in range(self.limits.workers):
                worker = threading.Thread(target=self._work, name=f"exporter-http-{i}", daemon=True)
                worker.start()
                self._workers.append(worker)
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                for key, _ in self._selector.select(self._wait()):
                    if key.fileobj is self.socket:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._drain_wake()
                    else:
                        try:
                            self._advance(key.data)
                        except Exception:  # a bug; one client's connection must not take the listener down
                            log.exception("connection from %s failed", key.data.address)
                            self._drop(key.data)
                self._expire()
        finally:
            self._selector.unregister(self.socket)
            self._selector.unregister(self._wake_r)
            for connection in list(self._pending.values()):
                self._drop(connection)
            self._stopped.set()

    def shutdown(self) -> None:
        """Make ``serve_forever`` return, and wait for it (call from another thread)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._stopped.wait()

    def server_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.socket.close()
        while True:  # requests still queued are dropped; each worker then gets its stop sign
            try:
                connection = self._ready.get_nowait()
            except queue.Empty:
                break
            if connection is not None:
                connection.sock.close()
        for _ in self._workers:
            self._ready.put(None)
        for worker in self._workers:
            worker.join(timeout=self.limits.write_timeout_s)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the event loop

    def _wait(self) -> float:
        if not self._pending:
            return 1.0
        oldest = next(iter(self._pending.values()))
        return max(0.0, min(1.0, oldest.deadline - time.monotonic()))

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.recv(4096)

    def _accept(self) -> None:
        for _ in range(64):  # a burst at a time, then look at the other sockets again
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: make room, try again on the next round
                log.debug("accept failed: %s", exc)
                self._shed_oldest()
                return
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                try:
                    sock = self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                except OSError as exc:  # reset before the handshake began (ssl checks the socket is connected)
                    self.stats.count(HttpError.TLS_HANDSHAKE)
                    log.debug("connection from %s dropped: %s", address, exc)
                    sock.close()
                    continue
            connection = _Connection(
                sock, address, time.monotonic() + self.limits.header_timeout_s, handshaken=self._context is None
            )
            self._pending[sock.fileno()] = connection
            self._selector.register(sock, selectors.EVENT_READ, connection)
            while len(self._pending) > self.limits.max_connections:
                self._shed_oldest()

    def _shed_oldest(self) -> None:
        if self._pending:
            self.stats.count(HttpError.CONNECTION_SHED)
            self._drop(next(iter(self._pending.values())))

    def _drop(self, connection: _Connection) -> None:
        self._pending.pop(connection.sock.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(connection.sock)
        connection.sock.close()

    def _watch(self, connection: _Connection, events: int) -> None:
        if connection.events != events:
            connection.events = events
            self._selector.modify(connection.sock, events, connection)

    def _advance(self, connection: _Connection) -> None:
        """Take the handshake and the request head as far as the client has sent them, without blocking."""
        sock = connection.sock
        try:
            if not connection.handshaken:
                assert isinstance(sock, ssl.SSLSocket)
                sock.do_handshake()
                connection.handshaken = True
                if self._allowed_sans and not _peer_names(sock.getpeercert() or {}) & self._allowed_sans:
                    self.stats.count(HttpError.CLIENT_CERTIFICATE)
                    self._drop(connection)
                    return
                self._watch(connection, selectors.EVENT_READ)
            while True:
                chunk = sock.recv(65536)
                if not chunk:  # closed before a whole request: a TCP probe, or a client that gave up
                    self._drop(connection)
                    return
                connection.head += chunk
                if len(connection.head) > self.limits.max_header_bytes:  # (no route takes a request body)
                    self.stats.count(HttpError.MALFORMED_REQUEST)
                    self._drop(connection)
                    return
                if any(end in connection.head for end in _HEADER_END):
                    self._dispatch(connection)
                    return
        except ssl.SSLWantReadError:
            self._watch(connection, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self._watch(connection, selectors.EVENT_WRITE)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:  # ssl.SSLError included: garbage, plain HTTP on the TLS port, refused certificates
            self.stats.count(HttpError.TLS_HANDSHAKE if not connection.handshaken else HttpError.CLIENT_GONE)
            log.debug("connection from %s dropped: %s", connection.address, exc)
            self._drop(connection)

    def _dispatch(self, connection: _Connection) -> None:
        self._pending.pop(connection.sock.fileno(), None)
        self._selector.unregister(connection.sock)
        try:
            self._ready.put_nowait(connection)
        except queue.Full:
            self.stats.count(HttpError.CONNECTION_SHED)
            connection.sock.close()

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:  # oldest first, and every connection gets the same timeout
            oldest = next(iter(self._pending.values()))
            if oldest.deadline > now:
                return
            self.stats.count(HttpError.HEADER_TIMEOUT)
            self._drop(oldest)

    # -- the workers

    def _work(self) -> None:
        while True:
            connection = self._ready.get()
            if connection is None:
                return
            sock = connection.sock
            try:
                sock.setblocking(True)
                sock.settimeout(self.limits.write_timeout_s)
                _RequestHandler(sock, connection.address, self, bytes(connection.head))
            except OSError as exc:
                self.stats.count(HttpError.CLIENT_GONE)
                log.debug("answering %s failed: %s", connection.address, exc)
            except Exception:
                log.exception("answering %s failed", connection.address)
            finally:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                sock.close()

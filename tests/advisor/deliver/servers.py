"""Real servers on loopback ports for delivery tests: an SMTP server (aiosmtpd, with STARTTLS or implicit TLS and
AUTH) and an HTTP server that answers like Slack (incoming webhooks, chat.postMessage, conversations.history and
the files upload flow), both able to fail on cue: deferrals, refusals, HTTP 5xx, 429 with Retry-After.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.support import free_port

# --- SMTP ---------------------------------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    authenticated_as: str | None


class SmtpHandler:
    """Keeps what arrives; defers the first ``defer`` messages (451) and refuses ``refuse`` recipients (550)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.defer = 0
        self.refuse: set[str] = set()
        self.peers: set[Any] = set()
        self.lock = threading.Lock()

    @property
    def connections(self) -> int:
        return len(self.peers)

    async def handle_EHLO(
        self, server: Any, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.peers.add(session.peer)  # EHLO comes again after STARTTLS: count connections, not greetings
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        with self.lock:
            if self.defer > 0:
                self.defer -= 1
                return "451 4.3.0 mail system busy, try again later"
            content = envelope.original_content or envelope.content
            assert isinstance(content, bytes)
            message = BytesParser(policy=policy.default).parsebytes(content)
            assert isinstance(message, EmailMessage)
            login = session.auth_data if isinstance(session.auth_data, str) else None
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), message, login))
        return "250 2.0.0 queued"


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: SmtpHandler
    ca_file: Path
    controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class Certificates:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost (trustme)."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(context)
        return context


def start_smtp(
    certs: Certificates,
    security: str = "starttls",
    users: dict[str, str] | None = None,
    port: int | None = None,
    handler: SmtpHandler | None = None,
) -> SmtpServer:
    """Start aiosmtpd on 127.0.0.1; ``users`` turns AUTH on and requires it."""
    handler = handler or SmtpHandler()
    port = port or free_port()

    def authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and users is not None
            and users.get(data.login.decode()) == data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=data.login.decode() if ok else None)

    kwargs: dict[str, Any] = {}
    if security == "starttls":
        kwargs.update(tls_context=certs.server_context(), require_starttls=True)
    if users is not None:
        # under implicit TLS aiosmtpd does not see the session as TLS (it only tracks STARTTLS), so it would hide
        # AUTH; the connection is TLS all the same
        kwargs.update(authenticator=authenticate, auth_required=True, auth_require_tls=security == "starttls")
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        ssl_context=certs.server_context() if security == "tls" else None,
        server_hostname="smtp.test",
        **kwargs,
    )
    controller.start()
    return SmtpServer("127.0.0.1", port, handler, certs.ca_file, controller)


# --- Slack --------------------------------------------------------------------------------------------------------


@dataclass
class Failure:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    effect: bool = False  # do the work, then answer with the failure (a response lost on the way back)
    body: str = "upstream error"


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    thread_ts: str | None = None


@dataclass
class Shared:
    file_id: str
    title: str
    channel: str
    thread_ts: str | None
    content: bytes


class SlackState:
    def __init__(self, token: str, channels: dict[str, str]) -> None:
        self.token = token
        self.channels = channels  # id -> name
        self.webhook_posts: list[dict[str, Any]] = []
        self.messages: list[Posted] = []
        self.uploads: dict[str, bytes] = {}
        self.pending_files: dict[str, str] = {}  # id -> filename
        self.shared: list[Shared] = []
        self.requests: list[str] = []  # route of every request, in order
        self.failures: dict[str, list[Failure]] = {}
        self.clock = itertools.count(1)
        self.lock = threading.Lock()

    def fail(self, route: str, *failures: Failure) -> None:
        """Answer the next requests to ``route`` (``webhook``, ``upload``, or an API method) with these failures."""
        with self.lock:
            self.failures.setdefault(route, []).extend(failures)

    def next_failure(self, route: str) -> Failure | None:
        with self.lock:
            queue = self.failures.get(route) or []
            return queue.pop(0) if queue else None

    def count(self, route: str) -> int:
        return self.requests.count(route)


class SlackHandler(BaseHTTPRequestHandler):
    server: SlackHttpServer

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
        pass

    def _reply(self, status: int, body: str | dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        content_type = "application/json; charset=utf-8" if isinstance(body, dict) else "text/plain; charset=utf-8"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _params(self, raw: bytes) -> dict[str, Any]:
        query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        kind = self.headers.get("Content-Type", "")
        if raw and "json" in kind:
            query.update(json.loads(raw))
        elif raw and "form" in kind:
            query.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        return query

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length))

    def _handle(self, raw: bytes) -> None:
        state = self.server.state
        path = urlparse(self.path).path
        if path.startswith("/services/"):
            route = "webhook"
        elif path.startswith("/upload/"):
            route = "upload"
        elif path.startswith("/api/"):
            route = path.removeprefix("/api/")
        else:
            self._reply(404, "no such page")
            return
        with state.lock:
            state.requests.append(route)
        failure = state.next_failure(route)
        if failure is not None and not failure.effect:
            self._reply(failure.status, failure.body, failure.headers)
            return
        status, body = self._serve(route, path, raw)
        if failure is not None:
            self._reply(failure.status, failure.body, failure.headers)
        else:
            self._reply(status, body)

    def _serve(self, route: str, path: str, raw: bytes) -> tuple[int, str | dict[str, Any]]:
        state = self.server.state
        if route == "webhook":
            if path != self.server.webhook_path:
                return 404, "no_service"
            with state.lock:
                state.webhook_posts.append(json.loads(raw))
            return 200, "ok"
        if route == "upload":
            file_id = path.rsplit("/", 1)[1]
            if file_id not in state.pending_files:
                return 404, "no such upload"
            with state.lock:
                state.uploads[file_id] = raw
            return 200, f"OK - {len(raw)}"
        if self.headers.get("Authorization") != f"Bearer {state.token}":
            return 200, {"ok": False, "error": "invalid_auth"}
        params = self._params(raw)
        channel = params.get("channel") or params.get("channel_id")
        if route == "chat.postMessage":
            if channel not in state.channels:
                return 200, {"ok": False, "error": "channel_not_found"}
            ts = f"1700000000.{next(state.clock):06d}"
            metadata = params.get("metadata")
            with state.lock:
                state.messages.append(
                    Posted(
                        channel, ts, params.get("text", ""), params.get("blocks", []), metadata, params.get("thread_ts")
                    )
                )
            return 200, {"ok": True, "channel": channel, "ts": ts, "message": {"text": params.get("text", "")}}
        if route == "conversations.history":
            if channel not in state.channels:
                return 200, {"ok": False, "error": "channel_not_found"}
            include = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
            found = [m for m in reversed(state.messages) if m.channel == channel]
            messages = [
                {
                    "type": "message",
                    "ts": m.ts,
                    "text": m.text,
                    **({"metadata": m.metadata} if include and m.metadata else {}),
                }
                for m in found
            ]
            return 200, {"ok": True, "messages": messages, "has_more": False}
        if route == "files.getUploadURLExternal":
            file_id = f"F{next(state.clock):08d}"
            with state.lock:
                state.pending_files[file_id] = params["filename"]
            port = self.server.server_address[1]
            return 200, {"ok": True, "upload_url": f"http://127.0.0.1:{port}/upload/{file_id}", "file_id": file_id}
        if route == "files.completeUploadExternal":
            files = json.loads(params["files"]) if isinstance(params["files"], str) else params["files"]
            if channel not in state.channels:
                return 200, {"ok": False, "error": "channel_not_found"}
            for f in files:
                if f["id"] not in state.uploads:
                    return 200, {"ok": False, "error": "file_not_found"}
            with state.lock:
                for f in files:
                    state.shared.append(
                        Shared(f["id"], f["title"], channel, params.get("thread_ts"), state.uploads[f["id"]])
                    )
            return 200, {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in files]}
        return 200, {"ok": False, "error": "unknown_method"}


class SlackHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: SlackState) -> None:
        super().__init__(("127.0.0.1", free_port()), SlackHandler)
        self.state = state
        self.webhook_path = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def webhook_url(self) -> str:
        return self.base + self.webhook_path

    @property
    def api_url(self) -> str:
        return self.base + "/api/"


@contextlib.contextmanager
def fake_slack(token: str = "xoxb-test-token", channels: dict[str, str] | None = None) -> Iterator[SlackHttpServer]:
    state = SlackState(token, channels or {"C0GPUFLEET": "gpu-fleet", "C0PLATFORM": "platform"})
    server = SlackHttpServer(state)
    thread = threading.Thread(target=server.serve_forever, name="fake-slack", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

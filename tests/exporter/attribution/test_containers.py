"""Docker/Podman container names over a real unix socket that answers like the Docker Engine API."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from exporter.attribution.containers import DockerContainerNames

VLLM = "b06dbbbb1585d345866ce28e72f5948e498b64b677404c3bae9950406808b3d5"
JUPYTER = "46186a2bd42f407c1d25f0333afebc12b215e86bcd1c4342e1d105f621c32978"


class _UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


@contextmanager
def docker_socket(path: Path, containers: list[dict[str, Any]]) -> Iterator[list[str]]:
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = json.dumps(containers if self.path.split("?")[0] == "/containers/json" else {}).encode()
            self.send_response(200 if self.path.startswith("/containers/json") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def address_string(self) -> str:  # unix sockets have no client address
            return "local"

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _UnixHTTPServer(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def container(cid: str, name: str) -> dict[str, Any]:
    """One entry of ``GET /containers/json`` as Docker 24 returns it (fields the exporter ignores trimmed)."""
    return {"Id": cid, "Names": [f"/{name}"], "Image": "vllm/vllm-openai:v0.6.3", "State": "running"}


def test_names_by_full_id(tmp_path: Path) -> None:
    sock = tmp_path / "docker.sock"
    with docker_socket(sock, [container(VLLM, "vllm-server"), container(JUPYTER, "jupyter")]) as requests:
        names = DockerContainerNames(sock)
        assert names.refresh()
        assert names.name(VLLM) == "vllm-server"
        assert names.name(JUPYTER) == "jupyter"
        assert requests == ["/containers/json"]
        names.stop()


def test_unknown_id_wakes_a_refresh_in_the_background(tmp_path: Path) -> None:
    sock = tmp_path / "docker.sock"
    running = [container(VLLM, "vllm-server")]
    with docker_socket(sock, running):
        names = DockerContainerNames(sock, refresh_interval_s=3600, min_refresh_s=0.1)
        names.start()
        try:
            deadline = time.monotonic() + 10
            while names.name(VLLM) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            running.append(container(JUPYTER, "jupyter"))
            assert names.name(JUPYTER) is None
            while names.name(JUPYTER) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert names.name(JUPYTER) == "jupyter"
        finally:
            names.stop()


def test_missing_socket_is_an_error_not_a_crash(tmp_path: Path) -> None:
    names = DockerContainerNames(tmp_path / "absent.sock")
    assert not names.refresh()
    assert names.errors == 1
    assert names.name(VLLM) is None
    names.stop()

"""A local HTTP server that answers like the Kubernetes API server for what the exporter asks: pods of a node
(with ``fieldSelector=spec.nodeName=...``), ReplicaSets and Jobs. Bodies have the shape ``kubectl get -o json``
prints; ``forbidden`` namespaces answer 403 as RBAC does; ``delay_s`` makes it slow."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml


def owner(kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": f"uid-of-{name}",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod(
    uid: str,
    namespace: str,
    name: str,
    node: str,
    containers: dict[str, str],
    owners: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    runtime: str = "containerd",
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "4711",
            "labels": labels or {},
            "ownerReferences": owners or [],
        },
        "spec": {"nodeName": node, "containers": [{"name": n, "image": "nvcr.io/x"} for n in containers.values()]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": n, "ready": True, "restartCount": 0, "containerID": f"{runtime}://{cid}"}
                for cid, n in containers.items()
            ],
        },
    }


@dataclass
class FakeApiServer:
    pods: list[dict[str, Any]] = field(default_factory=list)
    replicasets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    delay_s: float = 0.0
    fail_pods: bool = False
    requests: list[str] = field(default_factory=list)
    auth_headers: list[str] = field(default_factory=list)

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if path == "/api/v1/pods":
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.fail_pods:
                return 500, {"kind": "Status", "status": "Failure", "message": "etcdserver: request timed out"}
            selector = query.get("fieldSelector", [""])[0]
            node = selector.removeprefix("spec.nodeName=") if selector.startswith("spec.nodeName=") else None
            items = [p for p in self.pods if node is None or p["spec"]["nodeName"] == node]
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "4711"}, "items": items}
        if (
            len(parts) == 7
            and parts[:3] in (["apis", "apps", "v1"], ["apis", "batch", "v1"])
            and parts[3] == "namespaces"
        ):
            namespace, kind, name = parts[4], parts[5], parts[6]
            if namespace in self.forbidden:
                return 403, {
                    "kind": "Status",
                    "status": "Failure",
                    "reason": "Forbidden",
                    "message": f'{kind} "{name}" is forbidden: User "system:serviceaccount:gpu:slicewise" cannot get',
                    "code": 403,
                }
            table = self.replicasets if kind == "replicasets" else self.jobs if kind == "jobs" else {}
            found = table.get((namespace, name))
            if found is None:
                return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}
            return 200, found
        return 404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404}


@contextmanager
def serve(api: FakeApiServer) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            api.requests.append(url.path)
            api.auth_headers.append(self.headers.get("Authorization", ""))
            status, body = api.answer(url.path, urllib.parse.parse_qs(url.query))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def kubeconfig(path: Path, server: str, token: str = "sa-token-of-slicewise") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": server}}],
                "users": [{"name": "slicewise", "user": {"token": token}}],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": "slicewise"}}],
                "current-context": "local",
            }
        )
    )
    return path

"""Container names outside Kubernetes, from the Docker Engine API on its unix socket (``--container.socket``).

Docker (``/var/run/docker.sock``) and Podman's Docker-compatible service (``/run/podman/podman.sock``) both answer
``GET /containers/json`` with each running container's full id and names. The list is cached and refreshed in the
background like the Kubernetes pod cache: a scrape reads the cache only, and an unknown id wakes a refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from exporter.attribution.refresher import BackgroundRefresh

log = logging.getLogger(__name__)


class DockerContainerNames:
    def __init__(
        self,
        socket_path: Path,
        refresh_interval_s: float = 30.0,
        min_refresh_s: float = 5.0,
        request_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.socket_path = socket_path
        self._client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(socket_path)), base_url="http://docker", timeout=request_timeout_s
        )
        self._names: dict[str, str] = {}
        self.errors = 0
        self._background = BackgroundRefresh("container-names", self.refresh, refresh_interval_s, min_refresh_s, clock)

    def name(self, container_id: str) -> str | None:
        found = self._names.get(container_id)
        if found is None:
            self._background.wake()
        return found

    def refresh(self) -> bool:
        try:
            response = self._client.get("/containers/json")
            response.raise_for_status()
            names = {}
            for container in response.json():
                cid, container_names = container.get("Id"), container.get("Names") or []
                if cid and container_names:
                    names[str(cid)] = str(container_names[0]).lstrip("/")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            self.errors += 1
            log.warning("listing containers from %s failed: %s", self.socket_path, exc)
            return False
        self._names = names
        return True

    def start(self) -> None:
        self._background.start()

    def stop(self) -> None:
        self._background.stop()
        self._client.close()

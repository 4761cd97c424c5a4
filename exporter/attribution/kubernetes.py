"""``PodDirectory`` from the Kubernetes API server: this node's pods, their owners and containers, cached.

A background thread lists the pods on this node (``fieldSelector=spec.nodeName=<node>``, so the exporter's load on
the API server does not grow with the cluster) every ``refresh_interval_s``, and at once (but at most every
``min_refresh_s``) when a scrape asks for a pod it does not know, such as one that just started. Owners are
followed one level up where the pod's controller is itself owned: ReplicaSet -> Deployment, Job -> CronJob. Those
lookups are cached (a ReplicaSet never changes owner). ``lookup`` only reads the cache, so a slow or unreachable
API server never holds up a scrape; it only delays names.

RBAC the exporter needs: ``get, list`` on ``pods``; ``get`` on ``replicasets`` (apps) and ``jobs`` (batch). Without
the last two, owners are still named: a ReplicaSet made by a Deployment is ``<deployment>-<pod-template-hash>``,
so the hash (which the pod carries as a label) is cut off; a Job stays a Job.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from exporter.attribution.refresher import BackgroundRefresh
from exporter.attribution.sources import PodMeta
from exporter.health import DirectoryHealth

log = logging.getLogger(__name__)

_RUNTIME_PREFIXES = ("containerd://", "cri-o://", "docker://", "cri-dockerd://")
_FINAL_STATUSES = (401, 403, 404)  # asking again will not help: remember the fallback name


def _controller(metadata: dict[str, Any]) -> tuple[str, str]:
    for ref in metadata.get("ownerReferences") or ():
        if ref.get("controller"):
            return str(ref.get("kind", "")), str(ref.get("name", ""))
    return "", ""


def _container_id(raw: str) -> str:
    for prefix in _RUNTIME_PREFIXES:
        if raw.startswith(prefix):
            return raw[len(prefix) :]
    return raw.partition("://")[2] or raw


class KubernetesPodDirectory:
    """Pods on ``node_name`` by UID, refreshed in the background (see module doc)."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        node_name: str,
        refresh_interval_s: float = 30.0,
        min_refresh_s: float = 5.0,
        request_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_name = node_name
        self.refresh_interval_s = refresh_interval_s
        self.min_refresh_s = min_refresh_s
        self.request_timeout_s = request_timeout_s
        self._core = k8s.CoreV1Api(api_client)
        self._apps = k8s.AppsV1Api(api_client)
        self._batch = k8s.BatchV1Api(api_client)
        self._pods: dict[str, PodMeta] = {}
        self._owner_cache: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._owner_keys_used: set[tuple[str, str, str]] = set()
        self._background = BackgroundRefresh("kubernetes-pods", self.refresh, refresh_interval_s, min_refresh_s, clock)
        self._refreshes = 0
        self._errors = 0
        self._last_success_unix: float | None = None

    # --- what scrapes call ---------------------------------------------------------------------------------------

    def lookup(self, pod_uid: str) -> PodMeta | None:
        found = self._pods.get(pod_uid)  # one dict read of a dict replaced whole: safe without a lock
        if found is None:
            self._background.wake()
        return found

    def health(self) -> DirectoryHealth:
        return DirectoryHealth(len(self._pods), self._refreshes, self._errors, self._last_success_unix)

    # --- the background refresher --------------------------------------------------------------------------------

    def start(self) -> None:
        self._background.start()

    def stop(self) -> None:
        self._background.stop(self.request_timeout_s + 1)

    def refresh(self) -> bool:
        """List this node's pods once and replace the cache; on failure keep the old cache. True on success."""
        self._refreshes += 1
        self._owner_keys_used = set()
        try:
            response: Any = self._core.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self.node_name}",
                _preload_content=False,
                _request_timeout=self.request_timeout_s,
            )
            items = json.loads(response.data).get("items") or []
            pods = {}
            for item in items:
                meta = self._pod_meta(item)
                if meta is not None:
                    pods[meta.uid] = meta
        except Exception as exc:  # any failure (network, HTTP, JSON): keep serving the last good cache
            self._errors += 1
            log.warning("listing pods on node %s from the Kubernetes API failed: %s", self.node_name, exc)
            return False
        self._pods = pods
        self._last_success_unix = time.time()
        self._owner_cache = {k: v for k, v in self._owner_cache.items() if k in self._owner_keys_used}
        return True

    def _pod_meta(self, item: dict[str, Any]) -> PodMeta | None:
        metadata = item.get("metadata") or {}
        uid, namespace, name = metadata.get("uid"), metadata.get("namespace"), metadata.get("name")
        if not uid or not namespace or not name:
            return None
        kind, owner = _controller(metadata)
        if kind == "ReplicaSet":
            kind, owner = self._replica_set_owner(namespace, owner, metadata.get("labels") or {})
        elif kind == "Job":
            kind, owner = self._job_owner(namespace, owner)
        elif kind == "Node":  # a static pod's mirror: the pod is the workload
            kind, owner = "", ""
        status = item.get("status") or {}
        containers = {}
        for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
            for c in status.get(key) or ():
                if c.get("containerID") and c.get("name"):
                    containers[_container_id(c["containerID"])] = c["name"]
        return PodMeta(
            uid=uid, namespace=namespace, name=name, owner_kind=kind, owner_name=owner, containers=containers
        )

    def _replica_set_owner(self, namespace: str, name: str, pod_labels: dict[str, str]) -> tuple[str, str]:
        key = (namespace, "ReplicaSet", name)
        self._owner_keys_used.add(key)
        if key not in self._owner_cache:
            try:
                rs: Any = self._apps.read_namespaced_replica_set(
                    name, namespace, _preload_content=False, _request_timeout=self.request_timeout_s
                )
                kind, owner = _controller(json.loads(rs.data).get("metadata") or {})
                self._owner_cache[key] = (kind, owner) if kind else ("ReplicaSet", name)
            except Exception as exc:
                log.debug("reading ReplicaSet %s/%s failed (%s); naming its owner from its name", namespace, name, exc)
                template_hash = pod_labels.get("pod-template-hash", "")
                fallback = ("ReplicaSet", name)
                if template_hash and name.endswith(f"-{template_hash}"):
                    fallback = ("Deployment", name[: -len(template_hash) - 1])
                if isinstance(exc, ApiException) and exc.status in _FINAL_STATUSES:
                    self._owner_cache[key] = fallback
                return fallback
        return self._owner_cache[key]

    def _job_owner(self, namespace: str, name: str) -> tuple[str, str]:
        key = (namespace, "Job", name)
        self._owner_keys_used.add(key)
        if key not in self._owner_cache:
            try:
                job: Any = self._batch.read_namespaced_job(
                    name, namespace, _preload_content=False, _request_timeout=self.request_timeout_s
                )
                kind, owner = _controller(json.loads(job.data).get("metadata") or {})
                self._owner_cache[key] = (kind, owner) if kind == "CronJob" else ("Job", name)
            except Exception as exc:
                log.debug("reading Job %s/%s failed (%s); naming the Job itself", namespace, name, exc)
                if isinstance(exc, ApiException) and exc.status in _FINAL_STATUSES:
                    self._owner_cache[key] = ("Job", name)
                return "Job", name
        return self._owner_cache[key]

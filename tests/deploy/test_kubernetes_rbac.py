"""The exporter's RBAC grants exactly what attribution needs: nothing more (the rules, parsed) and nothing less (the
real ``KubernetesPodDirectory`` runs against a local API server that authorizes each request with these rules)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import config

from exporter.attribution.kubernetes import KubernetesPodDirectory
from tests.deploy.test_kubernetes import BASE, BUILDS, built, find, pod_spec
from tests.exporter.attribution.fake_apiserver import FakeApiServer, kubeconfig, owner, pod, serve

NODE = "gpu-node-a"
RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
# what exporter/attribution/kubernetes.py calls: list pods (its node's, by field selector), get their owners
NEEDED = {("", "pods", "get"), ("", "pods", "list"), ("apps", "replicasets", "get"), ("batch", "jobs", "get")}


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def exporter_rules() -> list[dict[str, Any]]:
    return list(find(built(BASE), "ClusterRole", "slicewise-exporter")["rules"])


def test_the_cluster_role_grants_exactly_what_attribution_needs() -> None:
    rules = exporter_rules()
    assert grants(rules) == NEEDED
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}  # no resourceNames or nonResourceURLs games
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]


def test_rbac_objects_are_the_exporter_role_and_its_one_binding_in_every_build() -> None:
    for directory in BUILDS:
        rbac = [o for o in built(directory) if o["kind"] in RBAC_KINDS]
        assert sorted((o["kind"], o["metadata"]["name"]) for o in rbac) == [
            ("ClusterRole", "slicewise-exporter"),
            ("ClusterRoleBinding", "slicewise-exporter"),
        ], directory
        binding = find(rbac, "ClusterRoleBinding")
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "slicewise-exporter",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "slicewise-exporter", "namespace": "slicewise"}
        ]
        daemonset = find(built(directory), "DaemonSet", "slicewise-exporter")
        assert pod_spec(daemonset)["serviceAccountName"] == "slicewise-exporter"


def test_no_other_workload_gets_an_api_token() -> None:
    for directory in BUILDS:
        for obj in built(directory):
            if obj["kind"] in ("Deployment", "CronJob", "Job", "StatefulSet"):
                assert pod_spec(obj).get("automountServiceAccountToken") is False, (directory, obj["metadata"]["name"])


@dataclass
class Decision:
    path: str
    attributes: tuple[str, str, str]
    allowed: bool


@dataclass
class AuthorizingApiServer(FakeApiServer):
    """The fake API server, answering 403 to any request the given RBAC rules do not allow, as the real one does."""

    rules: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        attributes = request_attributes(path, query)
        allowed = attributes in grants(self.rules)
        self.decisions.append(Decision(path, attributes, allowed))
        if not allowed:
            group, resource, verb = attributes
            message = f"{resource}.{group} is forbidden: cannot {verb} (test RBAC)"
            return 403, {"kind": "Status", "status": "Failure", "reason": "Forbidden", "message": message, "code": 403}
        return super().answer(path, query)


def request_attributes(path: str, query: dict[str, list[str]]) -> tuple[str, str, str]:
    """(apiGroup, resource, verb) of a GET, by the API server's URL scheme."""
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    if rest and rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource, name, subresource = rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
    if subresource:
        resource = f"{resource}/{subresource}"
    watching = query.get("watch", ["false"])[0] in ("true", "1")
    verb = "watch" if watching else "get" if name else "list"
    return group, resource, verb


def test_request_attributes_follow_the_api_server_scheme() -> None:
    assert request_attributes("/api/v1/pods", {}) == ("", "pods", "list")
    assert request_attributes("/api/v1/pods", {"watch": ["true"]}) == ("", "pods", "watch")
    assert request_attributes("/api/v1/namespaces/ml/pods/x", {}) == ("", "pods", "get")
    assert request_attributes("/api/v1/namespaces/ml/pods/x/log", {}) == ("", "pods/log", "get")
    assert request_attributes("/apis/apps/v1/namespaces/ml/replicasets/rs", {}) == ("apps", "replicasets", "get")
    assert request_attributes("/apis/batch/v1/jobs", {}) == ("batch", "jobs", "list")


def cluster(rules: list[dict[str, Any]]) -> AuthorizingApiServer:
    api = AuthorizingApiServer(rules=rules)
    api.pods = [
        pod(
            "u-1",
            "ml",
            "trainer-7d9f8c6b5-x2x7q",
            NODE,
            {"a" * 64: "pytorch"},
            [owner("ReplicaSet", "trainer-7d9f8c6b5")],
            {"pod-template-hash": "7d9f8c6b5"},
        ),
        pod(
            "u-2",
            "eval",
            "nightly-28934520-5kq2p",
            NODE,
            {"b" * 64: "eval"},
            [owner("Job", "nightly-28934520", "batch/v1")],
        ),
        pod("u-3", "serving", "vllm-0", "gpu-node-b", {"c" * 64: "vllm"}, [owner("StatefulSet", "vllm")]),
    ]
    api.replicasets[("ml", "trainer-7d9f8c6b5")] = {
        "kind": "ReplicaSet",
        "metadata": {"name": "trainer-7d9f8c6b5", "ownerReferences": [owner("Deployment", "trainer")]},
    }
    api.jobs[("eval", "nightly-28934520")] = {
        "kind": "Job",
        "metadata": {"name": "nightly-28934520", "ownerReferences": [owner("CronJob", "nightly", "batch/v1")]},
    }
    return api


def refresh(api: AuthorizingApiServer, tmp_path: Path) -> KubernetesPodDirectory:
    with serve(api) as url:
        client = config.new_client_from_config(config_file=str(kubeconfig(tmp_path / "kubeconfig", url)))
        pods = KubernetesPodDirectory(client, NODE)
        assert pods.refresh()
    return pods


def test_the_exporter_works_with_these_rules_alone(tmp_path: Path) -> None:
    api = cluster(exporter_rules())
    pods = refresh(api, tmp_path)
    assert [d for d in api.decisions if not d.allowed] == []
    assert {d.attributes for d in api.decisions} <= NEEDED
    trainer, nightly = pods.lookup("u-1"), pods.lookup("u-2")
    assert trainer is not None and (trainer.owner_kind, trainer.owner_name) == ("Deployment", "trainer")
    assert nightly is not None and (nightly.owner_kind, nightly.owner_name) == ("CronJob", "nightly")
    assert pods.lookup("u-3") is None  # the listing is this node's pods only (fieldSelector spec.nodeName)


def test_the_authorizer_refuses_what_the_rules_leave_out(tmp_path: Path) -> None:
    """Without the Job rule the CronJob owner cannot be read (and is named after the Job): the check has teeth."""
    rules = [r for r in exporter_rules() if r["apiGroups"] != ["batch"]]
    api = cluster(rules)
    pods = refresh(api, tmp_path)
    denied = [d.attributes for d in api.decisions if not d.allowed]
    assert denied == [("batch", "jobs", "get")]
    nightly = pods.lookup("u-2")
    assert nightly is not None and (nightly.owner_kind, nightly.owner_name) == ("Job", "nightly-28934520")

"""deploy/kubernetes/: every kustomization builds, every object validates, and the pieces agree with each other.

The build is checked twice: with the real ``kubectl kustomize`` (kustomize v5 inside kubectl), and with the small
loader below, which reads the same kustomization files with pyyaml. The loader implements only what these
kustomizations use and refuses any other field, so it cannot silently skip a feature; where kubectl is present the
two must produce the same objects. Built objects are validated against the Kubernetes OpenAPI schemas
(``kubernetes-validate``, strict: unknown fields fail) for the oldest and newest versions it ships that we support,
and the Prometheus Operator's ServiceMonitor/PodMonitor against pydantic models generated from the operator's CRD
schema (``cloudcoil-models-prometheus-operator``), with unknown fields refused by a round trip.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml

from tests.support import REPO, missing, require_binary

KUSTOMIZE = REPO / "deploy" / "kubernetes"
BASE = KUSTOMIZE / "base"
OVERLAYS = sorted(p for p in (KUSTOMIZE / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
BUILDS = [BASE, *OVERLAYS]
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PodMonitor")}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
EXPORTER = "slicewise-exporter"


def build_id(path: Path) -> str:
    return str(path.relative_to(KUSTOMIZE))


# --- the pyyaml loader ---------------------------------------------------------------------------------------------

_KUSTOMIZATION_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "labels",
    "resources",
    "components",
    "patches",
    "configMapGenerator",
    "generatorOptions",
}


@dataclass(frozen=True)
class Key:
    kind: str
    name: str
    namespace: str


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    return Key(obj["kind"], meta["name"], meta.get("namespace", ""))


def _read_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _json_patch(obj: dict[str, Any], operations: list[dict[str, Any]]) -> None:
    """RFC 6902 remove/add/replace on plain paths: the operations these kustomizations use."""
    for op in operations:
        *parents, last = [part for part in op["path"].split("/")[1:]]
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "remove":
            assert last in node, f"patch removes {op['path']}, which is not there"
            del node[last]
        elif op["op"] in ("add", "replace"):
            node[last] = op["value"]
        else:
            raise AssertionError(f"the loader does not implement JSON patch op {op['op']!r}")


def _matches(target: dict[str, Any], obj: dict[str, Any]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    wanted = {"group": group, "version": version, "kind": obj["kind"], "name": obj["metadata"]["name"]}
    return all(target[field] == wanted[field] for field in target)


def _apply_patches(objects: list[dict[str, Any]], patches: list[dict[str, Any]], where: Path) -> list[dict[str, Any]]:
    for patch in patches:
        assert set(patch) <= {"target", "patch"}, f"{where}: unsupported patch fields {set(patch)}"
        body = yaml.safe_load(patch["patch"])
        if isinstance(body, list):  # JSON 6902 against the target
            hits = [obj for obj in objects if _matches(patch["target"], obj)]
            assert len(hits) == 1, f"{where}: patch target {patch['target']} matches {len(hits)} objects"
            _json_patch(hits[0], body)
        else:  # strategic merge; only deletion is used here
            assert body.pop("$patch", None) == "delete", f"{where}: only '$patch: delete' merge patches are supported"
            gone = [
                obj
                for obj in objects
                if obj["kind"] == body["kind"] and obj["metadata"]["name"] == body["metadata"]["name"]
            ]
            assert len(gone) == 1, (
                f"{where}: delete patch for {body['kind']}/{body['metadata']['name']} matches {len(gone)}"
            )
            objects = [obj for obj in objects if obj is not gone[0]]
    return objects


def _generate_config_maps(spec: dict[str, Any], directory: Path) -> list[dict[str, Any]]:
    generated = []
    for generator in spec.get("configMapGenerator", []):
        assert set(generator) <= {"name", "files"}, f"{directory}: unsupported configMapGenerator fields"
        data = {}
        for entry in generator["files"]:
            key, _, file = entry.rpartition("=")
            data[key or Path(file).name] = (directory / file).read_text()
        generated.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        )
    return generated


def _set_namespace(objects: list[dict[str, Any]], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []):
            if subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace


def _add_labels(objects: list[dict[str, Any]], label_sets: list[dict[str, Any]]) -> None:
    for label_set in label_sets:
        assert label_set.get("includeSelectors") is False, "only labels without selectors are supported"
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label_set["pairs"])
            template = obj.get("spec", {}).get("template") or obj.get("spec", {}).get("jobTemplate")
            if label_set.get("includeTemplates") and template is not None:
                template.setdefault("metadata", {}).setdefault("labels", {}).update(label_set["pairs"])


def load(directory: Path, component: bool = False) -> list[dict[str, Any]]:
    """The objects a kustomization (or, with ``component``, a Component) produces, without name hash suffixes."""
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    expected_kind = "Component" if component else "Kustomization"
    assert spec["kind"] == expected_kind, f"{directory}: kind {spec['kind']}, expected {expected_kind}"
    unknown = set(spec) - _KUSTOMIZATION_FIELDS
    assert not unknown, f"{directory}: the loader does not implement {sorted(unknown)}"
    objects: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        assert path.exists(), f"{directory}/kustomization.yaml: resource {entry} does not exist"
        objects += load(path) if path.is_dir() else _read_documents(path)
    objects += _generate_config_maps(spec, directory)
    for entry in spec.get("components", []):
        objects = _apply_component((directory / entry).resolve(), objects)
    objects = _apply_patches(objects, spec.get("patches", []), directory)
    if "namespace" in spec:
        _set_namespace(objects, spec["namespace"])
    _add_labels(objects, spec.get("labels", []))
    return objects


def _apply_component(directory: Path, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert spec["kind"] == "Component", f"{directory} is not a Component"
    assert set(spec) <= {"apiVersion", "kind", "resources", "patches"}, f"{directory}: unsupported component fields"
    objects = objects + [doc for entry in spec.get("resources", []) for doc in _read_documents(directory / entry)]
    return _apply_patches(objects, spec.get("patches", []), directory)


@functools.cache
def _loaded(directory: Path) -> tuple[dict[str, Any], ...]:
    return tuple(load(directory))


def built(directory: Path) -> list[dict[str, Any]]:
    """A fresh copy of what the loader builds (tests may change it)."""
    return copy.deepcopy(list(_loaded(directory)))


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    hits = [obj for obj in objects if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in pod_spec(workload)["containers"] if c["name"] == name)


# --- kubectl kustomize -----------------------------------------------------------------------------------------------


@functools.cache
def kubectl_build(directory: Path) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        missing(
            "kubectl (with its built-in kustomize)",
            "not installable from the project's registries (Debian's kubernetes-client is 1.20, whose kustomize v2 "
            "lacks components); the pyyaml loader still checks the build",
        )
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {build_id(directory)} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


_HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}$")


def _without_hash_suffixes(value: Any, generated: set[str]) -> Any:
    """kustomize appends a content hash to generated names and to every reference to them; strip it to compare."""
    if isinstance(value, dict):
        return {k: _without_hash_suffixes(v, generated) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_hash_suffixes(v, generated) for v in value]
    if isinstance(value, str) and _HASH_SUFFIX.search(value) and _HASH_SUFFIX.sub("", value) in generated:
        return _HASH_SUFFIX.sub("", value)
    return value


@pytest.mark.needs_binary
@pytest.mark.parametrize("directory", BUILDS, ids=build_id)
def test_kubectl_kustomize_builds_it_and_the_loader_agrees(directory: Path) -> None:
    from_kubectl = list(kubectl_build(directory))
    from_loader = built(directory)
    generated = {obj["metadata"]["name"] for obj in from_loader if obj["kind"] == "ConfigMap"}
    normalised = {key_of(n): n for n in (_without_hash_suffixes(o, generated) for o in from_kubectl)}
    assert set(normalised) == {key_of(o) for o in from_loader}
    for obj in from_loader:
        assert normalised[key_of(obj)] == obj, f"{key_of(obj)} differs between kubectl kustomize and the loader"


def test_the_loader_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nreplicas: [{name: x, count: 2}]\n"
    )
    with pytest.raises(AssertionError, match="does not implement"):
        load(tmp_path)


# --- schemas ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("directory", BUILDS, ids=build_id)
def test_every_object_validates_against_the_kubernetes_schemas(directory: Path, version: str) -> None:
    checked = 0
    for obj in built(directory):
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            pytest.fail(
                f"{build_id(directory)}: {key_of(obj)} is invalid for Kubernetes {version} at {path}: {exc.message}"
            )
        checked += 1
    assert checked >= 6


def test_the_schema_check_catches_a_misspelt_field() -> None:
    daemonset = find(built(BASE), "DaemonSet", EXPORTER)
    daemonset["spec"]["template"]["spec"]["hostPid"] = daemonset["spec"]["template"]["spec"].pop("hostPID")
    with pytest.raises(kubernetes_validate.ValidationError, match="hostPid"):
        kubernetes_validate.validate(daemonset, K8S_VERSIONS[0], strict=True)


def _monitor_models() -> dict[str, Any]:
    try:
        from cloudcoil.models.prometheus_operator import v1
    except ImportError:
        missing("cloudcoil-models-prometheus-operator", "pip install cloudcoil-models-prometheus-operator")
    return {"ServiceMonitor": v1.ServiceMonitor, "PodMonitor": v1.PodMonitor}


def _unknown_fields(given: Any, kept: Any, path: str = "") -> list[str]:
    """Fields of ``given`` that the model dropped (pydantic ignores unknown fields; the CRD would prune them)."""
    if isinstance(given, dict):
        assert isinstance(kept, dict)
        return [
            p
            for k, v in given.items()
            for p in ([f"{path}/{k}"] if k not in kept else _unknown_fields(v, kept[k], f"{path}/{k}"))
        ]
    if isinstance(given, list):
        return [
            p for i, (g, k) in enumerate(zip(given, kept, strict=True)) for p in _unknown_fields(g, k, f"{path}/{i}")
        ]
    return []


def check_monitor(obj: dict[str, Any]) -> None:
    model = _monitor_models()[obj["kind"]]
    parsed = model.model_validate(obj)  # types, enums (e.g. relabel actions), required fields
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    unknown = _unknown_fields(obj, kept)
    assert not unknown, f"{obj['kind']} has fields the CRD does not define: {unknown}"


MONITOR_BUILDS = [d for d in OVERLAYS if any((o["apiVersion"], o["kind"]) in CRD_KINDS for o in built(d))]


@pytest.mark.parametrize("directory", MONITOR_BUILDS, ids=build_id)
def test_prometheus_operator_monitors_validate_against_the_crd_models(directory: Path) -> None:
    monitors = [o for o in built(directory) if (o["apiVersion"], o["kind"]) in CRD_KINDS]
    assert monitors
    for monitor in monitors:
        check_monitor(monitor)


def test_the_crd_check_catches_an_unknown_field_and_a_bad_action() -> None:
    monitor = find(built(KUSTOMIZE / "overlays" / "prometheus-operator"), "ServiceMonitor")
    typo = copy.deepcopy(monitor)
    typo["spec"]["endpoints"][0]["relabellings"] = typo["spec"]["endpoints"][0].pop("relabelings")
    with pytest.raises(AssertionError, match="relabellings"):
        check_monitor(typo)
    bad = copy.deepcopy(monitor)
    bad["spec"]["endpoints"][0]["relabelings"][0]["action"] = "rename"
    with pytest.raises(Exception, match="action"):
        check_monitor(bad)


def test_both_monitor_kinds_are_offered() -> None:
    kinds = {o["kind"] for d in MONITOR_BUILDS for o in built(d) if (o["apiVersion"], o["kind"]) in CRD_KINDS}
    assert kinds == {"ServiceMonitor", "PodMonitor"}


# --- what every build holds ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("directory", BUILDS, ids=build_id)
def test_everything_lives_in_the_slicewise_namespace_and_is_labelled(directory: Path) -> None:
    for obj in built(directory):
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "slicewise", key_of(obj)
        assert obj["metadata"]["labels"].get("app.kubernetes.io/version", VERSION) == VERSION, key_of(obj)
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"].get("namespace") == "slicewise", key_of(obj)
    namespace = find(built(directory), "Namespace", "slicewise")
    # hostPID and hostPath are allowed only at the privileged Pod Security level
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


@pytest.mark.parametrize("directory", BUILDS, ids=build_id)
def test_images_are_the_released_version(directory: Path) -> None:
    images = {
        c["image"]
        for obj in built(directory)
        if obj["kind"] in ("DaemonSet", "Deployment", "CronJob")
        for c in pod_spec(obj)["containers"]
    }
    assert images and all(image.endswith(f":{VERSION}") for image in images), images
    assert f"slicewise/slicewise-exporter:{VERSION}" in images


@pytest.mark.parametrize("directory", BUILDS, ids=build_id)
def test_no_secret_values_are_committed(directory: Path) -> None:
    assert not [o for o in built(directory) if o["kind"] == "Secret"], (
        "Secrets are created by the user (docs/deploy.md)"
    )
    for obj in built(directory):
        for c in pod_spec(obj)["containers"] if obj["kind"] in ("DaemonSet", "Deployment", "CronJob") else []:
            for env in c.get("env", []):
                if re.search(r"PASSWORD|TOKEN|WEBHOOK|SECRET", env["name"]):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], env["name"]


# --- the exporter ----------------------------------------------------------------------------------------------------


def test_exporter_daemonset_has_what_nvml_and_attribution_need() -> None:
    daemonset = find(built(BASE), "DaemonSet", EXPORTER)
    spec = pod_spec(daemonset)
    exporter = container(daemonset, "exporter")
    assert spec["hostPID"] is True  # the driver lists a GPU's processes only in the caller's PID namespace
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["serviceAccountName"] == EXPORTER
    env = {e["name"]: e for e in exporter["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert env["NVIDIA_DRIVER_CAPABILITIES"]["value"] == "utility"
    # the mig-monitor capability, which NVIDIA's toolkit grants only with CAP_SYS_ADMIN in the bounding set (and
    # refuses to start the container otherwise)
    assert env["NVIDIA_MIG_MONITOR_DEVICES"]["value"] == "all"
    assert "SYS_ADMIN" in exporter["securityContext"]["capabilities"]["add"]
    # it must not take a GPU from the workloads it measures
    assert not any("nvidia.com" in r for r in exporter["resources"].get("limits", {}))
    assert not any("nvidia.com" in r for r in exporter["resources"].get("requests", {}))

    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in exporter["volumeMounts"]}
    assert volumes[mounts["/host/proc"]["name"]]["hostPath"]["path"] == "/proc"
    assert mounts["/host/proc"]["readOnly"] is True
    assert volumes[mounts["/host/root/etc/passwd"]["name"]]["hostPath"] == {"path": "/etc/passwd", "type": "File"}
    assert all(m.get("readOnly") for m in exporter["volumeMounts"] if "hostPath" in volumes[m["name"]])
    assert "--path.procfs=/host/proc" in exporter["args"] and "--path.rootfs=/host/root" in exporter["args"]


def test_exporter_runs_on_gpu_nodes_only_and_tolerates_their_taint() -> None:
    spec = pod_spec(find(built(BASE), "DaemonSet", EXPORTER))
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_exporter_is_unprivileged_with_bounded_resources() -> None:
    daemonset = find(built(BASE), "DaemonSet", EXPORTER)
    spec, exporter = pod_spec(daemonset), container(daemonset, "exporter")
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    ctx = exporter["securityContext"]
    # SYS_ADMIN only in the bounding set: a non-root process with no_new_privs never holds it
    assert ctx == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
    }
    assert not spec.get("hostNetwork") and not spec.get("hostIPC")
    resources = exporter["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    mib = {"Mi": 1, "Gi": 1024}
    memory = {k: int(v[:-2]) * mib[v[-2:]] for k, v in ((k, resources[k]["memory"]) for k in ("requests", "limits"))}
    # the exporter targets < 100 MiB RSS: the request covers it, the limit leaves room for a burst of processes
    assert 64 <= memory["requests"] <= 128 and memory["limits"] >= 2 * memory["requests"]


def test_exporter_probes_use_the_metrics_port() -> None:
    daemonset = find(built(BASE), "DaemonSet", EXPORTER)
    exporter = container(daemonset, "exporter")
    ports = {p["name"]: p["containerPort"] for p in exporter["ports"]}
    assert ports == {"metrics": 10052}
    assert "--web.listen-address=:10052" in exporter["args"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert exporter[probe]["httpGet"]["port"] in ("metrics", 10052)


def test_exporter_arguments_parse_with_the_real_cli() -> None:
    """Every flag the DaemonSet passes exists in slicewise-exporter and its value parses (no server is started)."""
    from exporter.cli import cli

    args = container(find(built(BASE), "DaemonSet", EXPORTER), "exporter")["args"]
    try:
        context = cli.make_context("slicewise-exporter", list(args))
    except click.UsageError as exc:
        pytest.fail(f"the DaemonSet's arguments do not parse: {exc.format_message()}")
    assert context.params["procfs"] == Path("/host/proc")
    assert context.params["listen_address"] == ":10052"
    help_text = cli.get_help(click.Context(cli, info_name="slicewise-exporter"))
    for arg in args:
        assert arg.split("=")[0] in help_text


def test_without_runtimeclass_overlay_only_drops_the_runtime_class() -> None:
    base = find(built(BASE), "DaemonSet", EXPORTER)
    plain = find(built(KUSTOMIZE / "overlays" / "without-runtimeclass"), "DaemonSet", EXPORTER)
    assert "runtimeClassName" not in pod_spec(plain)
    del base["spec"]["template"]["spec"]["runtimeClassName"]
    assert plain == base


def test_exporter_as_root_overlay_only_changes_the_user() -> None:
    base = find(built(BASE), "DaemonSet", EXPORTER)
    root = find(built(KUSTOMIZE / "overlays" / "exporter-as-root"), "DaemonSet", EXPORTER)
    context = pod_spec(root)["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["runAsNonRoot"]) == (0, 0, False)
    assert container(root, "exporter")["securityContext"]["allowPrivilegeEscalation"] is False
    for obj in (base, root):
        del obj["spec"]["template"]["spec"]["securityContext"]
    assert root == base


def test_every_component_is_built_by_an_overlay() -> None:
    used = set()
    for overlay in OVERLAYS:
        spec = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        used |= {(overlay / c).resolve() for c in spec.get("components", [])}
    components = {p.resolve() for p in (KUSTOMIZE / "components").iterdir() if (p / "kustomization.yaml").is_file()}
    assert components == used  # so the schema and build tests above cover each one


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_service_and_monitors_reach_the_exporter_pods() -> None:
    daemonset = find(built(BASE), "DaemonSet", EXPORTER)
    pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
    service = find(built(BASE), "Service", EXPORTER)
    assert _selects(service["spec"]["selector"], pod_labels)
    assert service["spec"]["clusterIP"] == "None"  # one endpoint per node's exporter
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 10052, "targetPort": "metrics", "protocol": "TCP"}]

    service_monitor = find(built(KUSTOMIZE / "overlays" / "prometheus-operator"), "ServiceMonitor")
    assert _selects(service_monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert [e["port"] for e in service_monitor["spec"]["endpoints"]] == ["metrics"]
    pod_monitor = find(built(KUSTOMIZE / "overlays" / "podmonitor"), "PodMonitor")
    assert _selects(pod_monitor["spec"]["selector"]["matchLabels"], pod_labels)
    assert [e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    # job="slicewise-exporter", which deploy/prometheus's alerts match on
    assert service["metadata"]["labels"][service_monitor["spec"]["jobLabel"]] == EXPORTER
    assert pod_labels[pod_monitor["spec"]["jobLabel"]] == EXPORTER


def _target_labels(relabelings: list[dict[str, Any]], source_key: str, target_key: str) -> dict[str, str]:
    return {
        r[target_key]: r[source_key][0]
        for r in relabelings
        if r.get("action", "replace") == "replace" and r.get(source_key, [""])[0].startswith("__meta_kubernetes_")
    }


def test_monitors_label_targets_as_the_plain_prometheus_config_does() -> None:
    """node from the pod's node, the exporter's own pod as exporter_namespace/exporter_pod: DESIGN.md and
    deploy/prometheus/prometheus-kubernetes.yml. The operator's namespace/pod/container target labels are dropped so
    that the workloads' namespace/pod/container on process series are not renamed to exported_*."""
    plain = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus-kubernetes.yml").read_text())
    job = next(j for j in plain["scrape_configs"] if j["job_name"] == EXPORTER)
    expected = _target_labels(job["relabel_configs"], "source_labels", "target_label")
    assert expected["node"] == "__meta_kubernetes_pod_node_name"
    for directory, kind, endpoints in (
        ("prometheus-operator", "ServiceMonitor", "endpoints"),
        ("podmonitor", "PodMonitor", "podMetricsEndpoints"),
    ):
        monitor = find(built(KUSTOMIZE / "overlays" / directory), kind)
        relabelings = monitor["spec"][endpoints][0]["relabelings"]
        assert _target_labels(relabelings, "sourceLabels", "targetLabel") == expected
        drops = [r for r in relabelings if r["action"] == "labeldrop"]
        assert drops and re.fullmatch(drops[-1]["regex"], "namespace") and re.fullmatch(drops[-1]["regex"], "pod")
        assert not re.fullmatch(drops[-1]["regex"], "node")


@pytest.mark.needs_binary
def test_monitor_relabelings_are_valid_prometheus_relabel_configs(tmp_path: Path) -> None:
    """The relabelings, as the operator writes them into Prometheus's config, pass promtool check config."""
    monitor = find(built(KUSTOMIZE / "overlays" / "prometheus-operator"), "ServiceMonitor")
    names = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    relabel_configs = [
        {names.get(k, k): v for k, v in r.items()} for r in monitor["spec"]["endpoints"][0]["relabelings"]
    ]
    config = {
        "scrape_configs": [
            {
                "job_name": "serviceMonitor/slicewise/slicewise-exporter/0",
                # Debian's Prometheus is built without Kubernetes discovery; relabel configs are checked the same way
                "static_configs": [{"targets": ["127.0.0.1:10052"]}],
                "relabel_configs": relabel_configs,
            }
        ]
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [require_binary("promtool"), "check", "config", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the advisor -----------------------------------------------------------------------------------------------------

CRONJOB = KUSTOMIZE / "overlays" / "advisor-cronjob"


def advisor_config(objects: list[dict[str, Any]], tmp_path: Path) -> Any:
    """The schedule config the advisor pod reads, loaded by the real loader (the same validation as at start)."""
    from advisor.schedule.config import load_config

    config_map = find(objects, "ConfigMap", "slicewise-advisor-config")
    path = tmp_path / "schedule.yaml"
    path.write_text(config_map["data"]["schedule.yaml"])
    return load_config(path)


def mounts_by_volume(workload: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Volume name -> (mount path, volume) for the advisor container."""
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    return {m["name"]: (m["mountPath"], volumes[m["name"]]) for m in container(workload, "advisor")["volumeMounts"]}


@pytest.mark.parametrize("directory", [BASE, CRONJOB], ids=build_id)
def test_advisor_reads_a_valid_config_with_state_and_secrets_where_they_are_mounted(
    directory: Path, tmp_path: Path
) -> None:
    objects = built(directory)
    workload = next(
        o for o in objects if o["kind"] in ("Deployment", "CronJob") and o["metadata"]["name"] == "slicewise-advisor"
    )
    config = advisor_config(objects, tmp_path)
    args = container(workload, "advisor")["args"]
    assert args[:3] == ["schedule", "--config", "/etc/slicewise/schedule.yaml"]
    mounts = mounts_by_volume(workload)

    config_dir, config_volume = mounts["config"]
    assert config_dir == "/etc/slicewise" and config_volume["configMap"]["name"] == "slicewise-advisor-config"
    state_dir, state_volume = mounts["state"]
    assert state_volume["persistentVolumeClaim"]["claimName"] == "slicewise-advisor-state"
    assert find(objects, "PersistentVolumeClaim", "slicewise-advisor-state")
    for kept in (config.output_dir, config.state):  # reports, job store and ledger survive the pod
        assert kept.is_relative_to(state_dir), kept

    secret_dir, secret_volume = mounts["delivery-secrets"]
    assert secret_volume["secret"]["secretName"] == "slicewise-delivery"
    secret_files = [
        path
        for path in (
            config.email.smtp.password_file if config.email else None,
            config.slack.webhook.url_file if config.slack and config.slack.webhook else None,
            config.slack.bot.token_file if config.slack and config.slack.bot else None,
        )
        if path is not None
    ]
    assert secret_files and all(p.parent == Path(secret_dir) for p in secret_files)
    assert mounts["tmp"][0] == "/tmp"  # MPLCONFIGDIR and temporary files, with a read-only root filesystem


@pytest.mark.parametrize("directory", [BASE, CRONJOB], ids=build_id)
def test_advisor_arguments_parse_with_the_real_cli(directory: Path) -> None:
    from slicewise.cli import cli

    workload = next(
        o
        for o in built(directory)
        if o["kind"] in ("Deployment", "CronJob") and o["metadata"]["name"] == "slicewise-advisor"
    )
    args = list(container(workload, "advisor")["args"])
    group = click.Context(cli, info_name="slicewise")
    command = cli.get_command(group, args[0])
    assert command is not None and args[0] == "schedule", args
    try:
        context = command.make_context(args[0], args[1:], parent=group)
    except click.UsageError as exc:
        pytest.fail(f"the advisor's arguments do not parse: {exc.format_message()}")
    assert context.params["config_path"] == Path("/etc/slicewise/schedule.yaml")
    assert context.params["once"] is (directory == CRONJOB)


def test_advisor_deployment_is_a_single_scheduler() -> None:
    deployment = find(built(BASE), "Deployment", "slicewise-advisor")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}  # never two schedulers on one state directory
    assert "--once" not in container(deployment, "advisor")["args"]


def test_cronjob_overlay_replaces_the_deployment_and_keeps_its_pod(tmp_path: Path) -> None:
    objects = built(CRONJOB)
    assert not [o for o in objects if o["kind"] == "Deployment"]
    cronjob = find(objects, "CronJob", "slicewise-advisor")
    deployment = find(built(BASE), "Deployment", "slicewise-advisor")
    assert container(cronjob, "advisor")["args"] == [*container(deployment, "advisor")["args"], "--once"]
    cron_pod, deployment_pod = pod_spec(cronjob), pod_spec(deployment)
    assert cron_pod.pop("restartPolicy") == "Never"
    for spec in (cron_pod, deployment_pod):
        spec["containers"] = [{k: v for k, v in c.items() if k != "args"} for c in spec["containers"]]
    assert cron_pod == deployment_pod
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def test_cronjob_fires_when_the_config_says(tmp_path: Path) -> None:
    """--once files its report under the config's latest fire time, so the two schedules must be the same. Day
    numbers differ between APScheduler 3 (0 = Monday) and Kubernetes (0 = Sunday); day names do not."""
    objects = built(CRONJOB)
    config = advisor_config(objects, tmp_path)
    cronjob = find(objects, "CronJob", "slicewise-advisor")
    assert cronjob["spec"]["schedule"] == config.schedule.cron
    assert cronjob["spec"]["timeZone"] == config.schedule.timezone
    day_of_week = config.schedule.cron.split()[4]
    assert day_of_week == "*" or not re.search(r"\d", day_of_week), "name the day: mon, not 1"


@pytest.mark.parametrize("directory", [BASE, CRONJOB], ids=build_id)
def test_advisor_pod_meets_the_restricted_pod_security_standard(directory: Path) -> None:
    workload = next(
        o
        for o in built(directory)
        if o["metadata"]["name"] == "slicewise-advisor" and o["kind"] in ("Deployment", "CronJob")
    )
    spec = pod_spec(workload)
    assert not any(spec.get(f) for f in ("hostPID", "hostIPC", "hostNetwork"))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    allowed_volumes = {"configMap", "secret", "persistentVolumeClaim", "emptyDir", "projected", "downwardAPI"}
    for volume in spec["volumes"]:
        assert set(volume) - {"name"} <= allowed_volumes, volume
    for c in spec["containers"]:
        ctx = c["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx["readOnlyRootFilesystem"] is True
        assert "limits" in c["resources"] and "memory" in c["resources"]["limits"]


# --- the example overlay and the docs --------------------------------------------------------------------------------

EXAMPLE = KUSTOMIZE / "examples" / "my-cluster"


@pytest.mark.needs_binary
def test_example_overlay_builds_validates_and_carries_a_valid_config(tmp_path: Path) -> None:
    """The overlay docs/deploy.md shows (images, a replaced schedule config, the ServiceMonitor's release label)."""
    objects = [dict(o) for o in kubectl_build(EXAMPLE)]
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            check_monitor(obj)
        else:
            kubernetes_validate.validate(obj, K8S_VERSIONS[-1], strict=True)
    monitor = find(objects, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    images = {
        c["image"] for o in objects if o["kind"] in ("DaemonSet", "Deployment") for c in pod_spec(o)["containers"]
    }
    assert images == {
        f"registry.example.com/gpu/slicewise-exporter:{VERSION}",
        f"registry.example.com/gpu/slicewise:{VERSION}",
    }
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config_map["data"]["schedule.yaml"] == (EXAMPLE / "schedule.yaml").read_text()
    path = tmp_path / "schedule.yaml"
    path.write_text(config_map["data"]["schedule.yaml"])
    from advisor.schedule.config import load_config

    config = load_config(path)
    assert config.slack is not None and config.slack.bot is not None
    assert config.slack.bot.token_file == Path("/var/run/secrets/slicewise/slack-bot-token")


def test_docs_apply_only_kustomizations_that_exist() -> None:
    docs = (REPO / "docs" / "deploy.md").read_text()
    paths = re.findall(r"kubectl apply -k (\S+)", docs)
    assert len(set(paths)) >= 4
    for path in paths:
        assert (REPO / path / "kustomization.yaml").is_file(), path
    for overlay in OVERLAYS:
        assert f"deploy/kubernetes/overlays/{overlay.name}" in docs, f"docs/deploy.md does not mention {overlay.name}"

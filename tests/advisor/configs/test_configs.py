"""Each generated config has its tool's format: parsed back through strict schemas that also accept the reference
examples (shared/reference/config_formats.md), Kubernetes objects checked against the Kubernetes API schema
(kubernetes-validate), and the content matching the plan (geometries that fit, replicas, requests)."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from advisor.configs import build_configs
from advisor.configs.naming import DEVICE_PLUGIN_LABEL
from advisor.configs.schema import (
    DevicePluginConfig,
    DevicePluginConfigMap,
    EnvVar,
    MigPartedConfig,
    MigPartedEntry,
    NosPlan,
    ResourceRequests,
    SharedResource,
)
from advisor.decide import decide
from advisor.model import Mode
from advisor.plan import plan_fleet
from slicewise import catalogue
from slicewise.catalogue import MIB
from tests.advisor.plan.fleet_fixtures import A100, H100, classify_by_prefix, features, training
from tests.support import shared_file

K8S_VERSION = "1.30.0"


def _yaml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", markdown, flags=re.DOTALL)


def test_the_schemas_accept_the_reference_examples() -> None:
    blocks = _yaml_blocks(shared_file("reference/config_formats.md").read_text())
    mig_parted, time_slicing, mps = (yaml.safe_load(b) for b in blocks[:3])
    parsed = MigPartedConfig.model_validate(mig_parted)
    assert {"all-disabled", "all-1g.10gb", "all-balanced", "custom-mixed", "all-enabled"} <= set(parsed.mig_configs)
    assert DevicePluginConfig.model_validate(time_slicing).sharing.timeSlicing.resources[0].replicas == 4
    assert DevicePluginConfig.model_validate(mps).sharing.mps is not None


def test_nodes_hold_gpus_one_device_plugin_config_serves(planned) -> None:
    """MIG and exclusive whole GPUs share nodes under ``mixed``; MPS, time-sliced whole GPUs and exclusive ones each
    keep nodes of their own (plan/node_setup.py), and no node holds more GPUs than the node size."""
    plan, _, _ = planned
    setups: dict[tuple[str, int], set[tuple[object, ...]]] = {}
    per_node = {m.gpu_model: m.gpus_per_node for m in plan.models}
    for g in plan.gpus:
        setup = ("mig-or-whole",) if g.mode in (Mode.MIG, Mode.EXCLUSIVE) else (g.mode, g.replicas, g.sharing_group)
        setups.setdefault((g.gpu_model, g.node_slot), set()).add(setup)
    assert all(len(s) == 1 for s in setups.values())
    for (model, slot), _ in setups.items():
        on = [g for g in plan.gpus if g.gpu_model == model and g.node_slot == slot]
        assert len(on) <= per_node[model] and len({g.device_index for g in on}) == len(on)
    mixed = [s for (m, slot), s in setups.items() if s == {("mig-or-whole",)}]
    assert any(
        {g.mode for g in plan.gpus if (g.gpu_model, g.node_slot) == key} == {Mode.MIG, Mode.EXCLUSIVE} for key in setups
    ), "the plan puts whole GPUs beside MIG ones where a node has room"
    assert mixed


def test_device_plugin_configmap_is_a_valid_configmap_with_one_key_per_setup(planned) -> None:
    plan, _, configs = planned
    assert {Mode.MIG, Mode.MPS, Mode.TIMESLICE, Mode.EXCLUSIVE} <= {g.mode for g in plan.gpus}
    manifest = yaml.safe_load(configs.device_plugin)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    configmap = DevicePluginConfigMap.model_validate(manifest)
    parsed = {key: DevicePluginConfig.model_validate(yaml.safe_load(text)) for key, text in configmap.data.items()}
    assert parsed["mig-mixed"].flags.migStrategy == "mixed" and parsed["mig-mixed"].sharing is None
    assert parsed["exclusive"].sharing is None
    assert parsed["default"].flags.migStrategy == "mixed" and parsed["default"].sharing is None
    for g in plan.gpus:
        if g.mode == Mode.TIMESLICE:
            ts = parsed[f"h100-80gb-ts-{g.replicas}"].sharing.timeSlicing
            assert ts.resources[0].replicas == g.replicas and ts.failRequestsGreaterThanOne
        if g.mode == Mode.MPS:
            key = f"h100-80gb-mps-{g.replicas}-{g.sharing_group}"
            assert parsed[key].sharing.mps.resources[0].replicas == g.replicas
            assert parsed[key].flags.migStrategy == "none"
    assert "|\n" in configs.device_plugin or ": |" in configs.device_plugin  # configs as readable literal blocks


def _pod(entry, hostipc: bool = False) -> dict:
    container = {"name": "main", "image": "registry.example/app:1", "resources": entry["resources"]}
    if entry.get("env"):
        container["env"] = entry["env"]
    spec = {"containers": [container], "nodeSelector": entry.get("nodeSelector", {})}
    if hostipc:
        spec["hostIPC"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "spec": spec}


def test_resource_requests_are_valid_pod_fragments_matching_the_decisions(planned) -> None:
    _, workloads, configs = planned
    raw = yaml.safe_load(configs.resource_requests)
    parsed = ResourceRequests.model_validate(raw)
    keys = set(yaml.safe_load(configs.device_plugin)["data"])
    decided = {w.workload: w for w in workloads}
    assert {r.workload for r in parsed.workloads} == set(decided)
    for entry, req in zip(raw["workloads"], parsed.workloads, strict=True):
        kubernetes_validate.validate(_pod(entry), K8S_VERSION, strict=True)
        w = decided[req.workload]
        d = w.decision
        assert req.memory_limit_bytes == d.memory_limit_bytes >= w.features.memory_peak_bytes
        (resource,) = req.resources.limits
        if d.mode == Mode.MIG:
            assert resource == f"nvidia.com/mig-{d.profile}"
        else:
            assert resource == "nvidia.com/gpu"
            assert req.nodeSelector[DEVICE_PLUGIN_LABEL] in keys  # the node config it needs exists
        if d.mode == Mode.MPS:
            env = {e.name: e.value for e in req.env or []}
            assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == str(d.mps_active_thread_percentage)
            mib = int(env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"].removeprefix("0=").removesuffix("M"))
            assert w.features.memory_peak_bytes <= mib * MIB <= d.memory_limit_bytes
        else:
            assert req.env is None
        shared = d.mode in (Mode.TIMESLICE, Mode.MPS)
        assert req.nodeSelector["nvidia.com/gpu.product"] == w.gpu_model.replace(" ", "-") + ("-SHARED" * shared)


def test_nos_requests_cover_mig_and_mps_workloads_only(planned) -> None:
    _, workloads, configs = planned
    assert configs.nos is not None
    raw = yaml.safe_load(configs.nos)
    parsed = NosPlan.model_validate(raw)
    decided = {w.workload: w for w in workloads}
    for entry, req in zip(raw["workloads"], parsed.workloads, strict=True):
        kubernetes_validate.validate(_pod(entry, hostipc=req.hostIPC), K8S_VERSION, strict=True)
        w = decided[req.workload]
        assert req.partitioning == w.decision.mode.value
        (resource,) = req.resources.limits
        if req.partitioning == "mps":
            gb = int(re.fullmatch(r"nvidia\.com/gpu-(\d+)gb", resource).group(1))
            assert gb * 1000**3 >= w.features.memory_peak_bytes * 1.15
    managed = {r.workload for r in parsed.workloads}
    assert set(parsed.notManaged) == {
        w for w, r in decided.items() if r.decision.mode in (Mode.TIMESLICE, Mode.EXCLUSIVE)
    }
    assert managed.isdisjoint(parsed.notManaged)
    for geo in parsed.geometries:
        gpu = catalogue.model(geo.gpu_model)
        catalogue.place(gpu, [p for p, n in geo.migDevices.items() for _ in range(n)])
        assert all(k.startswith("nos.nebuly.com/spec-gpu-0-") for k in geo.specAnnotations)


def test_no_nos_file_when_nothing_is_mig_or_mps() -> None:
    fleet = [training(i) for i in range(3)]
    result = decide(classify_by_prefix(fleet), fleet)
    plan = plan_fleet(result.workloads, {H100: 3}, result.unplaced)
    assert build_configs(plan, result.workloads).nos is None


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (MigPartedEntry, {"devices": "all", "mig-enabled": False, "mig-devices": {"1g.10gb": 7}}),
        (MigPartedEntry, {"devices": "all", "mig-enabled": True}),
        (MigPartedEntry, {"devices": "all", "mig-enabled": True, "mig-devices": {"3g.40gb": 0}}),
        (MigPartedEntry, {"devices": "some", "mig-enabled": False}),
        (MigPartedEntry, {"device-filter": "0x2330", "devices": "all", "mig-enabled": False}),
        (MigPartedEntry, {"devices": "all", "mig-enabled": True, "mig-devices": {"3c.40gb": 1}}),
        (MigPartedEntry, {"devices": "all", "mig-enabled": False, "mig_enabled": False}),
        (MigPartedConfig, {"version": "v2", "mig-configs": {}}),
        (MigPartedConfig, {"version": "v1", "mig-configs": {"Bad_Name": [{"devices": "all", "mig-enabled": False}]}}),
        (SharedResource, {"name": "nvidia.com/gpu", "replicas": 1}),
        (SharedResource, {"name": "amd.com/gpu", "replicas": 2}),
        (
            DevicePluginConfig,
            {"version": "v1", "sharing": {"mps": {"resources": [{"name": "nvidia.com/mig-1g.10gb", "replicas": 2}]}}},
        ),
        (DevicePluginConfig, {"version": "v1", "sharing": {}}),
        (
            DevicePluginConfig,
            {
                "version": "v1",
                "flags": {"migStrategy": "mixed"},
                "sharing": {"mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}},
            },
        ),
        (EnvVar, {"name": "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "value": "0"}),
        (EnvVar, {"name": "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", "value": "8G"}),
        (EnvVar, {"name": "CUDA_VISIBLE_DEVICES", "value": "0"}),
    ],
)
def test_the_schemas_reject_what_the_tools_would_refuse(model, data) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)


def test_mps_memory_limits_are_what_the_cuda_docs_accept() -> None:
    assert EnvVar(name="CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", value="0=1G,1=512MB").value == "0=1G,1=512MB"
    assert EnvVar(name="CUDA_MPS_PINNED_DEVICE_MEM_LIMIT", value="0=20480M").value


def test_a_mig_workload_on_a100_is_requested_by_its_a100_profile() -> None:
    f = features("serving/vision-0", A100, peak_gib=30.0, c95=0.3, duty=0.95)
    result = decide(classify_by_prefix([f]), [f])
    plan = plan_fleet(result.workloads, {A100: 1})
    requests = yaml.safe_load(build_configs(plan, result.workloads).resource_requests)["workloads"]
    assert requests[0]["resources"]["limits"] == {"nvidia.com/mig-3g.40gb": 1}
    assert requests[0]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert "0x20B210DE" in build_configs(plan, result.workloads).mig_parted

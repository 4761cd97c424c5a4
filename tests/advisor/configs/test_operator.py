"""The configs against the GPU Operator's consumers, as their source states the rules (commits in
shared/reference/gpu_operator_rollout.md): NVIDIA/gpu-operator @a22dbf6, NVIDIA/k8s-device-plugin @1b826ac (with GPU
Feature Discovery), NVIDIA/mig-parted @bd7160f. The node each planned GPU lands on, and the labels it carries after
the rollout, come from rollout.json, so the scheduling check follows the plan a platform engineer would run."""

from __future__ import annotations

import json
from dataclasses import replace

import kubernetes_validate
import pytest
import yaml

from advisor.configs import build_configs
from advisor.configs.gfd import labels_after
from advisor.configs.naming import product_label
from advisor.configs.nodes import family, pci_filter, plan_nodes
from advisor.configs.schema import (
    DevicePluginConfig,
    DevicePluginConfigMap,
    MigPartedConfig,
    MigPartedConfigMap,
    OperatorValues,
    ResourceRequests,
    Rollout,
)
from advisor.decide import decide
from advisor.model import Mode
from advisor.plan import plan_fleet
from slicewise import catalogue
from tests.advisor.configs.conftest import Planned, make_plan
from tests.advisor.plan.fleet_fixtures import H100, classify_by_prefix, features

K8S_VERSION = "1.30.0"


def _rollout(planned: Planned) -> Rollout:
    return Rollout.model_validate(json.loads(planned[2].rollout_json))


def _plugin_configs(planned: Planned) -> dict[str, DevicePluginConfig]:
    cm = DevicePluginConfigMap.model_validate(yaml.safe_load(planned[2].device_plugin))
    return {k: DevicePluginConfig.model_validate(yaml.safe_load(v)) for k, v in cm.data.items()}


def _mig_parted(planned: Planned) -> MigPartedConfig:
    return MigPartedConfig.model_validate(yaml.safe_load(planned[2].mig_parted))


def test_the_mig_manager_configmap_has_the_whole_file_under_config_yaml(planned: Planned) -> None:
    # deployments/gpu-operator/values.yaml, migManager.config: "ConfigMap MUST have a key named config.yaml"
    manifest = yaml.safe_load(planned[2].mig_parted_configmap)
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    cm = MigPartedConfigMap.model_validate(manifest)
    assert list(cm.data) == ["config.yaml"]
    assert yaml.safe_load(cm.data["config.yaml"]) == yaml.safe_load(planned[2].mig_parted)


def test_helm_values_point_the_operator_at_both_configmaps_and_leave_the_mig_strategy_to_each_node(
    planned: Planned,
) -> None:
    values = OperatorValues.model_validate(yaml.safe_load(planned[2].operator_values))
    mig_cm = yaml.safe_load(planned[2].mig_parted_configmap)["metadata"]
    plugin_cm = yaml.safe_load(planned[2].device_plugin)["metadata"]
    # both ConfigMaps live where the operator runs, under the names the values give
    assert values.migManager.config.name == mig_cm["name"] and values.devicePlugin.config.name == plugin_cm["name"]
    assert mig_cm["namespace"] == plugin_cm["namespace"] == "gpu-operator"
    # migManager.config.default must name a config of the file; devicePlugin.config.default a key of the ConfigMap
    # (cmd/config-manager/main.go, updateConfigName: "specified config ... does not exist" otherwise)
    assert values.migManager.config.default in _mig_parted(planned).mig_configs
    assert values.devicePlugin.config.default in _plugin_configs(planned)
    # templates/clusterpolicy.yaml renders mig.strategy only when set; controllers/object_controls.go
    # applyMIGConfiguration then sets no MIG_STRATEGY, which would beat flags.migStrategy (api/config/v1/flags.go)
    assert values.mig.strategy == ""


def test_every_node_gets_a_plugin_config_that_exists_and_never_mps_with_mixed_mig(planned: Planned) -> None:
    configs = _plugin_configs(planned)
    mig = _mig_parted(planned)
    for step in _rollout(planned).steps:
        key = step.set_labels["nvidia.com/device-plugin.config"]
        config = configs[key]
        mps = config.sharing is not None and config.sharing.mps is not None
        # cmd/nvidia-device-plugin/main.go, validateFlags: "using --mig-strategy=mixed is not supported with MPS"
        assert not (mps and config.flags is not None and config.flags.migStrategy == "mixed")
        entries = mig.mig_configs[step.set_labels["nvidia.com/mig.config"]]
        if any(e.mig_enabled for e in entries):
            assert config.flags is not None and config.flags.migStrategy == "mixed", key  # MIG resources by profile
        if mps:
            assert not any(e.mig_enabled for e in entries)


def _selected(entries, pci_id: str, index: int):
    """mig-parted's selection for one GPU: entries whose device-filter names its PCI id (or that have none) and
    whose devices include its index (cmd/nvidia-mig-parted/assert/assert.go, WalkSelectedMigConfigForEachGPU)."""
    out = []
    for e in entries:
        ids = [e.device_filter] if isinstance(e.device_filter, str) else e.device_filter
        if ids is not None and pci_id not in ids:
            continue
        if e.devices == "all" or index in e.devices:
            out.append(e)
    return out


def test_each_node_config_gives_every_planned_gpu_its_geometry_on_every_variant_of_its_family(
    planned: Planned,
) -> None:
    plan = planned[0]
    mig = _mig_parted(planned)
    layout = {n.slot_name: n for n in plan_nodes(plan).nodes}
    for step in _rollout(planned).steps:
        node = layout[step.planned_node]
        entries = mig.mig_configs[step.set_labels["nvidia.com/mig.config"]]
        for variant in family(node.catalogue):
            for pci_id in variant.pci_device_ids:  # an SXM plan must hold on a PCIe or NVL node as well
                for g in node.gpus:
                    (entry,) = _selected(entries, pci_id, g.device_index)
                    if g.mode != Mode.MIG:
                        assert not entry.mig_enabled
                        continue
                    counts: dict[str, int] = {}
                    for inst in g.mig_instances:
                        counts[inst.profile] = counts.get(inst.profile, 0) + 1
                    assert entry.mig_enabled and entry.mig_devices == counts
                    catalogue.place(variant, [p for p, n in counts.items() for _ in range(n)])  # fits the variant


def test_device_filters_name_every_pci_id_of_the_family() -> None:
    for gpu in catalogue.models():
        ids = pci_filter(gpu)
        assert ids[: len(gpu.pci_device_ids)] == list(gpu.pci_device_ids)
        for other in catalogue.models():
            same = other.memory_slices == gpu.memory_slices and {p.name for p in other.profiles} == {
                p.name for p in gpu.profiles
            }
            assert set(other.pci_device_ids) <= set(ids) if same else not set(other.pci_device_ids) & set(ids)
    a100 = catalogue.model("A100-80GB")
    assert {"0x20B210DE", "0x20B510DE"} <= set(pci_filter(a100))  # SXM4 and PCIe (mig-parted config-default.yaml)


def test_product_labels_are_what_gfd_writes() -> None:
    # internal/lm/resource.go: sanitise() keeps [A-Za-z0-9-_. ], blanks become dashes; -SHARED for replicas > 1
    assert product_label("NVIDIA A100-SXM4-80GB", shared=True) == "NVIDIA-A100-SXM4-80GB-SHARED"
    assert product_label("NVIDIA A100 80GB PCIe") == "NVIDIA-A100-80GB-PCIe"
    assert product_label("NVIDIA  H100 (80GB) HBM3") == "NVIDIA-H100-80GB-HBM3"


def test_every_pod_matches_the_labels_and_resources_of_the_nodes_it_is_planned_on(planned: Planned) -> None:
    """The scheduling check: nodeSelector within the node's labels after the rollout, resource offered there."""
    plan, _workloads, configs = planned
    steps = {s.node: s for s in _rollout(planned).steps}
    layout = {n.slot_name: n for n in plan_nodes(plan).nodes}
    requests = ResourceRequests.model_validate(yaml.safe_load(configs.resource_requests))
    modes = set()
    for req in requests.workloads:
        assert req.nodes, f"{req.workload} has no planned node"
        (resource,) = req.resources.limits
        for name in req.nodes:
            step = steps[name]
            labels = step.expect_labels
            assert labels == labels_after(layout[step.planned_node])
            assert req.nodeSelector.items() <= labels.items(), (req.workload, name)
            assert step.expect_resources.get(resource, 0) >= 1, (req.workload, resource)
            assert req.workload in layout[step.planned_node].workloads
        modes.add(req.mode)
        if req.mode in ("timeslice", "mps"):
            assert req.nodeSelector["nvidia.com/gpu.product"].endswith("-SHARED")
    assert modes == {"mig", "mps", "timeslice", "exclusive"}
    # and a pod pinned to the unshared product never lands on a time-sliced node: the fault the issue found
    shared = [s for s in steps.values() if s.expect_labels.get("nvidia.com/gpu.sharing-strategy") == "time-slicing"]
    assert shared and all(s.expect_labels["nvidia.com/gpu.product"].endswith("-SHARED") for s in shared)


def test_a_mig_pod_of_one_model_does_not_select_another_models_node(planned: Planned) -> None:
    """A100 80GB and H100 both offer nvidia.com/mig-1g.20gb: the product label keeps each on its own model."""
    requests = ResourceRequests.model_validate(yaml.safe_load(planned[2].resource_requests))
    steps = {s.node: s for s in _rollout(planned).steps}
    for req in requests.workloads:
        for step in steps.values():
            if step.gpu_model != req.gpu_model:
                assert not req.nodeSelector.items() <= step.expect_labels.items()


@pytest.mark.parametrize("gpu", catalogue.models(), ids=lambda m: m.key)
def test_any_catalogue_model_gets_configs_the_consumers_accept(gpu: catalogue.GpuModel) -> None:
    """Driven by the catalogue's data alone: a new model needs no code here."""
    smallest = min(gpu.profiles, key=lambda p: p.memory_bytes)
    peak = smallest.memory_bytes * 0.5 / 1024**3
    fleet = [features(f"svc/small-{i}", gpu.name, peak_gib=peak, c95=0.05, duty=0.95) for i in range(3)]
    fleet += [
        features(f"train/big-{i}", gpu.name, peak_gib=gpu.memory_total_mib / 1024 * 0.8, c95=0.9) for i in range(2)
    ]
    result = decide(classify_by_prefix(fleet), fleet)
    plan = plan_fleet(result.workloads, {gpu.name: 8}, result.unplaced)
    configs = build_configs(plan, result.workloads)
    MigPartedConfig.model_validate(yaml.safe_load(configs.mig_parted))
    for text in (configs.device_plugin, configs.mig_parted_configmap):
        kubernetes_validate.validate(yaml.safe_load(text), K8S_VERSION, strict=True)
    rollout = Rollout.model_validate(json.loads(configs.rollout_json))
    requests = ResourceRequests.model_validate(yaml.safe_load(configs.resource_requests))
    steps = {s.node: s for s in rollout.steps}
    assert requests.workloads
    for req in requests.workloads:
        for name in req.nodes or []:
            assert req.nodeSelector.items() <= steps[name].expect_labels.items()
    if any(g.mode == Mode.MIG for g in plan.gpus):
        assert str(pci_filter(gpu)[0]) in configs.mig_parted


def test_whole_gpus_beside_mig_ones_on_one_node_get_mig_disabled_and_pods_that_select_that_node() -> None:
    """Under ``mixed`` a MIG-disabled GPU is offered whole as nvidia.com/gpu (internal/lm/mig-strategy.go,
    newGPULabelers), so a plan may put whole GPUs on a MIG node; the configs follow it."""
    plan, workloads = make_plan()
    # the plan itself lays whole GPUs onto MIG nodes with room (plan/fleet.py, _on_nodes)
    mig_node = next(
        n
        for n in plan_nodes(plan).nodes
        if n.mode == Mode.MIG and n.gpu_model == H100 and any(g.mode == Mode.EXCLUSIVE for g in n.gpus)
    )
    whole = next(g for g in mig_node.gpus if g.mode == Mode.EXCLUSIVE)
    free = whole.device_index
    configs = build_configs(plan, workloads)
    rollout = Rollout.model_validate(json.loads(configs.rollout_json))
    (step,) = [s for s in rollout.steps if s.planned_node == mig_node.slot_name]
    assert step.set_labels["nvidia.com/device-plugin.config"] == "mig-mixed"
    entries = MigPartedConfig.model_validate(yaml.safe_load(configs.mig_parted)).mig_configs[
        step.set_labels["nvidia.com/mig.config"]
    ]
    (entry,) = _selected(entries, catalogue.model(H100).pci_device_id, free)
    assert not entry.mig_enabled
    requests = ResourceRequests.model_validate(yaml.safe_load(configs.resource_requests))
    (req,) = [r for r in requests.workloads if r.workload == whole.workloads[0]]
    assert req.nodeSelector == {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/device-plugin.config": "mig-mixed",
    }
    assert req.nodeSelector.items() <= step.expect_labels.items() and step.expect_resources["nvidia.com/gpu"] >= 1


def test_a_plan_with_two_sharing_setups_on_one_node_is_refused() -> None:
    plan, _ = make_plan()
    ts = next(g for g in plan.gpus if g.mode == Mode.TIMESLICE)
    whole = next(g for g in plan.gpus if g.mode == Mode.EXCLUSIVE and g.gpu_model == ts.gpu_model)
    moved = replace(whole, node_slot=ts.node_slot)
    plan = replace(plan, gpus=tuple(moved if g is whole else g for g in plan.gpus))
    with pytest.raises(ValueError, match="a node takes one device-plugin config"):
        plan_nodes(plan)

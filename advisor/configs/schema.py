"""The formats slicewise writes, as strict pydantic models: every generated config is built through them, and the
tests parse the written YAML back through them (shared/reference/config_formats.md has the shapes and sources).

- NVIDIA mig-parted (``version: v1``, ``mig-configs``): verified against mig-parted's config-default.yaml.
- NVIDIA k8s device plugin config (``version: v1``, ``flags.migStrategy``, ``sharing.timeSlicing`` / ``sharing.mps``)
  and the ConfigMap that holds several named ones.
- slicewise's per-workload resource requests (container ``resources.limits``, MPS ``env``, ``nodeSelector``).
- nebuly nos requests (``nvidia.com/mig-<profile>``, ``nvidia.com/gpu-<N>gb``) and node labels.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

# libyaml's parser where PyYAML was built with it, for the round trip in MigPartedConfigMap (same safe loading)
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MIG_PROFILE_NAME = r"^[1-8]g\.\d+gb(\+me)?$"  # 1g.10gb, 3g.40gb, 1g.10gb+me (GI profiles; no c-suffix CI names)
PCI_DEVICE_ID = r"^0x[0-9A-F]{4}10DE$"  # device id + NVIDIA's vendor id, as mig-parted's device-filter spells it
K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # DNS-1123 subdomain (config names, ConfigMap keys, namespaces)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
MPS_MEM_LIMIT = r"^\d+=\d+[MG]B?(,\d+=\d+[MG]B?)*$"  # CUDA_MPS_PINNED_DEVICE_MEM_LIMIT, e.g. "0=8G" or "0=20480M"

ConfigName = Annotated[str, StringConstraints(pattern=K8S_NAME, max_length=63)]
ProfileName = Annotated[str, StringConstraints(pattern=MIG_PROFILE_NAME)]
PciId = Annotated[str, StringConstraints(pattern=PCI_DEVICE_ID)]
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE, max_length=63)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# --- (a) mig-parted -----------------------------------------------------------------------------------------------


class MigPartedEntry(_Strict):
    device_filter: PciId | list[PciId] | None = Field(default=None, alias="device-filter")
    devices: Literal["all"] | list[Annotated[int, Field(ge=0)]]
    mig_enabled: bool = Field(alias="mig-enabled")
    mig_devices: dict[ProfileName, Annotated[int, Field(ge=1, le=7)]] | None = Field(default=None, alias="mig-devices")

    @model_validator(mode="after")
    def _devices_need_mig(self) -> MigPartedEntry:
        if not self.mig_enabled and self.mig_devices:
            raise ValueError("mig-devices given with mig-enabled: false")
        if self.mig_enabled and self.mig_devices is None:
            raise ValueError("mig-enabled: true needs mig-devices (use {} for MIG mode with no instances)")
        return self


class MigPartedConfig(_Strict):
    version: Literal["v1"]
    mig_configs: dict[ConfigName, Annotated[list[MigPartedEntry], Field(min_length=1)]] = Field(alias="mig-configs")


# --- (b) NVIDIA k8s device plugin ---------------------------------------------------------------------------------


class Flags(_Strict):
    migStrategy: Literal["none", "single", "mixed"]  # noqa: N815 - the device plugin's key


class SharedResource(_Strict):
    name: Annotated[str, StringConstraints(pattern=r"^nvidia\.com/(gpu|mig-[1-8]g\.\d+gb(\+me)?)$")]
    rename: str | None = None
    replicas: Annotated[int, Field(ge=2)]


class TimeSlicing(_Strict):
    renameByDefault: bool = False  # noqa: N815
    failRequestsGreaterThanOne: bool = False  # noqa: N815
    resources: Annotated[list[SharedResource], Field(min_length=1)]


class Mps(_Strict):
    renameByDefault: bool = False  # noqa: N815
    resources: Annotated[list[SharedResource], Field(min_length=1)]

    @field_validator("resources")
    @classmethod
    def _only_gpu(cls, resources: list[SharedResource]) -> list[SharedResource]:
        if any(r.name != "nvidia.com/gpu" for r in resources):
            raise ValueError("MPS sharing supports only nvidia.com/gpu")
        return resources


class Sharing(_Strict):
    timeSlicing: TimeSlicing | None = None  # noqa: N815
    mps: Mps | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Sharing:
        if (self.timeSlicing is None) == (self.mps is None):
            raise ValueError("sharing needs exactly one of timeSlicing or mps")
        return self


class DevicePluginConfig(_Strict):
    version: Literal["v1"]
    flags: Flags | None = None
    sharing: Sharing | None = None

    @model_validator(mode="after")
    def _mps_without_mig(self) -> DevicePluginConfig:
        mps = self.sharing is not None and self.sharing.mps is not None
        if mps and self.flags is not None and self.flags.migStrategy != "none":
            raise ValueError("MPS sharing needs migStrategy none (it shares whole GPUs)")
        return self


class ObjectMeta(_Strict):
    name: ConfigName
    namespace: ConfigName
    labels: dict[str, LabelValue] = {}


class DevicePluginConfigMap(_Strict):
    """The ConfigMap the GPU Operator points at (devicePlugin.config.name); one key per sharing setup, and the key
    ``devicePlugin.config.default`` names for unlabelled nodes (cmd/config-manager/main.go fails without one)."""

    apiVersion: Literal["v1"]  # noqa: N815
    kind: Literal["ConfigMap"]
    metadata: ObjectMeta
    data: dict[Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=63)], str]

    @field_validator("data")
    @classmethod
    def _has_default(cls, data: dict[str, str]) -> dict[str, str]:
        if "default" not in data:
            raise ValueError("the device plugin ConfigMap needs a 'default' key for nodes without a config label")
        return data


class MigPartedConfigMap(_Strict):
    """The ConfigMap the GPU Operator's MIG manager reads (migManager.config.name): the whole file under
    ``config.yaml`` (deployments/gpu-operator/values.yaml, "ConfigMap MUST have a key named config.yaml")."""

    apiVersion: Literal["v1"]  # noqa: N815
    kind: Literal["ConfigMap"]
    metadata: ObjectMeta
    data: dict[Literal["config.yaml"], str]

    @field_validator("data")
    @classmethod
    def _parses(cls, data: dict[str, str]) -> dict[str, str]:
        if "config.yaml" not in data:
            raise ValueError("the MIG manager's ConfigMap needs the key config.yaml")
        MigPartedConfig.model_validate(yaml.load(data["config.yaml"], Loader=_SafeLoader))
        return data


# --- (c) per-workload resource requests ---------------------------------------------------------------------------


class EnvVar(_Strict):
    name: Literal["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"]
    value: str

    @model_validator(mode="after")
    def _value_format(self) -> EnvVar:
        if self.name == "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE":
            if not self.value.isdigit() or not 1 <= int(self.value) <= 100:
                raise ValueError(f"{self.name} must be an integer 1..100, not {self.value!r}")
        elif not re.match(MPS_MEM_LIMIT, self.value):
            raise ValueError(f"{self.name} must look like '0=8G' or '0=20480M', not {self.value!r}")
        return self


GpuResource = Annotated[str, StringConstraints(pattern=r"^nvidia\.com/(gpu|mig-[1-8]g\.\d+gb(\+me)?|gpu-\d+gb)$")]


class ContainerResources(_Strict):
    limits: dict[GpuResource, Annotated[int, Field(ge=1)]]

    @field_validator("limits")
    @classmethod
    def _one_gpu_resource(cls, limits: dict[str, int]) -> dict[str, int]:
        if len(limits) != 1:
            raise ValueError("exactly one GPU resource per workload")
        return limits


class WorkloadRequest(_Strict):
    workload: str
    namespace: str
    gpu_model: str
    mode: Literal["mig", "mps", "timeslice", "exclusive"]
    profile: ProfileName | None = None
    memory_limit_bytes: Annotated[int, Field(ge=0)]
    nodes: list[str] | None = None  # the nodes the plan puts it on (rollout.md)
    nodeSelector: dict[str, LabelValue]  # noqa: N815
    resources: ContainerResources
    env: list[EnvVar] | None = None  # MPS only

    @model_validator(mode="after")
    def _consistent(self) -> WorkloadRequest:
        (resource,) = self.resources.limits
        if self.mode == "mig":
            if self.profile is None or resource != f"nvidia.com/mig-{self.profile}":
                raise ValueError(f"{self.workload}: a MIG workload requests nvidia.com/mig-<its profile>")
        elif resource != "nvidia.com/gpu":
            raise ValueError(f"{self.workload}: a {self.mode} workload requests nvidia.com/gpu")
        if (self.mode == "mps") != bool(self.env):
            raise ValueError(f"{self.workload}: MPS limits (env) go with MPS workloads only")
        return self


class ResourceRequests(_Strict):
    version: Literal["v1"]
    workloads: list[WorkloadRequest]


# --- (d) nebuly nos -----------------------------------------------------------------------------------------------

NOS_PARTITIONING = "nos.nebuly.com/gpu-partitioning"
NOS_SPEC_ANNOTATION = r"^nos\.nebuly\.com/spec-gpu-\d+-[1-8]g\.\d+gb$"
NosProfile = Annotated[str, StringConstraints(pattern=r"^\d+g\.\d+gb$")]  # nos's RegexNvidiaMigProfile, no +me


class NosWorkload(_Strict):
    workload: str
    namespace: str
    gpu_model: str
    partitioning: Literal["mig", "mps"]
    resources: ContainerResources
    hostIPC: bool = False  # noqa: N815 - nos MPS pods need hostIPC: true

    @model_validator(mode="after")
    def _request_matches(self) -> NosWorkload:
        (resource,) = self.resources.limits
        if self.partitioning == "mig" and not resource.startswith("nvidia.com/mig-"):
            raise ValueError(f"{self.workload}: nos MIG pods request nvidia.com/mig-<profile>")
        if self.partitioning == "mps" and (not re.match(r"^nvidia\.com/gpu-\d+gb$", resource) or not self.hostIPC):
            raise ValueError(f"{self.workload}: nos MPS pods request nvidia.com/gpu-<N>gb and need hostIPC: true")
        return self


class NosGeometry(_Strict):
    gpu_model: str
    gpus: Annotated[int, Field(ge=1)]
    migDevices: dict[NosProfile, Annotated[int, Field(ge=1)]]  # noqa: N815
    specAnnotations: dict[Annotated[str, StringConstraints(pattern=NOS_SPEC_ANNOTATION)], str]  # noqa: N815


class NosNodeLabels(_Strict):
    gpu_model: str
    labels: dict[str, Literal["mig", "mps"]]


class NosKnownGeometries(_Strict):
    """One entry of nos's Helm value ``gpuPartitioner.knownMigGeometries`` (helm-charts/nos/values.yaml): models
    are ``nvidia.com/gpu.product`` values (pkg/gpu/util.go, GetModel)."""

    models: Annotated[list[LabelValue], Field(min_length=1)]
    allowedGeometries: Annotated[list[dict[NosProfile, Annotated[int, Field(ge=1)]]], Field(min_length=1)]  # noqa: N815


class NosPartitionerValues(_Strict):
    knownMigGeometries: Annotated[list[NosKnownGeometries], Field(min_length=1)]  # noqa: N815


class NosHelmValues(_Strict):
    gpuPartitioner: NosPartitionerValues  # noqa: N815


class NosNotServed(_Strict):
    workload: str
    gpu_model: str
    reason: str


class NosPlan(_Strict):
    version: Literal["v1"]
    nodeLabels: list[NosNodeLabels]  # noqa: N815
    workloads: list[NosWorkload]
    geometries: list[NosGeometry]
    helmValues: NosHelmValues | None = None  # noqa: N815 - the knownMigGeometries the MIG workloads need
    notServed: list[NosNotServed] = []  # noqa: N815 - MIG or MPS workloads nos cannot serve, with why
    notManaged: list[str]  # noqa: N815 - time-sliced and exclusive workloads: nos handles only MIG and MPS


# --- (e) gpu-operator Helm values ---------------------------------------------------------------------------------


class OperatorMig(_Strict):
    # "" lets each node's device-plugin config decide (controllers/object_controls.go, applyMIGConfiguration)
    strategy: Literal["", "none", "single", "mixed"]


class OperatorConfigRef(_Strict):
    name: ConfigName
    default: ConfigName
    create: Literal[False]  # the ConfigMaps are slicewise's files, applied with kubectl


class OperatorComponent(_Strict):
    config: OperatorConfigRef


class OperatorValues(_Strict):
    """The part of the gpu-operator chart's values.yaml that slicewise sets."""

    mig: OperatorMig
    migManager: OperatorComponent  # noqa: N815
    devicePlugin: OperatorComponent  # noqa: N815


# --- (f) the rollout plan -----------------------------------------------------------------------------------------


class Capacity(_Strict):
    gpu_model: str
    schedulable: Annotated[int, Field(ge=0)]  # GPUs on nodes not cordoned while the step runs
    total: Annotated[int, Field(ge=0)]


class RolloutStep(_Strict):
    step: Annotated[int, Field(ge=1)]
    node: str
    planned_node: str | None  # the plan's node slot it becomes (None: released)
    gpu_model: str
    action: Literal["label", "reconfigure", "add", "release"]
    set_labels: dict[str, LabelValue]  # nvidia.com/mig.config and nvidia.com/device-plugin.config
    expect_labels: dict[str, LabelValue]  # what GFD and the MIG manager show once the node is done
    expect_resources: dict[str, Annotated[int, Field(ge=0)]]
    evicts: list[str]  # workloads whose pods the drain evicts
    arrives: list[str]  # workloads the plan puts here that run elsewhere now
    apply_requests: list[str]  # workloads whose every planned node is ready after this step
    capacity: list[Capacity]
    commands: list[str]


class RollbackStep(_Strict):
    node: str
    commands: list[str]


class Rollout(_Strict):
    version: Literal["v1"]
    inventory: Literal["history", "none"]  # where the current nodes came from
    preflight: list[str]
    steps: list[RolloutStep]
    untouched: list[str]  # nodes the rollout leaves alone, with why
    finish: list[str]  # after the last step
    rollback: list[RollbackStep]  # newest first: undo the steps done, in reverse
    rollback_finish: list[str]  # after the last rollback step

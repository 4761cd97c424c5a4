"""The NVIDIA mig-parted config, as a file (``nvidia-mig-parted apply -f``) and as the ConfigMap the GPU Operator's
MIG manager reads.

Under the operator the MIG manager reads one ConfigMap whose key ``config.yaml`` holds the whole file, named by the
Helm value ``migManager.config.name`` (NVIDIA/gpu-operator ``deployments/gpu-operator/values.yaml``,
``migManager.config``: "ConfigMap MUST have a key named config.yaml"); ``migManager.config.default`` names the
config unlabelled nodes take, ``all-disabled``, which the file always has. The configs themselves come from the
node layout (nodes.py): one per planned geometry, one per mixed node layout.
"""

from __future__ import annotations

from collections import defaultdict

from advisor.configs.naming import (
    MIG_CONFIG_LABEL,
    MIG_PARTED_CONFIGMAP,
    OPERATOR_NAMESPACE,
)
from advisor.configs.nodes import NodeLayout
from advisor.configs.schema import MigPartedConfig, MigPartedConfigMap, ObjectMeta
from advisor.configs.yaml_text import dump


def _body(layout: NodeLayout) -> str:
    config = MigPartedConfig.model_validate({"version": "v1", "mig-configs": layout.mig_configs})
    return dump(config.model_dump(by_alias=True, exclude_none=True))


def _takers(layout: NodeLayout) -> list[str]:
    takers: dict[str, list[str]] = defaultdict(list)
    for n in layout.nodes:
        takers[n.mig_config].append(n.slot_name)
    return [f"#   {name}: {', '.join(nodes)}" for name, nodes in takers.items()]


def mig_parted_config(layout: NodeLayout) -> str:
    header = [
        "# NVIDIA mig-parted config written by slicewise: one named config per MIG geometry in the plan, and one per",
        "# node layout (devices mapped to geometries) where a node's GPUs differ. Each MIG entry names every PCI id",
        "# of its GPU family in device-filter, so SXM, PCIe and NVL variants all match.",
        "# By hand on a node: nvidia-mig-parted apply -f mig-parted.yaml -c <name> (check: nvidia-mig-parted assert)",
        "# GPU Operator: use mig-parted-configmap.yaml (the same file under the key config.yaml) and rollout.md.",
        "# Reconfiguring MIG needs the GPU idle: drain the node's GPU pods first.",
        "# Planned nodes per config (see rollout.md for the node each slot is):",
        *_takers(layout),
    ]
    return "\n".join(header) + "\n" + _body(layout)


def mig_parted_configmap(layout: NodeLayout) -> str:
    configmap = MigPartedConfigMap(
        apiVersion="v1",
        kind="ConfigMap",
        metadata=ObjectMeta(
            name=MIG_PARTED_CONFIGMAP,
            namespace=OPERATOR_NAMESPACE,
            labels={"app.kubernetes.io/managed-by": "slicewise"},
        ),
        data={"config.yaml": _body(layout)},  # MIG_PARTED_KEY
    )
    header = [
        "# The mig-parted config for the GPU Operator's MIG manager (key config.yaml, as it requires).",
        "# kubectl apply -f mig-parted-configmap.yaml; Helm values: gpu-operator-values.yaml",
        f"#   (migManager.config.name={MIG_PARTED_CONFIGMAP}, migManager.config.default=all-disabled);",
        f"# then each node picks its config with {MIG_CONFIG_LABEL}=<name> (rollout.md says which, node by node).",
        *_takers(layout),
    ]
    return dump(configmap.model_dump(), header)

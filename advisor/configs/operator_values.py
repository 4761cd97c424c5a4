"""Helm values for the NVIDIA gpu-operator chart that make the operator use slicewise's two ConfigMaps.

From NVIDIA/gpu-operator @a22dbf6:
- ``migManager.config.name`` / ``.default`` / ``.create`` (``deployments/gpu-operator/values.yaml``): an existing
  ConfigMap with the key ``config.yaml``; ``default`` is the config of nodes without ``nvidia.com/mig.config``.
- ``devicePlugin.config.name`` / ``.default`` / ``.create``: an existing ConfigMap, one key per named config, and
  the key of nodes without ``nvidia.com/device-plugin.config``. GFD is given the same config
  (``controllers/object_controls.go``: ``handleDevicePluginConfig`` in ``TransformGPUDiscoveryPlugin``), so its
  labels follow each node's key.
- ``mig.strategy: ""``: ``templates/clusterpolicy.yaml`` renders ``strategy`` only when set, and
  ``applyMIGConfiguration`` then sets no ``MIG_STRATEGY`` ("let plugin decide this per node"), so each node's
  config decides: ``mixed`` on MIG nodes, ``none`` on MPS nodes. The chart's default ``single`` would override
  every key, and ``mixed`` for all would make every MPS key fail (the plugin refuses MPS with mixed).
"""

from __future__ import annotations

from advisor.configs.naming import (
    ALL_DISABLED,
    DEFAULT_KEY,
    DEVICE_PLUGIN_CONFIGMAP,
    MIG_PARTED_CONFIGMAP,
    OPERATOR_NAMESPACE,
)
from advisor.configs.schema import OperatorValues
from advisor.configs.yaml_text import dump


def operator_values() -> str:
    values = OperatorValues.model_validate(
        {
            "mig": {"strategy": ""},
            "migManager": {"config": {"name": MIG_PARTED_CONFIGMAP, "default": ALL_DISABLED, "create": False}},
            "devicePlugin": {"config": {"name": DEVICE_PLUGIN_CONFIGMAP, "default": DEFAULT_KEY, "create": False}},
        }
    )
    header = [
        "# Helm values for the NVIDIA gpu-operator chart, to go with mig-parted-configmap.yaml and device-plugin.yaml",
        f"# (both in namespace {OPERATOR_NAMESPACE}; apply them first):",
        f"#   helm upgrade gpu-operator nvidia/gpu-operator -n {OPERATOR_NAMESPACE} --reuse-values \\",
        "#     -f gpu-operator-values.yaml",
        "# mig.strategy is empty on purpose: the operator then sets no MIG_STRATEGY, and each node's device-plugin",
        "# config decides (mixed on MIG nodes, none on time-sliced and MPS nodes; MPS is refused under mixed).",
    ]
    return dump(values.model_dump(), header)

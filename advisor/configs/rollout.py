"""The rollout plan: node by node, in an order that keeps capacity, with what moves and how to undo it.

Each planned node is matched to a node that runs now (inventory.py), preferring one whose GPUs already have the
planned setup, then the one that already runs most of its planned workloads. Then, per node:
- ``label``: its GPUs keep their setup (MIG profiles, or whole GPUs time-sliced or not; never MPS): set
  ``nvidia.com/mig.config`` and ``nvidia.com/device-plugin.config`` and nothing else. The MIG manager checks
  whether the named config is already applied and, if it is, reports success without touching the GPUs
  (NVIDIA/mig-parted ``deployments/container/reconfigure-mig.sh``: "Checking if the selected MIG config is
  currently applied"), so the node is not drained.
- ``reconfigure``: cordon, drain (reconfiguring MIG needs every process on the GPU stopped), label, wait for
  ``nvidia.com/mig.config.state=success`` and for GFD's product label, uncordon.
- ``add``: the plan needs more nodes of a model than run now: join one, then label it.
- ``release``: a node the plan no longer needs: drained last, after every workload has its planned place.
Label-only and new nodes go first (they add or keep capacity), then reconfigured nodes, fewest pods evicted first,
then released nodes. A workload's new requests (resource-requests.yaml) are applied once every node the plan puts
it on is ready, so its new pods always have somewhere to go. Nodes of models the plan does not change, and nodes
running workloads the plan could not place, are left alone.
Without an inventory (a Prometheus window past the reader's row cap), each planned node is named by its slot
and every step reconfigures.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.configs.gfd import labels_after, resources_after
from advisor.configs.inventory import NodeNow, planned_setup
from advisor.configs.naming import (
    ALL_DISABLED,
    DEFAULT_KEY,
    DEVICE_PLUGIN_LABEL,
    MIG_CONFIG_LABEL,
    MIG_CONFIG_STATE_LABEL,
    OPERATOR_NAMESPACE,
    PRODUCT_LABEL,
)
from advisor.configs.nodes import NodeLayout, PlannedNode
from advisor.configs.schema import Capacity, RollbackStep, Rollout, RolloutStep
from advisor.model import Unplaced
from slicewise.catalogue import find_model

WAIT = "15m"
LABELS_BEFORE = "slicewise-labels-before.txt"


@dataclass(frozen=True)
class Placed:
    """A planned node and the node that becomes it."""

    planned: PlannedNode
    name: str
    now: NodeNow | None  # None: a node to add, or no inventory


def _same_gpus(p: PlannedNode, n: NodeNow) -> bool:
    """Whether the node's GPUs already run the planned setup, so that labelling it changes nothing on them. Never
    for MPS: a history does not show the replicas, and a new MPS config restarts the server its clients use."""
    planned = Counter(planned_setup(g) for g in p.gpus if g.workloads)
    return planned == n.setups and "mps" not in planned


def place_nodes(
    layout: NodeLayout, inventory: Sequence[NodeNow] | None, kept: frozenset[str] = frozenset()
) -> tuple[list[Placed], list[NodeNow]]:
    """Match planned nodes to the nodes that run now; returns the matches and the nodes left over. A node running a
    workload the plan keeps as it runs (``kept``: unplaced) is never taken."""
    if inventory is None:
        return [Placed(p, p.slot_name, None) for p in layout.nodes], []
    placed: list[Placed] = []
    left: list[NodeNow] = [n for n in inventory if kept & set(n.workloads)]
    by_model: dict[str, list[NodeNow]] = defaultdict(list)
    for n in inventory:
        if not kept & set(n.workloads):
            by_model[n.gpu_model].append(n)
    planned_by_model: dict[str, list[PlannedNode]] = defaultdict(list)
    for p in layout.nodes:
        planned_by_model[p.gpu_model].append(p)
    for gpu_model in sorted(set(by_model) | set(planned_by_model)):
        free = list(by_model.get(gpu_model, []))
        pairs = sorted(
            (
                (not _same_gpus(p, n), -len(set(p.workloads) & set(n.workloads)), p.slot, n.name)
                for p in planned_by_model.get(gpu_model, [])
                for n in free
            ),
        )
        taken_p: set[int] = set()
        taken_n: set[str] = set()
        slots = {p.slot: p for p in planned_by_model.get(gpu_model, [])}
        nows = {n.name: n for n in free}
        for _, _, slot, name in pairs:
            if slot in taken_p or name in taken_n:
                continue
            taken_p.add(slot)
            taken_n.add(name)
            placed.append(Placed(slots[slot], name, nows[name]))
        for p in planned_by_model.get(gpu_model, []):
            if p.slot not in taken_p:
                placed.append(Placed(p, p.slot_name, None))
        left.extend(n for n in free if n.name not in taken_n)
    return placed, left


def _q(s: str) -> str:
    return shlex.quote(s)


def _jsonpath_label(label: str) -> str:
    return "{.metadata.labels." + label.replace(".", "\\.") + "}"


def _label_cmd(node: str, labels: dict[str, str]) -> str:
    parts = " ".join(_q(f"{k}={v}") for k, v in labels.items())
    return f"kubectl label node {_q(node)} {parts} --overwrite"


def _wait(node: str, label: str, value: str) -> str:
    return f"kubectl wait node/{_q(node)} --for=jsonpath={_q(_jsonpath_label(label))}={_q(value)} --timeout={WAIT}"


def _is_mig_count(label: str) -> bool:
    """``nvidia.com/mig-<profile>.count`` (internal/lm/mig-strategy.go); a ``+me`` profile's is no valid label key."""
    return label.startswith("nvidia.com/mig-") and label.endswith(".count") and "+" not in label


def _drain(node: str) -> list[str]:
    return [
        f"kubectl cordon {_q(node)}",
        f"kubectl drain {_q(node)} --ignore-daemonsets --delete-emptydir-data --timeout={WAIT}",
    ]


def _apply(workloads: Sequence[str]) -> list[str]:
    if not workloads:
        return []
    return [f"# now give these workloads their entries of resource-requests.yaml: {', '.join(workloads)}"]


def build_rollout(
    layout: NodeLayout, inventory: Sequence[NodeNow] | None, unplaced: Sequence[Unplaced] = ()
) -> tuple[Rollout, list[Placed]]:
    kept = frozenset(u.workload for u in unplaced)
    placed, left = place_nodes(layout, inventory, kept)
    release: list[NodeNow] = []
    untouched: list[str] = []
    for n in left:
        if find_model(n.gpu_model) is None:
            untouched.append(f"{n.name}: its {n.gpu_model} GPUs are not in the catalogue, so the plan keeps them")
        elif kept & set(n.workloads):
            untouched.append(f"{n.name}: runs {', '.join(sorted(kept & set(n.workloads)))}, kept as it runs")
        else:
            release.append(n)
    # capacity: GPUs per model on schedulable nodes
    total: dict[str, int] = defaultdict(int)
    for n in inventory or []:
        total[n.gpu_model] += len(n.gpus)
    if inventory is None:
        for p in layout.nodes:
            total[p.gpu_model] += p.gpus_per_node
    size = {n.name: len(n.gpus) for n in inventory or []}

    def kind(pl: Placed) -> str:
        if pl.now is None:
            return "reconfigure" if inventory is None else "add"
        return "label" if _same_gpus(pl.planned, pl.now) else "reconfigure"

    order = {"add": 0, "label": 1, "reconfigure": 2}
    ordered = sorted(placed, key=lambda pl: (order[kind(pl)], len(pl.now.workloads) if pl.now else 0, pl.name))
    planned_on: dict[str, set[str]] = defaultdict(set)
    for pl in placed:
        for w in pl.planned.workloads:
            planned_on[w].add(pl.name)
    ready: set[str] = set()
    applied: set[str] = set()
    steps: list[RolloutStep] = []
    rollback: list[RollbackStep] = []

    def capacity(gpu_model: str, drained: int) -> list[Capacity]:
        return [Capacity(gpu_model=gpu_model, schedulable=max(0, total[gpu_model] - drained), total=total[gpu_model])]

    for pl in ordered:
        action = kind(pl)
        p, name = pl.planned, pl.name
        set_labels = {MIG_CONFIG_LABEL: p.mig_config, DEVICE_PLUGIN_LABEL: p.device_plugin_config}
        expect = labels_after(p)
        now = set(pl.now.workloads) if pl.now else set()
        evicts = sorted(now) if action == "reconfigure" else []
        commands: list[str] = []
        if action == "add":
            commands.append(f"# join a node with {p.gpus_per_node} x {p.gpu_model} to the cluster as {name}")
            total[p.gpu_model] += p.gpus_per_node
            size[name] = p.gpus_per_node
        if action == "reconfigure":
            commands += _drain(name)
        commands.append(_label_cmd(name, set_labels))
        if action == "label":
            commands.append(
                f"# if {MIG_CONFIG_STATE_LABEL} turns pending instead of success, the GPUs differ from what the history"
                " showed: cordon and drain the node before the MIG manager goes on"
            )
        commands += [
            _wait(name, MIG_CONFIG_STATE_LABEL, "success"),
            # GFD's labels for the new config: the product (-SHARED when replicated) and each MIG profile's count
            *(_wait(name, k, v) for k, v in expect.items() if k == PRODUCT_LABEL or _is_mig_count(k)),
        ]
        if action == "reconfigure":
            commands.append(f"kubectl uncordon {_q(name)}")
        ready.add(name)
        apply = sorted(w for w, nodes in planned_on.items() if w not in applied and nodes <= ready)
        applied.update(apply)
        commands += _apply(apply)
        drained = size.get(name, p.gpus_per_node) if action == "reconfigure" else 0
        steps.append(
            RolloutStep(
                step=len(steps) + 1,
                node=name,
                planned_node=p.slot_name,
                gpu_model=p.gpu_model,
                action=action,  # type: ignore[arg-type]
                set_labels=set_labels,
                expect_labels=expect,
                expect_resources=resources_after(p),
                evicts=evicts,
                arrives=sorted(set(p.workloads) - now),
                apply_requests=apply,
                capacity=capacity(p.gpu_model, drained),
                commands=commands,
            )
        )
        rollback.append(_undo(name, action, pl.now))
    for n in sorted(release, key=lambda n: n.name):
        commands = _drain(n.name)
        commands.append(_label_cmd(n.name, {MIG_CONFIG_LABEL: ALL_DISABLED, DEVICE_PLUGIN_LABEL: DEFAULT_KEY}))
        commands.append(f"# {n.name} is no longer needed: keep it cordoned as a spare, or remove it from the pool")
        steps.append(
            RolloutStep(
                step=len(steps) + 1,
                node=n.name,
                planned_node=None,
                gpu_model=n.gpu_model,
                action="release",
                set_labels={MIG_CONFIG_LABEL: ALL_DISABLED, DEVICE_PLUGIN_LABEL: DEFAULT_KEY},
                expect_labels={MIG_CONFIG_LABEL: ALL_DISABLED, DEVICE_PLUGIN_LABEL: DEFAULT_KEY},
                expect_resources={},
                evicts=list(n.workloads),
                arrives=[],
                apply_requests=[],
                capacity=capacity(n.gpu_model, len(n.gpus)),
                commands=commands,
            )
        )
        total[n.gpu_model] -= len(n.gpus)
        rollback.append(RollbackStep(node=n.name, commands=[f"kubectl uncordon {_q(n.name)}"]))
    rollout = Rollout(
        version="v1",
        inventory="none" if inventory is None else "history",
        preflight=_preflight(),
        steps=steps,
        untouched=untouched,
        finish=[
            "kubectl get pods -A --field-selector=status.phase=Pending  # nothing planned should be Pending",
        ],
        rollback=list(reversed(rollback)),
        rollback_finish=[
            "# undo the workloads' template changes: kubectl -n <namespace> rollout undo <kind>/<owner>",
            f"helm rollback gpu-operator -n {OPERATOR_NAMESPACE}  # the values before gpu-operator-values.yaml",
            "kubectl delete -f mig-parted-configmap.yaml -f device-plugin.yaml",
        ],
    )
    return rollout, placed


def _undo(name: str, action: str, now: NodeNow | None) -> RollbackStep:
    before = (
        f"# restore {name}'s {MIG_CONFIG_LABEL} and {DEVICE_PLUGIN_LABEL} as {LABELS_BEFORE} recorded them"
        " (kubectl label node <node> <label>- removes one it did not have)"
    )
    if action == "add":
        return RollbackStep(node=name, commands=[*_drain(name), f"# remove {name} from the cluster"])
    if action == "label":
        return RollbackStep(node=name, commands=[before])
    return RollbackStep(
        node=name,
        commands=[
            *_drain(name),
            before,
            _wait(name, MIG_CONFIG_STATE_LABEL, "success"),
            f"kubectl uncordon {_q(name)}",
        ],
    )


def _preflight() -> list[str]:
    columns = ",".join((MIG_CONFIG_LABEL, DEVICE_PLUGIN_LABEL, PRODUCT_LABEL))
    return [
        f"kubectl get nodes -L {columns} > {LABELS_BEFORE}  # for the rollback",
        "# every node's nvidia.com/mig.config must be a config of mig-parted-configmap.yaml and every"
        " nvidia.com/device-plugin.config a key of device-plugin.yaml (or absent): relabel any other first",
        "kubectl apply -f mig-parted-configmap.yaml -f device-plugin.yaml",
        f"helm upgrade gpu-operator nvidia/gpu-operator -n {OPERATOR_NAMESPACE} --reuse-values"
        " -f gpu-operator-values.yaml",
    ]


def rollout_json(rollout: Rollout) -> str:
    return json.dumps(rollout.model_dump(), indent=2) + "\n"


def rollout_markdown(rollout: Rollout) -> str:
    lines = [
        "# Rollout plan",
        "",
        "Written by slicewise with the configs beside it. Run the steps in order; each one keeps the capacity shown",
        "(GPUs on nodes that take pods while it runs). A `label` step changes no GPU and evicts nothing; a",
        "`reconfigure` step drains the node first. Apply a workload's new requests (resource-requests.yaml) at the",
        "step that lists it, not before: its new pods need the nodes the plan puts them on.",
        "",
        "## Before the first step",
        "",
        "```sh",
        *rollout.preflight,
        "```",
        "",
        "## Steps",
        "",
        "| step | node | becomes | action | evicts | arrive | capacity during the step |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in rollout.steps:
        cap = ", ".join(f"{c.schedulable} of {c.total} {c.gpu_model}" for c in s.capacity)
        lines.append(
            f"| {s.step} | `{s.node}` | {s.planned_node or 'released'} | {s.action} | {len(s.evicts)} |"
            f" {len(s.arrives)} | {cap} |"
        )
    for s in rollout.steps:
        lines += ["", f"### Step {s.step}: {s.action} `{s.node}` ({s.gpu_model})", ""]
        if s.evicts:
            lines.append(f"Evicts: {', '.join(s.evicts)}.")
        elif s.action == "reconfigure" and rollout.inventory == "none":
            lines.append("Evicts whatever runs on the node now (no inventory of the nodes was given).")
        if s.arrives:
            verb = "Runs here after the change" if rollout.inventory == "none" else "The plan moves here"
            lines.append(f"{verb}: {', '.join(s.arrives)}.")
        if s.expect_resources:
            lines.append("Offers once done: " + ", ".join(f"`{k}` {v}" for k, v in s.expect_resources.items()) + ".")
        lines += ["", "```sh", *s.commands, "```"]
    if rollout.untouched:
        lines += ["", "## Left alone", "", *(f"- {u}" for u in rollout.untouched)]
    lines += ["", "## After the last step", "", "```sh", *rollout.finish, "```"]
    lines += ["", "## Rollback", "", "Undo the steps done, newest first:", ""]
    for r in rollout.rollback:
        lines += [f"`{r.node}`:", "", "```sh", *r.commands, "```", ""]
    lines += ["Then:", "", "```sh", *rollout.rollback_finish, "```", ""]
    return "\n".join(lines)

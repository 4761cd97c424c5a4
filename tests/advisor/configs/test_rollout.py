"""The rollout plan: node by node, capacity kept, unchanged nodes only labelled, every workload given its requests
once its nodes are ready, and a rollback that undoes the steps in reverse."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pandas as pd
import pytest
import yaml

from advisor.configs import build_configs, inventory_from_history
from advisor.configs.inventory import GpuNow, NodeNow, planned_setup
from advisor.configs.nodes import PlannedNode, plan_nodes
from advisor.configs.schema import Rollout
from advisor.model import Mode, Unplaced
from tests.advisor.configs.conftest import Planned, make_plan
from tests.advisor.plan.fleet_fixtures import A100, H100


def _as_running(name: str, node: PlannedNode) -> NodeNow:
    """A node that runs today exactly what the plan puts on ``node``."""
    return NodeNow(
        name,
        node.gpu_model,
        tuple(GpuNow(f"{name}-gpu{g.device_index}", planned_setup(g), g.workloads) for g in node.gpus),
    )


@pytest.fixture(scope="module")
def with_inventory() -> tuple[list[PlannedNode], list[NodeNow], Rollout, object]:
    plan, workloads = make_plan()
    nodes = list(plan_nodes(plan).nodes)
    h100 = [n for n in nodes if n.gpu_model == H100]
    mig_h100 = next(n for n in h100 if n.mode == Mode.MIG)
    ts_h100 = next(n for n in h100 if n.mode == Mode.TIMESLICE)
    mps_h100 = next(n for n in h100 if n.mode == Mode.MPS)
    everyone = sorted({w for n in h100 for w in n.workloads})
    inventory = [
        _as_running("gpu-keep", mig_h100),  # already as planned: label only
        # runs the time-sliced node's workloads as MPS today: must be drained and reconfigured
        NodeNow("gpu-change", H100, tuple(GpuNow(f"c{i}", "mps", (w,)) for i, w in enumerate(ts_h100.workloads))),
        _as_running("gpu-mps", mps_h100),  # as planned, but MPS replicas do not show in a history: reconfigured
        # two more H100 nodes: the plan needs one more, so one is left over and released
        *(NodeNow(f"gpu-old-{i}", H100, (GpuNow(f"o{i}", "whole", tuple(everyone[i::3])),)) for i in range(2)),
        # runs a workload the plan keeps as it runs: never taken, though it shares an H100 with planned ones
        NodeNow("gpu-unplaced", H100, (GpuNow("u0", "whole", ("legacy/huge-0",)), GpuNow("u1", "mps", everyone[:4]))),
        NodeNow("gpu-t4", "Tesla T4", (GpuNow("t0", "whole", ("misc/t4-0",)),)),
    ]
    unplaced = (*plan.unplaced, Unplaced("legacy/huge-0", H100, "larger than any GPU"))
    plan = type(plan)(**{**plan.__dict__, "unplaced": unplaced})
    configs = build_configs(plan, workloads, inventory)
    return nodes, inventory, Rollout.model_validate(json.loads(configs.rollout_json)), configs


def test_a_node_already_as_planned_is_only_labelled(with_inventory) -> None:
    _, _, rollout, _ = with_inventory
    (keep,) = [s for s in rollout.steps if s.node == "gpu-keep"]
    assert keep.action == "label" and not keep.evicts
    assert not any(c.startswith(("kubectl cordon", "kubectl drain")) for c in keep.commands)
    assert keep.commands[0].startswith("kubectl label node gpu-keep nvidia.com/mig.config=")
    # done when GFD shows each MIG profile's count (internal/lm/mig-strategy.go: nvidia.com/mig-<profile>.count)
    counts = {k: v for k, v in keep.expect_labels.items() if k.endswith(".count")}
    offered = {f"{k}.count": str(n) for k, n in keep.expect_resources.items() if k.startswith("nvidia.com/mig-")}
    assert counts and counts == offered
    for k, v in counts.items():
        jsonpath = "{.metadata.labels." + k.replace(".", "\\.") + "}"
        assert f"kubectl wait node/gpu-keep --for=jsonpath='{jsonpath}'={v} --timeout=15m" in keep.commands


def test_an_mps_node_is_drained_even_when_it_looks_unchanged(with_inventory) -> None:
    _, _, rollout, _ = with_inventory
    (mps,) = [s for s in rollout.steps if s.node == "gpu-mps"]
    assert mps.action == "reconfigure" and mps.commands[0] == "kubectl cordon gpu-mps"
    assert mps.set_labels["nvidia.com/device-plugin.config"].startswith("h100-80gb-mps-")


def test_a_changed_node_is_drained_labelled_waited_for_and_uncordoned_in_that_order(with_inventory) -> None:
    _, _, rollout, _ = with_inventory
    (change,) = [s for s in rollout.steps if s.node == "gpu-change"]
    assert change.action == "reconfigure"
    cmds = change.commands
    order = [
        next(i for i, c in enumerate(cmds) if c.startswith(prefix))
        for prefix in (
            "kubectl cordon gpu-change",
            "kubectl drain gpu-change --ignore-daemonsets",
            "kubectl label node gpu-change",
            "kubectl wait node/gpu-change --for=jsonpath='{.metadata.labels.nvidia\\.com/mig\\.config\\.state}'=succ",
            "kubectl wait node/gpu-change --for=jsonpath='{.metadata.labels.nvidia\\.com/gpu\\.product}'=",
            "kubectl uncordon gpu-change",
        )
    ]
    assert order == sorted(order)
    label = cmds[order[2]]
    assert "nvidia.com/device-plugin.config=h100-80gb-ts-" in label and "nvidia.com/mig.config=all-disabled" in label
    assert change.expect_labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-SHARED"


def test_every_planned_node_is_one_step_and_every_node_now_is_accounted_for(with_inventory) -> None:
    planned_nodes, inventory, rollout, _ = with_inventory
    planned_steps = [s for s in rollout.steps if s.planned_node is not None]
    assert sorted(s.planned_node for s in planned_steps) == sorted(n.slot_name for n in planned_nodes)
    named = {s.node for s in rollout.steps} | {u.split(":")[0] for u in rollout.untouched}
    assert {n.name for n in inventory} <= named
    (released,) = [s for s in rollout.steps if s.action == "release"]  # 5 H100 nodes now, 4 planned
    assert released.node.startswith("gpu-old-") and released.planned_node is None
    assert any(u.startswith("gpu-unplaced:") for u in rollout.untouched)  # runs what the plan keeps as is
    assert any(u.startswith("gpu-t4:") for u in rollout.untouched)  # a model the catalogue does not know
    adds = [s for s in rollout.steps if s.action == "add"]
    assert all(s.commands[0].startswith("# join a node") for s in adds)


def test_steps_go_label_and_add_first_then_reconfigure_then_release_and_capacity_is_kept(with_inventory) -> None:
    _, inventory, rollout, _ = with_inventory
    rank = {"add": 0, "label": 1, "reconfigure": 2, "release": 3}
    actions = [rank[s.action] for s in rollout.steps]
    assert actions == sorted(actions)
    assert [s.step for s in rollout.steps] == list(range(1, len(rollout.steps) + 1))
    gpus_now = {n.name: len(n.gpus) for n in inventory}
    h100_now = sum(len(n.gpus) for n in inventory if n.gpu_model == H100)
    added = 0
    for s in rollout.steps:
        (cap,) = s.capacity
        if s.gpu_model != H100:
            continue
        if s.action == "add":
            added += 4
        if s.action in ("reconfigure", "release"):
            assert cap.schedulable == cap.total - gpus_now[s.node]  # only the node being drained is out
        else:
            assert cap.schedulable == cap.total  # labelling alone takes nothing away
        assert cap.total == h100_now + added  # GPUs seen now, plus those of nodes added so far


def test_each_workload_gets_its_requests_once_after_all_its_nodes_are_ready(with_inventory) -> None:
    _planned_nodes, _, rollout, configs = with_inventory
    ready_at: dict[str, int] = {s.node: s.step for s in rollout.steps if s.planned_node}
    applied: dict[str, int] = {}
    for s in rollout.steps:
        for w in s.apply_requests:
            assert w not in applied
            applied[w] = s.step
    requests = yaml.safe_load(configs.resource_requests)["workloads"]
    assert set(applied) == {r["workload"] for r in requests}
    for r in requests:
        assert all(ready_at[n] <= applied[r["workload"]] for n in r["nodes"])


def test_rollback_undoes_the_steps_newest_first(with_inventory) -> None:
    _, _, rollout, _configs = with_inventory
    assert [r.node for r in rollout.rollback] == [s.node for s in reversed(rollout.steps)]
    for r in rollout.rollback:
        step = next(s for s in rollout.steps if s.node == r.node)
        if step.action == "reconfigure":  # the GPUs go back to what they were: drain again, relabel, wait
            assert r.commands[0].startswith("kubectl cordon") and r.commands[-1].startswith("kubectl uncordon")
        if step.action == "release":
            assert r.commands == [f"kubectl uncordon {r.node}"]
    assert any(c.startswith("helm rollback gpu-operator") for c in rollout.rollback_finish)
    assert "kubectl get nodes -L nvidia.com/mig.config" in rollout.preflight[0]


def test_the_markdown_plan_shows_every_step_with_its_commands(with_inventory) -> None:
    _, _, rollout, configs = with_inventory
    md = configs.rollout_md
    for s in rollout.steps:
        assert f"### Step {s.step}: {s.action} `{s.node}`" in md
        assert all(c in md for c in s.commands)
    assert "helm upgrade gpu-operator nvidia/gpu-operator" in md and "## Rollback" in md
    rows = re.findall(r"^\| (\d+) \| `([^`]+)` \|", md, flags=re.MULTILINE)
    assert [(int(n), node) for n, node in rows] == [(s.step, s.node) for s in rollout.steps]


def test_without_an_inventory_the_plan_names_node_slots_and_reconfigures_each(planned: Planned) -> None:
    rollout = Rollout.model_validate(json.loads(planned[2].rollout_json))
    assert rollout.inventory == "none"
    assert all(s.action == "reconfigure" and s.node == s.planned_node for s in rollout.steps)


def test_the_inventory_comes_from_the_history_columns() -> None:
    t = pd.Timestamp("2026-12-01T00:00:00Z")
    rows = pd.DataFrame(
        [
            (t, "a", "node-1", "g1", A100, "3g.40gb", "mig"),
            (t, "b", "node-1", "g1", A100, "1g.10gb", "mig"),
            (t, "c", "node-1", "g2", A100, "", "mps"),
            (t, "d", "node-2", "g3", H100, "", "timeslice"),
            (t, "e", "node-2", "g3", H100, "", "exclusive"),
        ],
        columns=["timestamp", "workload", "node", "gpu_uuid", "gpu_model", "mig_profile", "sharing"],
    )
    one, two = inventory_from_history(rows)
    assert (one.name, one.gpu_model, [g.setup for g in one.gpus]) == ("node-1", A100, ["mig:1g.10gb,3g.40gb", "mps"])
    assert one.workloads == ("a", "b", "c")
    assert (two.name, [g.setup for g in two.gpus], two.workloads) == ("node-2", ["whole"], ("d", "e"))


@pytest.mark.slow
def test_a_simulated_fleet_rolls_out_on_its_own_nodes_and_every_pod_schedules(tmp_path) -> None:
    """History -> advice -> configs with the nodes the history shows: real node names, every node now accounted
    for, every pod's selector within its node's labels after the rollout."""
    from advisor.history import read_history
    from advisor.pipeline import from_history, recommend_data
    from exporter.simulate.history import write_history

    path = tmp_path / "fleet.parquet"
    write_history(path, scenario="mixed", days=0.5, step_s=300, seed=1)
    history = read_history(path)
    rec = recommend_data(from_history(history, str(path), None))
    inventory = inventory_from_history(history)
    configs = build_configs(rec.plan, rec.workloads, inventory)
    rollout = Rollout.model_validate(json.loads(configs.rollout_json))
    assert rollout.inventory == "history"
    steps = {s.node: s for s in rollout.steps}
    assert {n.name for n in inventory} <= set(steps) | {u.split(":")[0] for u in rollout.untouched}
    requests = yaml.safe_load(configs.resource_requests)["workloads"]
    assert requests
    for r in requests:
        (resource,) = r["resources"]["limits"]
        for node in r["nodes"]:
            assert r["nodeSelector"].items() <= steps[node].expect_labels.items()
            assert steps[node].expect_resources.get(resource, 0) >= 1
    assert any(n.startswith("sim-") for r in requests for n in r["nodes"])  # the fleet's own nodes are reused


def test_a_node_running_a_workload_the_plan_keeps_is_never_taken() -> None:
    plan, workloads = make_plan()
    mps = next(n for n in plan_nodes(plan).nodes if n.mode == Mode.MPS)
    # the only H100 node now runs the planned MPS workloads and one the plan could not place: it would be the best
    # match for the MPS node, but draining it would stop the workload the plan keeps as it runs
    only = NodeNow("gpu-0", H100, (*_as_running("gpu-0", mps).gpus, GpuNow("u", "whole", ("legacy/huge-0",))))
    plan = replace(plan, unplaced=(*plan.unplaced, Unplaced("legacy/huge-0", H100, "larger than any GPU")))
    rollout = Rollout.model_validate(json.loads(build_configs(plan, workloads, [only]).rollout_json))
    assert "gpu-0" not in {s.node for s in rollout.steps}
    assert rollout.untouched == ["gpu-0: runs legacy/huge-0, kept as it runs"]

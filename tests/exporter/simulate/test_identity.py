"""Simulated /proc and pods lead the exporter's attribution to exactly the workload names the history uses."""

from __future__ import annotations

import re

import pytest

from exporter.attribution.attributor import Attributor
from exporter.attribution.cgroup import parse_cgroup
from exporter.simulate import ManualClock, build_scenario
from exporter.simulate.identity import IdentityKind
from tests.exporter.simulate.conftest import AFTERNOON


def test_attribution_names_every_process_as_the_simulator_does() -> None:
    kinds = set()
    checked = 0
    for hours in (2, 14, 19):
        fleet = build_scenario("mixed", clock=ManualClock(AFTERNOON + (hours - 14) * 3600))
        for node in fleet.nodes:
            tick = node.runtime.state()
            attributor = Attributor(node.proc_source, node.pod_directory, node.container_names)
            pids = [p.pid for procs in tick.processes for p in procs]
            assert len(pids) == len(set(pids))  # no pid twice on a node
            found = attributor.identify(pids)
            assert found.skipped == 0
            for procs in tick.processes:
                for p in procs:
                    workload = node.members[p.member].workload
                    assert found.identities[p.pid].workload.name == workload.name, node.proc_source.cgroup(p.pid)
                    kinds.add(workload.identity.kind)
                    checked += 1
    assert checked > 150
    assert kinds == set(IdentityKind)


def test_cgroup_shapes_per_platform() -> None:
    clock = ManualClock(AFTERNOON)
    fleet = build_scenario("mixed", clock=clock)
    shapes = {
        "sim-h100-0": r"^0::/kubepods\.slice/(kubepods-(burstable|besteffort)\.slice/)?kubepods-(\w+-)?"
        r"pod[0-9a-f_]{36}\.slice/cri-containerd-[0-9a-f]{64}\.scope\n$",
        "sim-a100-80gb-0": r"^0::/kubepods\.slice/.*/crio-[0-9a-f]{64}\.scope\n$",
        "sim-a100-40gb-0": r"^12:blkio:/kubepods/(burstable/|besteffort/)?pod[0-9a-f-]{36}/[0-9a-f]{64}\n",
    }
    for node_name, shape in shapes.items():
        node = fleet.node(node_name)
        tick = node.runtime.state()
        for procs in tick.processes:
            for p in procs:
                text = node.proc_source.cgroup(p.pid)
                assert re.search(shape, text), text
                identity = parse_cgroup(text)
                assert identity.pod_uid and node.pod_directory.lookup(identity.pod_uid) is not None
    clock.set(AFTERNOON + 5 * 3600)  # 14:00 on the A30 node: its users are at work
    a30 = fleet.node("sim-a30-0")
    tick = a30.runtime.state()
    texts = {
        a30.members[p.member].workload.identity.kind: a30.proc_source.cgroup(p.pid)
        for procs in tick.processes
        for p in procs
    }
    assert re.search(r"^11:memory:/slurm/uid_\d+/job_\d+/step_0/task_\d+$", texts[IdentityKind.SLURM], re.M)
    assert re.search(r"^11:memory:/docker/[0-9a-f]{64}$", texts[IdentityKind.CONTAINER], re.M)
    assert re.search(r"^1:name=systemd:/system\.slice/[\w.-]+\.service$", texts[IdentityKind.SYSTEMD], re.M)
    assert re.search(r"^0::/user\.slice/user-\d+\.slice/session-\d+\.scope$", texts[IdentityKind.PROCESS], re.M)


def test_kubernetes_owners_and_generated_names() -> None:
    fleet = build_scenario("mixed", clock=ManualClock(AFTERNOON))
    seen = {}
    for node in fleet.nodes:
        tick = node.runtime.state()
        for procs in tick.processes:
            for p in procs:
                identity = node.members[p.member].workload.identity
                if not identity.kind.kubernetes:
                    continue
                pod = node.pod_directory.lookup(parse_cgroup(node.proc_source.cgroup(p.pid)).pod_uid)
                assert pod is not None and pod.namespace == identity.namespace
                assert list(pod.containers.values()) == [identity.container]
                seen[identity.kind] = pod
    deployment = seen[IdentityKind.DEPLOYMENT]
    assert deployment.owner_kind == "Deployment"
    assert re.fullmatch(rf"{deployment.owner_name}-[bcdfghjklmnpqrstvwxz2456789]{{10}}-[a-z0-9]{{5}}", deployment.name)
    assert re.fullmatch(rf"{seen[IdentityKind.STATEFULSET].owner_name}-\d+", seen[IdentityKind.STATEFULSET].name)
    cron = seen[IdentityKind.CRONJOB]
    assert cron.owner_kind == "CronJob" and re.fullmatch(rf"{cron.owner_name}-\d{{8}}-[a-z0-9]{{5}}", cron.name)
    bare = seen[IdentityKind.BARE_POD]
    assert bare.owner_kind == "" and bare.name.startswith("jupyter-")


def test_slurm_environment_and_native_binaries() -> None:
    fleet = build_scenario("mixed", clock=ManualClock(AFTERNOON))
    node = fleet.node("sim-a30-0")
    tick = node.runtime.state()
    for procs in tick.processes:
        for p in procs:
            identity = node.members[p.member].workload.identity
            argv = node.proc_source.cmdline(p.pid)
            assert node.proc_source.comm(p.pid) == argv[0].rsplit("/", 1)[-1][:15]
            if identity.kind is IdentityKind.SLURM:
                env = node.proc_source.environ(p.pid)
                assert env["SLURM_JOB_NAME"] == identity.name
                assert f"job_{env['SLURM_JOB_ID']}/" in node.proc_source.cgroup(p.pid)
            if identity.kind is IdentityKind.PROCESS:
                assert identity.name == f"{node.proc_source.user(p.pid)}/{node.proc_source.comm(p.pid)}"


def test_pids_that_do_not_run_raise_process_lookup_error() -> None:
    fleet = build_scenario("exclusive", clock=ManualClock(AFTERNOON))
    source = fleet.node().proc_source
    for read in (source.cgroup, source.comm, source.cmdline, source.user, source.environ):
        with pytest.raises(ProcessLookupError):
            read(1)
    assert fleet.node().pod_directory.lookup("00000000-0000-0000-0000-000000000000") is None


def test_a_rollout_is_a_new_pod_with_a_new_replica_set_hash() -> None:
    clock = ManualClock(AFTERNOON)
    fleet = build_scenario("exclusive", clock=clock)
    node = fleet.node()
    member = node.members[0]
    assert member.workload.identity.kind in (IdentityKind.DEPLOYMENT, IdentityKind.STATEFULSET)

    def pod_and_pid() -> tuple[str, int]:
        (p,) = node.runtime.state().processes[0]
        return node.pod_directory.lookup(parse_cgroup(node.proc_source.cgroup(p.pid)).pod_uid).name, p.pid

    before = pod_and_pid()
    clock.advance(member.behaviour.period_s)  # one rollout period later
    after = pod_and_pid()
    assert before[1] != after[1]
    if member.workload.identity.kind is IdentityKind.DEPLOYMENT:
        assert before[0].rsplit("-", 2)[1] != after[0].rsplit("-", 2)[1]

"""Workload names by DESIGN.md's precedence, its override, and the per-pid cache, on realistic cgroup samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.attribution.attributor import Attributor
from exporter.attribution.precedence import DEFAULT_ORDER, Step, parse_order
from exporter.attribution.sources import PodMeta
from exporter.snapshot import Workload
from slicewise.errors import BadInput
from tests.exporter.fakes import FakePods, FakeProc, FakeProcs

SAMPLES = Path(__file__).parent / "cgroups"
CONTAINERD_ID = "846e8782c7d9b930b110cae16b1fd42ee67ab26007fae540459269907e6b472e"
POD_UID = "687fb852-2d47-4977-819c-d01c90a54504"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


TRAINER = PodMeta(
    uid=POD_UID,
    namespace="ml",
    name="trainer-7d9f8c6b5-x2x7q",
    owner_kind="Deployment",
    owner_name="trainer",
    containers={CONTAINERD_ID: "pytorch"},
)


def test_kubernetes_owner_wins() -> None:
    procs = FakeProcs({10: FakeProc(sample("containerd-systemd-v2.txt"))})
    found = Attributor(procs, FakePods([TRAINER])).identify([10])
    assert found.identities[10].workload == Workload(
        name="ml/trainer", source="kubernetes", namespace="ml", pod="trainer-7d9f8c6b5-x2x7q", container="pytorch"
    )
    assert found.identities[10].process == "python3"


def test_bare_pod_is_its_own_owner() -> None:
    bare = PodMeta(uid=POD_UID, namespace="dev", name="scratch", containers={CONTAINERD_ID: "main"})
    procs = FakeProcs({10: FakeProc(sample("containerd-systemd-v2.txt"))})
    assert Attributor(procs, FakePods([bare])).identify([10]).identities[10].workload.name == "dev/scratch"


def test_unknown_pod_falls_through_to_user_command() -> None:
    """Until the pod cache knows the pod, the process is named by the always-possible last step."""
    procs = FakeProcs({10: FakeProc(sample("containerd-systemd-v2.txt"), comm="tritonserver", user="root")})
    pods = FakePods([])
    attributor = Attributor(procs, pods)
    assert attributor.identify([10]).identities[10].workload == Workload("root/tritonserver", "user")
    pods.pods[POD_UID] = TRAINER  # the cache learns the pod: the next scrape names it, without rereading /proc
    assert attributor.identify([10]).identities[10].workload.name == "ml/trainer"
    assert procs.reads["cgroup"] == 1


def test_container_name_step_when_ordered_first() -> None:
    procs = FakeProcs({10: FakeProc(sample("containerd-systemd-v2.txt"))})
    order = parse_order("container,kubernetes")
    found = Attributor(procs, FakePods([TRAINER]), order=order).identify([10]).identities[10].workload
    assert found == Workload(name="pytorch", source="container", container="pytorch")


class DockerNames:
    def name(self, container_id: str) -> str | None:
        return {"b06dbbbb1585d345866ce28e72f5948e498b64b677404c3bae9950406808b3d5": "vllm-server"}.get(container_id)


def test_plain_docker_container_by_name() -> None:
    procs = FakeProcs({10: FakeProc(sample("docker-systemd-v2.txt"))})
    found = Attributor(procs, None, DockerNames()).identify([10]).identities[10].workload
    assert found == Workload(name="vllm-server", source="container", container="vllm-server")


@pytest.mark.parametrize("sample_name", ["slurm-v1.txt", "slurm-v2.txt"])
def test_slurm_job_name(sample_name: str) -> None:
    env = {"SLURM_JOB_NAME": "bert-pretrain", "SLURM_JOB_ID": "4242"}
    procs = FakeProcs({10: FakeProc(sample(sample_name), environ=env)})
    assert Attributor(procs).identify([10]).identities[10].workload == Workload("bert-pretrain", "slurm")


def test_slurm_job_without_readable_environment_is_named_by_id() -> None:
    procs = FakeProcs({10: FakeProc(sample("slurm-v2.txt"))})
    assert Attributor(procs).identify([10]).identities[10].workload.name == "slurm-job-4242"


def test_slurm_without_cgroups_from_the_environment() -> None:
    """proctrack/linuxproc sites: no Slurm cgroup, but the job is in the process's environment."""
    env = {"SLURM_JOB_NAME": "md-run", "SLURM_JOB_ID": "77"}
    procs = FakeProcs({10: FakeProc(sample("login-session-v2.txt"), environ=env)})
    assert Attributor(procs).identify([10]).identities[10].workload == Workload("md-run", "slurm")


@pytest.mark.parametrize(
    ("sample_name", "unit"),
    [("systemd-service-v2.txt", "triton-server.service"), ("systemd-user-service-v2.txt", "jupyter-lab.service")],
)
def test_systemd_unit(sample_name: str, unit: str) -> None:
    procs = FakeProcs({10: FakeProc(sample(sample_name))})
    assert Attributor(procs).identify([10]).identities[10].workload == Workload(unit, "systemd")


def test_login_session_is_user_and_command() -> None:
    procs = FakeProcs({10: FakeProc(sample("login-session-v2.txt"), comm="jupyter-lab", user="bob")})
    assert Attributor(procs).identify([10]).identities[10].workload == Workload("bob/jupyter-lab", "user")


def test_order_without_systemd_skips_it() -> None:
    procs = FakeProcs({10: FakeProc(sample("systemd-service-v2.txt"), comm="tritonserver", user="triton")})
    found = Attributor(procs, order=parse_order("kubernetes,slurm")).identify([10]).identities[10].workload
    assert found == Workload("triton/tritonserver", "user")


def test_exited_processes_are_skipped_and_counted() -> None:
    procs = FakeProcs({10: FakeProc(sample("systemd-service-v2.txt"))})
    found = Attributor(procs).identify([10, 11, 12])
    assert list(found.identities) == [10]
    assert found.skipped == 2


def test_facts_are_read_once_per_pid_and_forgotten_when_it_leaves() -> None:
    procs = FakeProcs({10: FakeProc(sample("systemd-service-v2.txt"))})
    attributor = Attributor(procs)
    attributor.identify([10])
    attributor.identify([10, 10])
    attributor.identify([10])
    assert (procs.reads["cgroup"], procs.reads["status"]) == (1, 1)  # only comm is read again, once a scrape
    assert procs.reads["comm"] == 3
    attributor.identify([])  # pid 10 left the GPUs
    procs.procs[10] = FakeProc(sample("login-session-v2.txt"), comm="python3", user="eve")  # pid reused
    assert attributor.identify([10]).identities[10].workload.name == "eve/python3"


def test_a_cached_pid_that_exits_is_skipped() -> None:
    procs = FakeProcs({10: FakeProc(sample("systemd-service-v2.txt"))})
    attributor = Attributor(procs)
    attributor.identify([10])
    del procs.procs[10]  # exited after NVML listed it
    found = attributor.identify([10])
    assert found.identities == {} and found.skipped == 1


def test_a_pid_running_another_program_is_read_again() -> None:
    procs = FakeProcs({10: FakeProc(sample("systemd-service-v2.txt"), comm="tritonserver")})
    attributor = Attributor(procs)
    attributor.identify([10])
    procs.procs[10] = FakeProc(sample("login-session-v2.txt"), comm="cuda_sim", user="bob")  # reused between scrapes
    assert attributor.identify([10]).identities[10].workload.name == "bob/cuda_sim"


def test_parse_order() -> None:
    assert parse_order("kubernetes,container,slurm,systemd,user") == DEFAULT_ORDER
    assert parse_order(" Slurm , kubernetes ") == (Step.SLURM, Step.KUBERNETES, Step.USER)
    for bad in ("kubernetes,docker", "slurm,slurm", "user,kubernetes"):
        with pytest.raises(BadInput, match=r"attribution\.order"):
            parse_order(bad)

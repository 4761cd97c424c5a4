"""parse_cgroup reads every runtime's and scheduler's path shape (samples and their sources in cgroups/README.md)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from exporter.attribution.cgroup import CgroupIdentity, parse_cgroup

SAMPLES = Path(__file__).parent / "cgroups"
CASES: dict[str, dict[str, str]] = yaml.safe_load((SAMPLES / "cases.yaml").read_text())


def test_every_sample_has_a_case_and_every_case_a_sample() -> None:
    assert sorted(p.name for p in SAMPLES.glob("*.txt")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample(name: str) -> None:
    expected = CgroupIdentity(**CASES[name])
    assert parse_cgroup((SAMPLES / name).read_text()) == expected


def test_crio_monitor_scope_is_not_a_container() -> None:
    """conmon (CRI-O's monitor) sits in crio-conmon-<id>.scope: it never has a GPU context, and is not the container."""
    text = (SAMPLES / "crio-systemd-v2.txt").read_text().replace("/crio-", "/crio-conmon-")
    found = parse_cgroup(text)
    assert found.container_id == ""
    assert found.pod_uid == "d2eeecc8-80f9-4100-8e59-d25d175fbf63"


def test_the_unit_around_a_container_is_not_the_workload() -> None:
    """Docker containers started by a systemd-driven docker.service must not be named after docker.service."""
    found = parse_cgroup((SAMPLES / "docker-cgroupfs-v1.txt").read_text() + "")
    assert found.systemd_unit == ""
    assert asdict(parse_cgroup("0::/system.slice/docker.service\n"))["systemd_unit"] == "docker.service"


@pytest.mark.parametrize("text", ["", "0::/\n", "garbage without colons\n", "0::/init.scope\n"])
def test_nothing_to_say(text: str) -> None:
    assert parse_cgroup(text) == CgroupIdentity()

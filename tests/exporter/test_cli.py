"""The installed ``slicewise-exporter`` script: exit codes and messages a person sees."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def exporter(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    script = shutil.which("slicewise-exporter") or str(Path(sys.executable).with_name("slicewise-exporter"))
    if not Path(script).exists():
        pytest.fail("console script slicewise-exporter is not installed: pip install -e .")
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_without_a_driver_it_says_so_and_exits_1() -> None:
    if Path("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1").exists():
        pytest.skip("this machine has an NVIDIA driver")
    done = exporter("--web.listen-address", "127.0.0.1:0")
    assert done.returncode == 1
    assert "no NVIDIA driver found" in done.stderr
    assert "--simulate" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attribution.order", "kubernetes,docker"], "unknown step 'docker'"),
        (["--log.level", "verbose"], "--log.level"),
        (["--web.telemetry-path", "metrics"], "must start with /"),
        (["--kubernetes.refresh-interval", "soon"], "duration"),
        (["--no-such-flag"], "No such option"),
    ],
)
def test_bad_usage_exits_2(args: list[str], message: str) -> None:
    done = exporter(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr


def test_broken_web_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    done = exporter("--web.config.file", str(config))
    assert done.returncode == 2
    assert f"--web.config.file {config}: basic_auth_users" in done.stderr
    assert "prometheus" in done.stderr
    assert "not a bcrypt hash" in done.stderr


def test_help_names_the_flags() -> None:
    done = exporter("--help")
    assert done.returncode == 0
    for flag in (
        "--web.listen-address",
        ":10052",
        "--path.procfs",
        "--attribution.order",
        "--kubernetes.kubeconfig",
        "--container.socket",
        "--collector.process.aggregate",
        "--simulate",
    ):
        assert flag in done.stdout

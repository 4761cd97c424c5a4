"""Both console scripts, as installed, list every command and flag DESIGN.md names and use its exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _script(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(path).exists():
        pytest.fail(f"console script {name} is not installed: run scripts/test (pip install -e .)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_slicewise_help_lists_every_command() -> None:
    out = _run(_script("slicewise"), "--help")
    assert out.returncode == 0, out.stderr
    for command in ("advise", "schedule", "simulate", "demo"):
        assert command in out.stdout


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("advise", ["--prometheus", "--history", "--window", "--out", "--format"]),
        ("schedule", ["--config", "--once"]),
        ("simulate", ["--out", "--days", "--gpus", "--seed", "--scenario"]),
        ("demo", ["--out", "--live"]),
    ],
)
def test_subcommand_help_lists_its_flags(command: str, flags: list[str]) -> None:
    out = _run(_script("slicewise"), command, "--help")
    assert out.returncode == 0, out.stderr
    for flag in flags:
        assert flag in out.stdout, f"{command} --help lacks {flag}"


def test_exporter_help_lists_prometheus_style_flags() -> None:
    out = _run(_script("slicewise-exporter"), "--help")
    assert out.returncode == 0, out.stderr
    for flag in (
        "--web.listen-address",
        "--web.telemetry-path",
        "--web.config.file",
        "--collector.process.aggregate",
        "--simulate",
        "--node-name",
        "--log.level",
    ):
        assert flag in out.stdout
    assert ":10052" in out.stdout


def test_bad_usage_exits_2_with_a_message() -> None:
    out = _run(_script("slicewise"), "advise")
    assert out.returncode == 2
    assert "--prometheus" in out.stderr and "--history" in out.stderr
    out = _run(_script("slicewise"), "advise", "--history", "x.csv", "--window", "fortnight")
    assert out.returncode == 2
    assert "duration" in out.stderr
    out = _run(_script("slicewise"), "no-such-command")
    assert out.returncode == 2

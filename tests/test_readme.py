"""The README's examples stay true: its schedule config loads, and the files and overlays it names exist."""

from __future__ import annotations

import re
from pathlib import Path

from advisor.schedule.config import load_config
from tests.support import REPO

README = (REPO / "README.md").read_text()


def test_the_schedule_config_in_the_readme_is_valid(tmp_path: Path) -> None:
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if b.startswith("source:"))
    path = tmp_path / "schedule.yaml"
    path.write_text(block)
    config = load_config(path)
    assert config.window.days == 14


def test_every_repository_path_the_readme_names_exists() -> None:
    named = set(re.findall(r"\((docs/[\w.-]+\.md)", README))
    named |= set(re.findall(r"deploy/kubernetes/(?:overlays|examples)/[\w-]+", README))
    named |= {
        "scripts/demo",
        "scripts/test",
        ".ci/run",
        "grafana/provisioning",
        "deploy/prometheus/slicewise.rules.yml",
    }
    assert len(named) > 10
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"the README names paths that do not exist: {missing}"


def test_overlays_named_in_the_readme_exist() -> None:
    overlays = re.search(r"Other overlays: (.*?), or your own", README, re.S)
    assert overlays
    for name in re.findall(r"`([\w-]+)`", overlays.group(1)):
        assert (REPO / "deploy/kubernetes/overlays" / name / "kustomization.yaml").is_file(), name

"""The Prometheus rules and example configs in deploy/prometheus/, checked and unit-tested with the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO, require_binary

pytestmark = pytest.mark.needs_binary

RULES_DIR = REPO / "deploy" / "prometheus"
RULE_FILES = (RULES_DIR / "slicewise.rules.yml", RULES_DIR / "slicewise.alerts.yml")
TEST_FILES = sorted((RULES_DIR / "tests").glob("*.test.yml"))


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_rule_files_pass_promtool_check_with_its_linter() -> None:
    result = promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 11 rules found" in result.stdout and "SUCCESS: 7 rules found" in result.stdout


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = promtool("test", "rules", test_file.name, cwd=test_file.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_recording_rule_and_alert_is_unit_tested() -> None:
    tested_exprs: set[str] = set()
    firing: set[str] = set()
    quiet: set[str] = set()
    for test_file in TEST_FILES:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            tested_exprs |= {t["expr"].split("{")[0] for t in case.get("promql_expr_test", [])}
            for t in case.get("alert_rule_test", []):
                (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
    records = {rule["record"] for rule in rules_of(RULE_FILES[0])}
    alerts = {rule["alert"] for rule in rules_of(RULE_FILES[1])}
    assert records - tested_exprs == set(), "recording rules without a promql_expr_test"
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown staying quiet"


def test_every_alert_says_what_it_means() -> None:
    for rule in rules_of(RULE_FILES[1]):
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert rule["alert"].startswith("Slicewise")


def test_the_unit_tests_catch_a_wrong_attribution(tmp_path: Path) -> None:
    """Mutation check: attributing a MIG device's whole activity to every workload on it (no even split) must fail."""
    copy = tmp_path / "prometheus"
    shutil.copytree(RULES_DIR, copy)
    rules = copy / "slicewise.rules.yml"
    text = rules.read_text()
    split = "/ ignoring(profile, model) group_left()\n            mig_device:slicewise_workloads:count"
    assert split in text
    rules.write_text(text.replace(split, ""))
    assert promtool("check", "rules", rules).returncode == 0  # still a valid rule, just the wrong one
    result = promtool("test", "rules", "slicewise.rules.test.yml", cwd=copy / "tests")
    assert result.returncode != 0
    assert "workload_device:slicewise_sm_active:gpu_fraction" in result.stdout + result.stderr


def test_the_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    copy = tmp_path / "prometheus"
    shutil.copytree(RULES_DIR, copy)
    alerts = copy / "slicewise.alerts.yml"
    alerts.write_text(
        alerts.read_text().replace("slicewise_mig_memory_total_bytes > 0.95", "slicewise_mig_memory_total_bytes > 0.85")
    )
    result = promtool("test", "rules", "slicewise.alerts.test.yml", cwd=copy / "tests")
    assert result.returncode != 0
    assert "SlicewiseMigMemoryNearFull" in result.stdout + result.stderr


def test_static_example_config_is_valid() -> None:
    result = promtool("check", "config", RULES_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((RULES_DIR / "prometheus.yml").read_text())
    exporter_job = next(job for job in config["scrape_configs"] if job["job_name"] == "slicewise-exporter")
    assert all("node" in group["labels"] for group in exporter_job["static_configs"])


def test_kubernetes_example_config_is_valid_apart_from_its_discovery(tmp_path: Path) -> None:
    """Debian's Prometheus is built without Kubernetes discovery, so promtool rejects kubernetes_sd_configs.

    Everything else (relabelling, jobs, rule files) is checked by swapping the discovery block for a file one.
    """
    config = yaml.safe_load((RULES_DIR / "prometheus-kubernetes.yml").read_text())
    for job in config["scrape_configs"]:
        roles = [sd["role"] for sd in job.pop("kubernetes_sd_configs")]
        assert roles and set(roles) <= {"pod", "service", "endpoints", "node"}
        job["file_sd_configs"] = [{"files": ["targets/*.json"]}]
    node_relabel = [r for r in config["scrape_configs"][0]["relabel_configs"] if r.get("target_label") == "node"]
    assert node_relabel == [{"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"}]
    for rule_file in RULE_FILES:
        shutil.copy(rule_file, tmp_path)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = promtool("check", "config", tmp_path / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr

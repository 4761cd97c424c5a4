"""The committed dashboard JSON: in sync with its generator, valid by the SDK's types, and about the right metrics."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from grafana import build, queries, validate
from tests.support import REPO, require_binary

DASHBOARD_FILES = sorted(build.DASHBOARD_DIR.glob("*.json"))
BOARDS = {path.stem: json.loads(path.read_text()) for path in DASHBOARD_FILES}

# DESIGN.md, "Metric contract" and "What --out DIR holds"
EXPORTER_METRICS = {
    "slicewise_gpu_info",
    "slicewise_gpu_memory_total_bytes",
    "slicewise_gpu_memory_used_bytes",
    "slicewise_gpu_sm_count",
    "slicewise_gpu_sm_active_ratio",
    "slicewise_mig_info",
    "slicewise_mig_memory_total_bytes",
    "slicewise_mig_memory_used_bytes",
    "slicewise_mig_sm_count",
    "slicewise_mig_sm_active_ratio",
    "slicewise_mig_sm_occupancy_ratio",
    "slicewise_mig_dram_active_ratio",
    "slicewise_process_memory_used_bytes",
    "slicewise_process_sm_active_ratio",
}
EXPORTER_HEALTH_METRICS = {  # exporter/collector.py
    "slicewise_exporter_nvml_up",
    "slicewise_exporter_gpu_up",
    "slicewise_exporter_nvml_errors_total",
    "slicewise_exporter_collect_duration_seconds",
}
ADVISOR_METRICS = {
    "slicewise_advisor_gpus",
    "slicewise_advisor_workload_decision_info",
    "slicewise_advisor_workload_memory_limit_bytes",
    "slicewise_advisor_last_run_timestamp_seconds",
}
RULES = [
    rule
    for group in yaml.safe_load((REPO / "deploy/prometheus/slicewise.rules.yml").read_text())["groups"]
    for rule in group["rules"]
]
RECORDED = {rule["record"] for rule in RULES}


def metric_names(expr: str) -> set[str]:
    return {selector.split("{")[0] for selector in queries.slicewise_selectors(expr)}


def all_queries() -> list[queries.PanelQuery]:
    return [query for board in BOARDS.values() for query in queries.panel_queries(board)]


def test_the_four_dashboards_are_committed() -> None:
    assert set(BOARDS) == {"slicewise-fleet", "slicewise-gpu", "slicewise-workloads", "slicewise-advisor"}
    assert {board["uid"] for board in BOARDS.values()} == set(BOARDS)


def test_committed_json_is_what_the_generator_writes() -> None:
    assert build.stale_files() == [], "run: python -m grafana.build"


def test_check_flag_notices_a_hand_edit(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(build.main, ["--out", str(tmp_path)]).exit_code == 0
    assert runner.invoke(build.main, ["--check", "--out", str(tmp_path)]).exit_code == 0
    edited = tmp_path / "slicewise-fleet.json"
    edited.write_text(edited.read_text().replace("Fleet overview", "Fleet overveiw"))
    result = runner.invoke(build.main, ["--check", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "slicewise-fleet.json" in result.output


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_is_valid_by_the_sdk_types(name: str) -> None:
    assert validate.validate(BOARDS[name]) == []


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(board: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = board
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return mutate


MUTATIONS = {
    "misspelt target key": (_set("panels.1.targets.0.exprr", "up"), "exprr: not in Grafana's schema"),
    "misspelt field config": (_set("panels.1.fieldConfig.defaults.custom.lineWidht", 1), "lineWidht"),
    "bad enum in options": (_set("panels.1.options.legend.displayMode", "tabel"), "not a LegendDisplayMode"),
    "bad variable hide": (_set("templating.list.1.hide", 7), "not a VariableHide"),
    "unknown panel type": (_set("panels.1.type", "timeseriez"), "unknown panel type"),
    "undefined variable": (_set("panels.1.targets.0.expr", 'up{node=~"$nod"}'), "undefined variables ['nod']"),
    "overlapping panels": (_set("panels.3.gridPos.x", 6), "overlaps panel"),
    "off the grid": (_set("panels.3.gridPos.w", 30), "outside the 24-column grid"),
    "hard-coded data source": (_set("panels.1.datasource.uid", "prometheus"), "does not use the $datasource"),
    "wrong type": (_set("panels.1.title", 12), "expected str"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_validation_catches(mutation: str) -> None:
    mutate, expected = MUTATIONS[mutation]
    board = copy.deepcopy(BOARDS["slicewise-workloads"])
    mutate(board)
    problems = validate.validate(board)
    assert any(expected in problem for problem in problems), problems


def test_every_query_reads_metrics_that_exist() -> None:
    """Each metric a dashboard reads is in DESIGN's contract or a recording rule here: a typo shows no data."""
    known = EXPORTER_METRICS | EXPORTER_HEALTH_METRICS | ADVISOR_METRICS | RECORDED
    for query in all_queries():
        names = metric_names(query.expr)
        assert names, query.where
        assert names <= known, f"{query.where}: {names - known}"


def test_dashboards_cover_the_contract() -> None:
    """Every metric of the contract reaches a panel, directly or through the recording rules the panels read."""
    read = set().union(*(metric_names(query.expr) for query in all_queries()))
    for _ in range(3):  # rules read rules: follow them to the raw metrics
        read |= set().union(*(metric_names(rule["expr"]) for rule in RULES if rule["record"] in read))
    assert read >= EXPORTER_METRICS
    assert read >= ADVISOR_METRICS
    advisor_exprs = " ".join(q.expr for q in queries.panel_queries(BOARDS["slicewise-advisor"]))
    for state in ("now", "needed", "lower_bound"):
        assert f'state="{state}"' in advisor_exprs


def test_workload_view_compares_demand_with_the_advised_limit() -> None:
    board = BOARDS["slicewise-workloads"]
    memory_panel = next(p for p in queries.panels(board) if p.get("title", "").startswith("Memory per workload"))
    exprs = [t["expr"] for t in memory_panel["targets"]]
    assert any("workload_device:slicewise_memory_used_bytes:sum" in e for e in exprs)
    assert any("slicewise_advisor_workload_memory_limit_bytes" in e for e in exprs)


def test_template_variables_a_grafana_user_expects() -> None:
    names = {name: [v.name for v in queries.variables(board)] for name, board in BOARDS.items()}
    assert names["slicewise-workloads"] == ["datasource", "node", "model", "namespace", "workload"]
    assert names["slicewise-fleet"] == ["datasource", "node", "model"]
    assert names["slicewise-gpu"] == ["datasource", "node", "model", "gpu"]
    assert names["slicewise-advisor"] == ["datasource", "model", "class", "workload"]
    for board in BOARDS.values():
        for variable in queries.variables(board)[1:]:
            assert variable.multi and variable.include_all and variable.all_value == ".*"


def test_every_panel_filters_by_the_variables_of_its_dashboard() -> None:
    """A panel that ignores the node or workload picker would show the whole fleet while claiming a selection."""
    for name, board in BOARDS.items():
        used = set().union(*(queries.referenced_variables(q.expr) for q in queries.panel_queries(board)))
        declared = {v.name for v in queries.variables(board)} - {"datasource"}
        assert declared <= used | {"model"} if name == "slicewise-gpu" else declared <= used, name


# Grafana's interpolation, which the end-to-end test relies on to run the queries as Grafana would
WORKLOAD = queries.Variable("workload", "query", "label_values(x, workload)", True, True, ".*")
SINGLE = queries.Variable("single", "query", "label_values(x, workload)", False, False, None)


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (None, 'x{workload=~".*"}'),
        (["ns-a/serve"], 'x{workload=~"ns-a/serve"}'),
        (["ns-a/serve.v2"], r'x{workload=~"ns-a/serve\\.v2"}'),
        (["a", "b(1)"], r'x{workload=~"(a|b\\(1\\))"}'),
    ],
)
def test_interpolation_escapes_like_grafana(selection: list[str] | None, expected: str) -> None:
    assert queries.interpolate('x{workload=~"$workload"}', [WORKLOAD], {"workload": selection}) == expected


def test_interpolation_leaves_grafana_builtins() -> None:
    text = 'rate(x{workload=~"${workload}"}[$__rate_interval])'
    assert queries.interpolate(text, [WORKLOAD], {"workload": ["a"]}) == 'rate(x{workload=~"a"}[$__rate_interval])'
    assert queries.interpolate("x{w='$single'}", [SINGLE], {"single": ["o'k"]}) == "x{w='o\\\\'k'}"


def test_label_values_queries_parse() -> None:
    for board in BOARDS.values():
        for variable in queries.variables(board):
            if variable.kind == "query":
                series, label = variable.label_values
                assert series and re.match(r"^[a-z_:]+", series) and label


@pytest.mark.needs_binary
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """Prometheus's own parser, through promtool: each query (variables at All) becomes a recording rule to check."""
    promtool = require_binary("promtool")
    rules = []
    for board in BOARDS.values():
        board_variables = queries.variables(board)
        for index, query in enumerate(queries.panel_queries(board)):
            expr = queries.interpolate(query.expr, board_variables, {}).replace("$__rate_interval", "1m")
            rules.append({"record": f"{board['uid'].replace('-', '_')}:query_{index}", "expr": expr})
        for variable in board_variables:
            if variable.kind == "query":
                series, _ = variable.label_values
                assert series is not None
                rules.append(
                    {"record": f"variable:{variable.name}", "expr": queries.interpolate(series, board_variables, {})}
                )
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", "--lint=none", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout

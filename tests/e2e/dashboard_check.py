"""Run every query of a dashboard against a real Prometheus the way Grafana would, and say which come back empty.

Grafana fills a dashboard's variables from their own queries (``label_values(series, label)`` is the label-values
API with ``match[]``), interpolates the chosen values into each panel's expression (grafana.queries.interpolate),
and runs it as an instant query (stats, tables, bar gauges) or a range query over the dashboard's time range
(time series, annotations). Two passes:

- every variable at "All": every query must return data;
- each real value of each variable, the others at "All": a query that uses the variable must return data whenever
  every series it reads exists for that value. "Absent, not zero" makes some emptiness right (a GPU without MIG
  has no MIG activity; an A100 MIG device has no GPM), and this rule tells that apart from a broken join or
  filter, which empties a query although its series are there.

And one check neither pass can make: a label a variable filters on must exist on that metric. A misspelt
``worklaod=~"$workload"`` matches everything at "All" (an absent label is empty, and ``.*`` matches empty) and
nothing for a value, exactly as a legitimately absent series would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grafana import queries
from tests.e2e.servers import PrometheusClient

MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class TimeRange:
    start: float
    end: float
    step: float
    rate_interval: str  # what Grafana would put for $__rate_interval

    @property
    def span(self) -> str:
        return f"{max(int(self.end - self.start), 1)}s"


@dataclass
class Report:
    """What one dashboard's check found."""

    dashboard: str
    variable_values: dict[str, list[str]] = field(default_factory=dict)
    queries_run: int = 0
    empty_at_all: list[str] = field(default_factory=list)  # failures
    empty_with_value: list[str] = field(default_factory=list)  # failures
    legitimately_empty: list[str] = field(default_factory=list)  # its series do not exist for that value
    values_without_data: list[str] = field(default_factory=list)  # a variable value no panel shows: failure
    unknown_labels: list[str] = field(default_factory=list)  # a variable filters on a label the metric lacks

    @property
    def failures(self) -> list[str]:
        return self.empty_at_all + self.empty_with_value + self.values_without_data + self.unknown_labels


def _fill(
    text: str,
    board_variables: Sequence[queries.Variable],
    selection: Mapping[str, Sequence[str] | None],
    when: TimeRange,
) -> str:
    filled = queries.interpolate(text, board_variables, selection)
    return filled.replace("$__rate_interval", when.rate_interval).replace("$__range", when.span)


def has_data(client: PrometheusClient, expr: str, instant: bool, when: TimeRange) -> bool:
    if instant:
        return bool(client.query(expr, when.end))
    return any(series.get("values") for series in client.query_range(expr, when.start, when.end, when.step))


def variable_values(
    client: PrometheusClient, board_variables: Sequence[queries.Variable], when: TimeRange
) -> dict[str, list[str]]:
    """Each query variable's values as Grafana lists them, with the variables before it at "All"."""
    values: dict[str, list[str]] = {}
    for variable in board_variables:
        if variable.kind != "query":
            continue
        series, label = variable.label_values
        match = _fill(series, board_variables, {}, when) if series else None
        values[variable.name] = client.label_values(label, match, when.start, when.end)
    return values


def check_dashboard(client: PrometheusClient, board: Mapping[str, Any], when: TimeRange) -> Report:
    board_variables = queries.variables(board)
    panel_queries = queries.panel_queries(board)
    report = Report(str(board["uid"]), variable_values(client, board_variables, when))
    present: dict[str, bool] = {}  # metric -> has any series in the range

    for query in panel_queries:
        report.queries_run += 1
        if not has_data(client, _fill(query.expr, board_variables, {}, when), query.instant, when):
            report.empty_at_all.append(query.where)
        for selector in queries.slicewise_selectors(query.expr):
            metric = selector.split("{")[0]
            if metric not in present:
                present[metric] = has_data(client, f"count({metric})", False, when)
            if not present[metric]:
                continue  # no series at all (a counter of errors that never happened): nothing to say
            for label, _, value in MATCHER.findall(selector):
                if queries.referenced_variables(value) and not has_data(
                    client, f'count({metric}{{{label}!=""}})', False, when
                ):
                    report.unknown_labels.append(f"{query.where}: {metric} has no label {label!r}")

    for name, values in report.variable_values.items():
        using = [q for q in panel_queries if name in queries.referenced_variables(q.expr)]
        for value in values:
            selection = {name: [value]}
            shown = False
            for query in using:
                report.queries_run += 1
                if has_data(client, _fill(query.expr, board_variables, selection, when), query.instant, when):
                    shown = True
                    continue
                probes = [
                    f"count({_fill(s, board_variables, selection, when)})"
                    for s in queries.slicewise_selectors(query.expr)
                ]
                if all(has_data(client, probe, query.instant, when) for probe in probes):
                    report.empty_with_value.append(f"{query.where} with {name}={value!r}")
                else:
                    report.legitimately_empty.append(f"{query.where} with {name}={value!r}")
            if using and not shown:
                report.values_without_data.append(f"{name}={value!r} shows no data in any panel")
    return report

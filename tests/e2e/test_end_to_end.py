"""End to end with real components: the exporter on the simulated mixed fleet, Prometheus, a Pushgateway, the advisor.

One exporter process per simulated node (``slicewise-exporter --simulate=mixed --node-name NODE``) on its own
loopback port; Debian's Prometheus scrapes them every second with slicewise's rules loaded, as
deploy/prometheus/prometheus.yml would (``node`` target label, job ``slicewise-exporter``), and scrapes a
Pushgateway that receives the advisor's ``advisor.prom``. After ~40 s of data:

- every rule evaluates without error, and the recording rules compute what the advisor's own PromQL computes;
- the advisor reading Prometheus agrees with the advisor reading a history file that the simulator writes for the
  same fleet and the same seconds (tolerances and why they exist: ``test_advisor_agrees_across_sources``);
- the advisor's findings reach Prometheus through the Pushgateway;
- every query of every dashboard returns data, with its variables substituted as Grafana would.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from advisor.history import promql, read_history
from advisor.history.prometheus import PrometheusClient as AdvisorPrometheusClient
from advisor.history.prometheus import PrometheusSource
from advisor.model import Window, WorkloadFeatures, WorkloadKey
from advisor.output import write_out
from advisor.pipeline import SourceData, load_file, prometheus_gpus, recommend_from_features
from exporter.simulate.history import write_history
from exporter.simulate.scenarios import build_scenario
from grafana import build
from tests.e2e.dashboard_check import TimeRange, check_dashboard
from tests.e2e.servers import PrometheusClient, ServerSpec, loopback, prometheus_config, running, write_yaml
from tests.support import REPO, require_binary

pytestmark = [pytest.mark.slow, pytest.mark.needs_binary, pytest.mark.timeout(300)]

SCENARIO = "mixed"
SCRAPE_S = 1
WINDOW_S = 40
RULE_FILES = (REPO / "deploy/prometheus/slicewise.rules.yml", REPO / "deploy/prometheus/slicewise.alerts.yml")
MIB = 1 << 20


@dataclass(frozen=True)
class Stack:
    prometheus: PrometheusClient
    pushgateway_url: str
    exporters: dict[str, str]  # node -> address
    window: Window  # (start, end], whole seconds, all of it scraped
    workdir: Path

    @property
    def prometheus_url(self) -> str:
        return self.prometheus.url


def _wait_for(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = require_binary("prometheus")
    pushgateway_bin = require_binary("prometheus-pushgateway")
    exporter_bin = str(Path(sys.executable).with_name("slicewise-exporter"))  # this package's console script
    assert Path(exporter_bin).is_file(), f"{exporter_bin} is missing: pip install -e . installs it"
    workdir = tmp_path_factory.mktemp("e2e")
    nodes = [node.name for node in build_scenario(SCENARIO).nodes]
    exporters = {node: loopback() for node in nodes}
    pushgateway, prometheus = loopback(), loopback()
    config = write_yaml(workdir / "prometheus.yml", prometheus_config(exporters, pushgateway, RULE_FILES, SCRAPE_S))
    specs = [
        ServerSpec(
            f"exporter {node}",
            (exporter_bin, f"--simulate={SCENARIO}", "--web.listen-address", address, "--node-name", node),
            address,
            "/metrics",
            workdir / f"exporter-{node}.log",
        )
        for node, address in exporters.items()
    ]
    specs.append(
        ServerSpec(
            "pushgateway",
            (pushgateway_bin, f"--web.listen-address={pushgateway}"),
            pushgateway,
            "/-/ready",
            workdir / "pushgateway.log",
        )
    )
    specs.append(
        ServerSpec(
            "prometheus",
            (
                prometheus_bin,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address={prometheus}",
                "--log.level=warn",
            ),
            prometheus,
            "/-/ready",
            workdir / "prometheus.log",
        )
    )
    with running(specs):
        client = PrometheusClient(f"http://{prometheus}")
        try:

            def all_up() -> bool:
                up = client.query('sum(up{job="slicewise-exporter"}) + sum(up{job="pushgateway"})')
                return bool(up) and float(up[0]["value"][1]) == len(nodes) + 1

            _wait_for("every exporter and the Pushgateway to be scraped", all_up, timeout=30)
            start = math.ceil(time.time()) + 2
            window = Window(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + WINDOW_S, UTC))
            time.sleep(max(0.0, start + WINDOW_S + 2.5 - time.time()))  # the last step's scrape and rules are in
            yield Stack(client, f"http://{pushgateway}", exporters, window, workdir)
        finally:
            client.close()


# ------------------------------------------------------------------------------------------------------- rules


def test_every_rule_evaluates_on_the_live_fleet(stack: Stack) -> None:
    rules = stack.prometheus.rules()
    assert {r["name"] for r in rules if r["type"] == "recording"} >= {
        "workload_device:slicewise_sm_active:gpu_fraction",
        "mig_device:slicewise_sm_active:gpu_fraction",
    }
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok" or r.get("lastError")]
    assert broken == []
    end = stack.window.end.timestamp()
    for name in {r["name"] for r in rules if r["type"] == "recording"}:
        assert stack.prometheus.query(name, end), f"{name} recorded nothing"
    # a healthy simulated fleet: nothing is down, lost or failing
    for alert in ("SlicewiseExporterDown", "SlicewiseGpuLost", "SlicewiseNvmlErrorsRising"):
        state = next(r for r in rules if r["name"] == alert)
        assert state["alerts"] == [], alert


def _literally(text: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement that inserts ``text`` as it is (no backslash or group processing)."""
    return lambda _match: text


def _expand(expr: str, rules: dict[str, str], seen: tuple[str, ...]) -> str:
    """``expr`` with the recorded series it reads replaced by their rules' expressions, recursively."""
    for name, inner in rules.items():
        pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:{{\[])")
        if name not in seen and pattern.search(expr):
            expanded = f"({_expand(inner, rules, (*seen, name))})"
            expr = pattern.sub(_literally(expanded), expr)
    return expr


def _inlined(record: str, rules: dict[str, str]) -> str:
    return _expand(rules[record], rules, (record,))


def _recording_rules() -> dict[str, str]:
    groups = yaml.safe_load(RULE_FILES[0].read_text())["groups"]
    return {rule["record"]: rule["expr"] for group in groups for rule in group["rules"] if "record" in rule}


def _as_map(result: list[dict[str, Any]]) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for item in result:
        labels = {k: v for k, v in item["metric"].items() if k != "__name__"}
        out[tuple(sorted(labels.items()))] = float(item["value"][1])
    return out


@pytest.mark.parametrize(
    ("record", "advisor_expr"),
    [
        ("workload_device:slicewise_sm_active:gpu_fraction", promql.workload_device_compute(promql.INSTANT)),
        ("workload_device:slicewise_memory_used_bytes:sum", promql.workload_device_memory(promql.INSTANT)),
    ],
    ids=["compute", "memory"],
)
def test_recording_rules_compute_what_the_advisor_queries(stack: Stack, record: str, advisor_expr: str) -> None:
    """The rule, expanded to raw metrics, and the advisor's PromQL give the same series and numbers at each instant.

    Evaluating both against the same stored samples at the same instants makes the comparison exact; the recorded
    series themselves are then checked against the expanded rule at their own evaluation times.
    """
    expanded = _inlined(record, _recording_rules())
    start = stack.window.start.timestamp()
    for at in (start + 5, start + WINDOW_S / 2, start + WINDOW_S):
        ours, theirs = _as_map(stack.prometheus.query(expanded, at)), _as_map(stack.prometheus.query(advisor_expr, at))
        assert ours, f"{record} has no series at {at}"
        assert set(ours) == set(theirs)
        for labels, value in ours.items():
            assert value == pytest.approx(theirs[labels], rel=1e-12, abs=1e-15), dict(labels)

    # the stored series: at its evaluation times it equals the expanded rule (a scrape landing between a rule's
    # evaluation and this query can change one instant, so most, not all, instants must match exactly)
    recorded = stack.prometheus.query(f"{record}[10s]", stack.window.end.timestamp())
    times = sorted({float(t) for series in recorded for t, _ in series["values"]})
    assert times
    matching = 0
    for at in times:
        stored = {
            tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__")): float(v)
            for s in recorded
            for t, v in s["values"]
            if float(t) == at
        }
        matching += stored == _as_map(stack.prometheus.query(expanded, at))
    assert matching >= len(times) / 2, f"{matching} of {len(times)} evaluations match"


# ------------------------------------------------------------------------------------------------------ advisor


@pytest.fixture(scope="module")
def from_prometheus(stack: Stack) -> SourceData:
    """What ``slicewise advise --prometheus`` reads, with a 1 s step (its CLI uses 60 s, too coarse for 40 s)."""
    with PrometheusSource(stack.prometheus_url) as source:
        features = source.features(stack.window, step=timedelta(seconds=SCRAPE_S))
    with AdvisorPrometheusClient(stack.prometheus_url) as client:
        gpus_now, gpus_per_node = prometheus_gpus(client, stack.window)
    return SourceData(stack.prometheus_url, stack.window, features, gpus_now, gpus_per_node)


@pytest.fixture(scope="module")
def from_history(stack: Stack) -> SourceData:
    """The same fleet's history, written by the simulator for the seconds the scrapes read.

    A scrape at second s + d (0 < d < 1) reads the simulated second s (the simulator advances in whole seconds),
    and the advisor's step ending at s + 1 takes that scrape: Prometheus's window (a, b] is seconds a .. b-1,
    which is a history's window (a-1, b-1], i.e. the WINDOW_S samples ending just before b. On 2 shared cores a
    scrape sometimes lands a second late; the file is then read as the scrapes saw it (``_as_scraped``).
    """
    end = int(stack.window.end.timestamp())
    path = stack.workdir / "history.parquet"
    summary = write_history(path, scenario=SCENARIO, days=WINDOW_S / 86400, step_s=1, end=end)
    assert (summary.start, summary.end) == (end - WINDOW_S, end)
    scraped = stack.workdir / "history-as-scraped.parquet"
    _as_scraped(read_history(path), _scrape_seconds(stack, end)).to_parquet(scraped, index=False)
    return load_file(scraped, timedelta(seconds=WINDOW_S))


def _scrape_seconds(stack: Stack, end: int) -> dict[str, np.ndarray]:
    """Per node, the simulated seconds its exporter's scrapes read (the whole second of each scrape's timestamp)."""
    series = stack.prometheus.query(f'up{{job="slicewise-exporter"}}[{WINDOW_S + 5}s]', end)
    return {s["metric"]["node"]: np.unique([math.floor(float(t)) for t, _ in s["values"]]) for s in series}


def _as_scraped(history: pd.DataFrame, scrapes: dict[str, np.ndarray]) -> pd.DataFrame:
    """The per-second history as the scrapes saw it. A scrape that read second k reports memory at k and compute
    averaged over the seconds since the previous scrape (NVML's process samples and GPM both cover that span);
    each second s then holds what the latest scrape at or before s reported, as a Prometheus step does. With a
    scrape in every second this is the history unchanged."""
    # one device of a workload: a workload may hold several devices (MIG instances) on one GPU, in a fixed order
    key = ["workload", "gpu_uuid", "mig_profile", "device"]
    history = history.assign(device=history.groupby([*key[:3], "timestamp"], observed=True).cumcount())
    parts = []
    for node, node_rows in history.groupby("node", observed=True):
        seconds = scrapes[str(node)]
        second = ((node_rows["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy()
        # scrape k covers the seconds after scrape k - 1, up to and including its own
        rows = node_rows.assign(interval=np.searchsorted(seconds, second, side="left"))
        compute = rows.groupby([*key, "interval"], observed=True)["sm_active_gpu_fraction"].mean()
        reported = rows[np.isin(second, seconds)].set_index([*key, "interval"]).drop(columns="timestamp")
        reported["sm_active_gpu_fraction"] = compute.reindex(reported.index)
        latest = np.searchsorted(seconds, second, side="right") - 1  # the scrape each second shows
        seen = rows[[*key, "timestamp"]].assign(interval=latest).join(reported, on=[*key, "interval"], how="inner")
        parts.append(seen.drop(columns="interval"))
    return pd.concat(parts, ignore_index=True)[[c for c in history.columns if c != "device"]]


def _shared_mig_devices() -> set[str]:
    """Workloads that share a MIG device with another workload: the even split cannot know their own shares."""
    fleet = build_scenario(SCENARIO)
    on_device: dict[str, set[str]] = {}
    devices = {d.key: d for node in fleet.nodes for d in node.devices()}
    for member in fleet.members:
        if devices[member.device_key].is_mig:
            on_device.setdefault(member.device_key, set()).add(member.workload.name)
    return {w for names in on_device.values() if len(names) > 1 for w in names}


def test_advisor_agrees_across_sources(stack: Stack, from_prometheus: SourceData, from_history: SourceData) -> None:
    """The advisor reading Prometheus and reading the history file see the same workloads and the same demand.

    Exact: which workloads on which GPU models, their sharing, MIG profile, namespace, replicas, whether compute was
    measured, the GPUs per model. Within tolerance, because the live path measures what the file states:
    - memory: the same per-second values (whole MiB both ways); a scrape delayed past its second (2 shared cores)
      repeats or skips one second, so peaks and p99 may differ by what one second changes (≤ 2 %);
    - compute on a whole GPU: NVML reports per-process SM use in whole percent, the file keeps 4 decimals, so each
      process's sample is within 0.005 (0.02 allowed for a workload's p95 and mean); a scrape that landed a second
      late is matched by reading the file as the scrapes saw it (``from_history``);
    - compute on a MIG device shared by several workloads: the live path splits the device's activity evenly (NVML
      has no per-process activity on MIG; DESIGN.md), the file has each workload's true share. Only the device
      total is the same, so these workloads are compared by their summed mean.
    """
    ours = {f.key: f for f in from_prometheus.features}
    theirs = {f.key: f for f in from_history.features}
    span = f"{WINDOW_S * 1000 - 1}ms"
    busy = stack.prometheus.query(
        "count by (model) (count by (model, gpu_uuid)"
        f" (max_over_time(workload_device:slicewise_memory_used_bytes:sum[{span}])))",
        stack.window.end.timestamp(),
    )
    gpus_with_workloads = {s["metric"]["model"]: int(s["value"][1]) for s in busy}
    assert set(ours) == set(theirs)
    # GPUs per model: Prometheus sees every GPU; a history file only GPUs that ran a workload (it has no rows for
    # idle ones). Each must be right for what it can see.
    fleet = build_scenario(SCENARIO)
    assert from_prometheus.gpus_now == dict(Counter(gpu.model.name for gpu in fleet.gpus))
    assert from_history.gpus_now == gpus_with_workloads
    shared = _shared_mig_devices()
    assert shared, "the mixed scenario shares some MIG devices between workloads"
    worst: dict[str, float] = {"memory_peak": 0.0, "memory_p99": 0.0, "compute_p95": 0.0, "compute_mean": 0.0}
    for key, live in ours.items():
        file = theirs[key]
        where = f"{key.workload} on {key.gpu_model}"
        assert (live.sharing, live.mig_profile, live.namespace, live.devices) == (
            file.sharing,
            file.mig_profile,
            file.namespace,
            file.devices,
        ), where
        assert abs(live.samples - file.samples) <= 3 * file.devices, where
        for name in ("memory_peak", "memory_p99"):
            a, b = getattr(live, f"{name}_bytes"), getattr(file, f"{name}_bytes")
            worst[name] = max(worst[name], abs(a - b) / b)
            assert abs(a - b) <= max(0.02 * b, MIB), f"{where} {name}: {a} vs {b}"
        assert (live.compute_p95_gpu_fraction is None) == (file.compute_p95_gpu_fraction is None), where
        if live.compute_p95_gpu_fraction is None or file.compute_p95_gpu_fraction is None or key.workload in shared:
            continue
        for name in ("compute_p95", "compute_mean"):
            a, b = getattr(live, f"{name}_gpu_fraction"), getattr(file, f"{name}_gpu_fraction")
            worst[name] = max(worst[name], abs(a - b))
            assert abs(a - b) <= 0.02, f"{where} {name}: {a} vs {b}"

    def busy_seconds(features: dict[WorkloadKey, WorkloadFeatures]) -> float:
        return sum((f.compute_mean_gpu_fraction or 0) * f.samples for k, f in features.items() if k.workload in shared)

    assert busy_seconds(ours) == pytest.approx(busy_seconds(theirs), rel=0.03)
    worst["shared_mig_total"] = abs(busy_seconds(ours) / busy_seconds(theirs) - 1)
    (stack.workdir / "agreement.json").write_text(json.dumps({"workloads": len(ours), "worst": worst}, indent=2))


# ------------------------------------------------------------------------------------- advisor.prom -> Prometheus


@pytest.fixture(scope="module")
def advised(stack: Stack, from_prometheus: SourceData, from_history: SourceData) -> dict[str, float]:
    """Both recommendations pushed to the Pushgateway, the Prometheus one last; returns its findings."""
    pushed: dict[str, float] = {}
    for name, data in (("history", from_history), ("prometheus", from_prometheus)):
        rec = recommend_from_features(
            data.features,
            window=data.window,
            source=data.description,
            gpus_now=data.gpus_now,
            gpus_per_node=data.gpus_per_node,
        )
        out = stack.workdir / f"advice-{name}"
        write_out(rec, out)
        body = (out / "advisor.prom").read_bytes()
        httpx.put(f"{stack.pushgateway_url}/metrics/job/slicewise-advisor", content=body, timeout=10).raise_for_status()
        pushed = {
            "last_run": rec.generated_at.timestamp(),
            "needed": float(rec.plan.gpus_needed),
            "now": float(rec.plan.gpus_now),
            "lower_bound": float(rec.plan.gpus_lower_bound),
            "workloads": float(len(rec.workloads)),
        }

        def seen(at: float = pushed["last_run"]) -> bool:
            got = stack.prometheus.query("max(slicewise_advisor_last_run_timestamp_seconds)")
            return bool(got) and abs(float(got[0]["value"][1]) - at) < 1e-3

        _wait_for(f"the {name} advice to be scraped from the Pushgateway", seen, timeout=15)
    return pushed


def test_advisor_findings_reach_prometheus(stack: Stack, advised: dict[str, float]) -> None:
    query = stack.prometheus.query
    for state in ("now", "needed", "lower_bound"):
        got = query(f'sum(slicewise_advisor_gpus{{state="{state}"}})')
        assert float(got[0]["value"][1]) == advised[state], state
    assert advised["lower_bound"] <= advised["needed"] <= advised["now"]
    decided = query("count(count by (workload) (slicewise_advisor_workload_decision_info))")
    assert float(decided[0]["value"][1]) == advised["workloads"]
    limits = query("count(slicewise_advisor_workload_memory_limit_bytes)")
    assert float(limits[0]["value"][1]) == advised["workloads"]
    # pushed with the job the alerts and dashboards expect, and kept (honor_labels)
    assert {s["metric"]["job"] for s in query("slicewise_advisor_gpus")} == {"slicewise-advisor"}
    # every workload the exporters reported has a decision and a limit the workload dashboard can draw
    live = {
        s["metric"]["workload"] for s in query("workload:slicewise_memory_used_bytes:sum", stack.window.end.timestamp())
    }
    limited = {s["metric"]["workload"] for s in query("slicewise_advisor_workload_memory_limit_bytes")}
    assert live <= limited


# -------------------------------------------------------------------------------------------------- dashboards


@pytest.mark.parametrize("dashboard", sorted(build.DASHBOARDS))
def test_every_dashboard_query_returns_data(stack: Stack, advised: dict[str, float], dashboard: str) -> None:
    board = json.loads((build.DASHBOARD_DIR / f"{dashboard}.json").read_text())
    when = TimeRange(stack.window.start.timestamp(), time.time(), step=2, rate_interval=f"{4 * SCRAPE_S}s")
    report = check_dashboard(stack.prometheus, board, when)
    assert report.variable_values, dashboard
    for name, values in report.variable_values.items():
        assert values, f"variable {name} lists no values"
    assert report.failures == [], "\n".join(report.failures)
    (stack.workdir / f"dashboard-{dashboard}.txt").write_text(
        f"{report.queries_run} queries; legitimately empty:\n" + "\n".join(report.legitimately_empty)
    )


@pytest.mark.parametrize(
    ("old", "new", "found"),
    [
        # a misspelt label: "All" still matches everything (an absent label is empty), so only the label check sees it
        ('workload=~"$workload"', 'worklaod=~"$workload"', "unknown_labels"),
        # a join on a label the right-hand side lacks: nothing matches, at "All" already
        ("on(job, instance, gpu_uuid)", "on(job, instance, gpu_uuid, pid)", "empty_at_all"),
    ],
    ids=["misspelt-label", "broken-join"],
)
def test_the_dashboard_check_catches_a_broken_query(stack: Stack, old: str, new: str, found: str) -> None:
    board = json.loads((build.DASHBOARD_DIR / "slicewise-workloads.json").read_text())
    panel = next(p for p in board["panels"] if p.get("title") == "Processes per workload")
    assert old in panel["targets"][0]["expr"]
    panel["targets"][0]["expr"] = panel["targets"][0]["expr"].replace(old, new)
    board["panels"], board["annotations"] = [panel], {"list": []}
    when = TimeRange(stack.window.start.timestamp(), stack.window.end.timestamp(), step=2, rate_interval="4s")
    report = check_dashboard(stack.prometheus, board, when)
    problems = getattr(report, found)
    assert problems and all("Processes per workload" in problem for problem in problems), report.failures

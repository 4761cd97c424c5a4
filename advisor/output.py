"""Write DESIGN.md's ``--out DIR``: recommendation.json, report.html, report.md, configs/*.yaml, advisor.prom.

Everything is rendered in memory first; then the whole directory is built beside ``--out`` and switched with it
in one atomic rename (``slicewise.atomic.write_tree``): a reader, or a run killed at any instant, sees the old
report or the new one, never a mix, and the next run removes what a killed run left. Files in ``--out`` that are
not part of the report (the demo's ``history/``) are carried over.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from advisor.backtest.model import BacktestResult
from advisor.model import Recommendation
from slicewise.atomic import write_tree
from slicewise.errors import BadInput, JobFailed

RECOMMENDATION = "recommendation.json"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
MIG_PARTED = "configs/mig-parted.yaml"
DEVICE_PLUGIN = "configs/device-plugin.yaml"
RESOURCE_REQUESTS = "configs/resource-requests.yaml"
NOS = "configs/nos.yaml"
# the GPU Operator's side (advisor/configs/): MIG manager ConfigMap, Helm values, the rollout plan node by node
MIG_PARTED_CONFIGMAP = "configs/mig-parted-configmap.yaml"
OPERATOR_VALUES = "configs/gpu-operator-values.yaml"
ROLLOUT_MD = "configs/rollout.md"
ROLLOUT_JSON = "configs/rollout.json"
METRICS = "advisor.prom"
BACKTEST = "backtest.json"
# Top-level names the report owns: a new report drops an old one's (configs/nos.yaml when nos no longer applies,
# backtest.json from a run that had one) instead of carrying it over beside a report it does not belong to.
# Anything else in --out (the demo's history/) is carried over.
REPORT_NAMES = frozenset({RECOMMENDATION, REPORT_HTML, REPORT_MD, "configs", METRICS, BACKTEST})


def advisor_metrics(rec: Recommendation) -> bytes:
    """The findings as Prometheus text format, for the node_exporter textfile collector or a Pushgateway.

    ``slicewise_advisor_workload_memory_limit_bytes`` has the ``workload`` label only (DESIGN.md); a workload on two
    GPU models gets its larger limit there (the decision_info series keep both).
    """
    registry = CollectorRegistry()
    gpus = Gauge(
        "slicewise_advisor_gpus",
        "GPUs per model: in use now, needed after the change, and the proven lower bound.",
        ["state", "gpu_model"],
        registry=registry,
    )
    for m in rec.plan.models:
        gpus.labels("now", m.gpu_model).set(m.gpus_now)
        gpus.labels("needed", m.gpu_model).set(m.gpus_needed)
        gpus.labels("lower_bound", m.gpu_model).set(m.gpus_lower_bound)
    info = Gauge(
        "slicewise_advisor_workload_decision_info",
        "The advisor's decision for a workload on a GPU model (always 1).",
        ["workload", "class", "gpu_model", "mode", "profile"],
        registry=registry,
    )
    limit = Gauge(
        "slicewise_advisor_workload_memory_limit_bytes",
        "Memory the workload may use under its decision (never below its observed peak).",
        ["workload"],
        registry=registry,
    )
    limits: dict[str, int] = {}
    for w in rec.workloads:
        d = w.decision
        info.labels(w.workload, w.class_id or "", w.gpu_model, d.mode.value, d.profile or "").set(1)
        limits[w.workload] = max(limits.get(w.workload, 0), d.memory_limit_bytes)
    for workload, value in limits.items():
        limit.labels(workload).set(value)
    last = Gauge(
        "slicewise_advisor_last_run_timestamp_seconds",
        "When the advisor made this recommendation (Unix time).",
        registry=registry,
    )
    last.set(rec.generated_at.timestamp())
    return generate_latest(registry)


def out_files(
    rec: Recommendation, report_md: str, report_html: str, backtest: BacktestResult | None = None
) -> dict[str, bytes]:
    """Every file of the --out layout, relative path -> content (``backtest.json`` where a backtest was run)."""
    files = {
        RECOMMENDATION: rec.to_json().encode() + b"\n",
        REPORT_HTML: report_html.encode(),
        REPORT_MD: report_md.encode(),
        MIG_PARTED: rec.configs.mig_parted.encode(),
        DEVICE_PLUGIN: rec.configs.device_plugin.encode(),
        RESOURCE_REQUESTS: rec.configs.resource_requests.encode(),
        METRICS: advisor_metrics(rec),
    }
    if rec.configs.nos is not None:
        files[NOS] = rec.configs.nos.encode()
    operator = {
        MIG_PARTED_CONFIGMAP: rec.configs.mig_parted_configmap,
        OPERATOR_VALUES: rec.configs.operator_values,
        ROLLOUT_MD: rec.configs.rollout_md,
        ROLLOUT_JSON: rec.configs.rollout_json,
    }
    files.update({name: text.encode() for name, text in operator.items() if text})  # "" in an older recommendation
    if backtest is not None:
        files[BACKTEST] = backtest.to_json().encode() + b"\n"
    return files


def write_files(out: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Replace the report in ``out`` with ``files`` (relative path -> content, every file of the report) in one
    atomic switch; on any error ``out`` is left exactly as it was."""
    if out.exists() and not out.is_dir():
        raise JobFailed(f"{out}: exists and is not a directory")
    real, here = Path(os.path.realpath(out)), Path.cwd().resolve()
    if real == here or real in here.parents:
        raise BadInput(f"{out}: the report replaces the whole directory; give it one of its own, not the current one")
    try:
        write_tree(out, files, replaced=REPORT_NAMES)
    except OSError as exc:
        raise JobFailed(f"cannot write the report to {out}: {exc}") from exc
    return [out / name for name in files]


def read_previous(out: Path) -> Recommendation | None:
    """Last run's recommendation in ``out``, for the report's "what changed"; None if absent or unreadable (an old
    or damaged file must not stop this week's report)."""
    path = out / RECOMMENDATION
    try:
        return Recommendation.from_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def write_out(
    rec: Recommendation,
    out: Path,
    previous: Recommendation | None = None,
    backtest: BacktestResult | None = None,
) -> list[Path]:
    """Render the reports (with what changed since ``previous``, by default the recommendation already in ``out``,
    and the ``backtest`` section) and write the whole --out directory atomically; returns the paths written."""
    from advisor.report import render_html, render_markdown

    if previous is None:
        previous = read_previous(out)
    report_md = render_markdown(rec, previous, backtest=backtest)
    report_html = render_html(rec, previous, backtest=backtest).document
    return write_files(out, out_files(rec, report_md, report_html, backtest))

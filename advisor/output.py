"""Write DESIGN.md's ``--out DIR``: recommendation.json, report.html, report.md, configs/*.yaml, advisor.prom.

Everything is rendered in memory first; then every file is written to a temporary name beside its target and only
when all of them are written are they renamed into place (slicewise.atomic). A run that fails at any point, while
rendering or while writing, leaves the previous report as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from advisor.model import Recommendation
from slicewise.atomic import atomic_path
from slicewise.errors import JobFailed

RECOMMENDATION = "recommendation.json"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
MIG_PARTED = "configs/mig-parted.yaml"
DEVICE_PLUGIN = "configs/device-plugin.yaml"
RESOURCE_REQUESTS = "configs/resource-requests.yaml"
NOS = "configs/nos.yaml"
METRICS = "advisor.prom"


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


def out_files(rec: Recommendation, report_md: str, report_html: str) -> dict[str, bytes]:
    """Every file of the --out layout, relative path -> content."""
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
    return files


def write_files(out: Path, files: Mapping[str, bytes]) -> list[Path]:
    """Write all files as temporaries, then rename them all; on any error none is renamed."""
    if out.exists() and not out.is_dir():
        raise JobFailed(f"{out}: exists and is not a directory")
    targets = [out / name for name in files]
    try:
        with contextlib.ExitStack() as stack:
            for target, data in zip(targets, files.values(), strict=True):
                tmp = stack.enter_context(atomic_path(target))
                tmp.write_bytes(data)
    except OSError as exc:
        raise JobFailed(f"cannot write the report to {out}: {exc}") from exc
    return targets


def read_previous(out: Path) -> Recommendation | None:
    """Last run's recommendation in ``out``, for the report's "what changed"; None if absent or unreadable (an old
    or damaged file must not stop this week's report)."""
    path = out / RECOMMENDATION
    try:
        return Recommendation.from_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def write_out(rec: Recommendation, out: Path, previous: Recommendation | None = None) -> list[Path]:
    """Render the reports (with what changed since ``previous``, by default the recommendation already in ``out``)
    and write the whole --out directory atomically; returns the paths written."""
    from advisor.report import render_html, render_markdown

    if previous is None:
        previous = read_previous(out)
    report_md = render_markdown(rec, previous)
    report_html = render_html(rec, previous).document
    return write_files(out, out_files(rec, report_md, report_html))

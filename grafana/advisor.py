"""Advisor findings: GPUs in use now, needed under the recommendation and the proven lower bound, per GPU model, and
the decision (MIG profile, MPS, time-slicing or a whole GPU) for each class and workload. Reads the metrics of
``advisor.prom`` (DESIGN.md, "What --out DIR holds"), pushed to a Pushgateway or left for the textfile collector."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders

from grafana import kit
from grafana.kit import BYTES, COUNT, GPUS, PanelBuilder, Query

UID = "slicewise-advisor"

SELECTED = {"gpu_model": "model", "class": "class", "workload": "workload"}
DECISIONS = kit.selector("slicewise_advisor_workload_decision_info", **SELECTED)
MIG_DECISIONS = kit.selector("slicewise_advisor_workload_decision_info", 'mode="mig"', **SELECTED)


def gpus(state: str) -> str:
    return f'sum(slicewise_advisor_gpus{{state="{state}", gpu_model=~"$model"}})'


def variables() -> list[builders.DatasourceVariable | builders.QueryVariable]:
    return [
        kit.datasource_variable(),
        kit.label_variable(
            "model", "GPU model", "slicewise_advisor_gpus", "gpu_model", "GPU models in the advisor's plan."
        ),
        kit.label_variable(
            "class",
            "Class",
            'slicewise_advisor_workload_decision_info{gpu_model=~"$model"}',
            "class",
            "Workload classes the advisor found (workloads with a similar memory and compute envelope).",
        ),
        kit.label_variable(
            "workload",
            "Workload",
            'slicewise_advisor_workload_decision_info{gpu_model=~"$model", class=~"$class"}',
            "workload",
            "Workloads the advisor decided on.",
        ),
    ]


def plan_panels() -> list[PanelBuilder]:
    return [
        kit.stat_panel("GPUs now", "GPUs the workloads use today.", Query(gpus("now"), instant=True), GPUS),
        kit.stat_panel(
            "GPUs needed",
            "GPUs the recommended layout (MIG geometry, MPS and time-sliced groups) needs for the same workloads.",
            Query(gpus("needed"), instant=True),
            GPUS,
        ),
        kit.stat_panel(
            "Lower bound",
            "A proven lower bound on the GPUs any layout needs (the LP relaxation of the packing).",
            Query(gpus("lower_bound"), instant=True),
            GPUS,
        ),
        kit.stat_panel(
            "GPUs that can be freed",
            "GPUs now minus GPUs needed.",
            Query(f"{gpus('now')} - {gpus('needed')}", instant=True),
            GPUS,
            colours=kit.thresholds((None, "text"), (1, "green")),
        ),
        kit.stat_panel(
            "Last run",
            "When the advisor last published its findings.",
            Query("max(slicewise_advisor_last_run_timestamp_seconds) * 1000", instant=True),
            "dateTimeFromNow",
        ),
        kit.stat_panel(
            "Workloads decided",
            "Workloads with a decision in the last run.",
            Query(f"count(count by (workload) ({DECISIONS})) or vector(0)", instant=True),
            COUNT,
        ),
        kit.bars_panel(
            "GPUs per model: now, needed, lower bound",
            "Per GPU model, the GPUs in use now, needed under the recommendation, and the lower bound.",
            [Query('slicewise_advisor_gpus{gpu_model=~"$model"}', "{{gpu_model}} {{state}}", instant=True)],
            GPUS,
        ),
        kit.timeseries_panel(
            "GPUs needed over time",
            "The advisor's figures run after run: a rising 'needed' with a flat 'now' means the fleet is filling up.",
            [Query('slicewise_advisor_gpus{gpu_model=~"$model"}', "{{gpu_model}} {{state}}")],
            GPUS,
        ),
    ]


def decision_panels() -> list[PanelBuilder]:
    return [
        kit.pie_panel(
            "Decisions by mode",
            "How many workloads get a MIG slice, MPS, time-slicing or a whole GPU.",
            Query(f"count by (mode) ({DECISIONS})", "{{mode}}", instant=True),
        ),
        kit.bars_panel(
            "MIG profiles recommended",
            "Workloads per recommended MIG profile.",
            [Query(f"count by (gpu_model, profile) ({MIG_DECISIONS})", "{{gpu_model}} {{profile}}", instant=True)],
            COUNT,
            width=16,
        ),
        kit.table_panel(
            "Decisions per class",
            "Each class's decision per GPU model and how many workloads it covers.",
            [Query(f"count by (class, gpu_model, mode, profile) ({DECISIONS})", instant=True, table=True)],
            columns=["class", "gpu_model", "mode", "profile", "Value"],
            rename={"gpu_model": "GPU model", "Value": "workloads"},
        ),
        kit.table_panel(
            "Decisions per workload",
            "Each workload's class, decision and the memory it may use under it.",
            [
                Query(f"max by (workload, class, gpu_model, mode, profile) ({DECISIONS})", instant=True, table=True),
                Query(
                    'max by (workload) (slicewise_advisor_workload_memory_limit_bytes{workload=~"$workload"})',
                    instant=True,
                    table=True,
                ),
            ],
            columns=["workload", "class", "gpu_model", "mode", "profile", "Value #B"],
            rename={"gpu_model": "GPU model", "Value #B": "memory limit"},
            units={"Value #B": BYTES},
            height=12,
        ),
    ]


def dashboard() -> builders.Dashboard:
    board = kit.new_dashboard(
        UID,
        "slicewise / Advisor findings",
        "GPUs now, needed and the lower bound, and the decision for each class and workload, from slicewise advise.",
    )
    for variable in variables():
        board = board.with_variable(variable)
    for title, panels in (("Plan", plan_panels()), ("Decisions", decision_panels())):
        board = board.with_row(kit.row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board

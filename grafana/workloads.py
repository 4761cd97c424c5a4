"""Workloads: each workload's memory and compute demand over time, on each device it runs on, against the memory
limit of the advisor's last recommendation for it (``slicewise_advisor_workload_memory_limit_bytes``)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders

from grafana import kit
from grafana.kit import BYTES, COUNT, GPUS, PERCENT, PanelBuilder, Query

UID = "slicewise-workloads"

SELECTED = {"node": "node", "model": "model", "namespace": "namespace", "workload": "workload"}
MEMORY = kit.selector("workload_device:slicewise_memory_used_bytes:sum", **SELECTED)
COMPUTE = kit.selector("workload_device:slicewise_sm_active:gpu_fraction", **SELECTED)
ADVISED_LIMIT = (
    'max by (workload) (slicewise_advisor_workload_memory_limit_bytes{workload=~"$workload"}) '
    f"and on(workload) group by (workload) ({MEMORY})"
)
DEVICE = "{{workload}} on {{node}} GPU {{gpu}} {{profile}}"


def namespace_variable() -> builders.QueryVariable:
    return kit.label_variable(
        "namespace",
        "Namespace",
        'workload_device:slicewise_memory_used_bytes:sum{node=~"$node", model=~"$model"}',
        "namespace",
        "Kubernetes namespaces of the workloads (workloads outside Kubernetes have none; All includes them).",
    )


def workload_variable() -> builders.QueryVariable:
    return kit.label_variable(
        "workload",
        "Workload",
        'workload_device:slicewise_memory_used_bytes:sum{node=~"$node", model=~"$model", namespace=~"$namespace"}',
        "workload",
        "Workloads: <namespace>/<owner> in Kubernetes, else a container, Slurm job, systemd unit or user/command.",
    )


def advisor_runs() -> builders.AnnotationQuery:
    """Marks on the time axis where the advisor published new findings (and so new limits)."""
    return (
        builders.AnnotationQuery()
        .name("Advisor runs")
        .datasource(kit.DATASOURCE)
        .enable(True)
        .icon_color("purple")
        .expr("changes(slicewise_advisor_last_run_timestamp_seconds[5m]) > 0")
    )


def demand_panels() -> list[PanelBuilder]:
    return [
        kit.timeseries_panel(
            "Memory per workload and device, against its advised limit",
            "Memory each workload holds on each device (GPU or MIG device), and the memory limit of the advisor's "
            "last recommendation for it (dashed). Above the line it would not fit the recommended slice.",
            [Query(MEMORY, DEVICE), Query(ADVISED_LIMIT, "limit {{workload}}")],
            BYTES,
            width=24,
            height=10,
            dashed="^limit .*",
        ),
        kit.timeseries_panel(
            "Compute demand per workload",
            "SMs each workload keeps busy, as whole GPUs, added up over its devices. On MIG the device's activity "
            "is split evenly among its workloads; on A100/A30 MIG (no GPM) compute is unknown and not shown.",
            [Query(f"sum by (workload) ({COMPUTE})", "{{workload}}")],
            GPUS,
        ),
        kit.timeseries_panel(
            "Compute demand per workload and device",
            "The same, per device the workload runs on.",
            [Query(COMPUTE, DEVICE)],
            GPUS,
        ),
        kit.timeseries_panel(
            "Memory use against the advised limit",
            "The workload's largest per-device memory as a share of its advised limit: 100 % means it would fill "
            "its recommended MIG slice or MPS memory limit.",
            [
                Query(
                    f"max by (workload) ({MEMORY}) / on(workload) group_left() "
                    'max by (workload) (slicewise_advisor_workload_memory_limit_bytes{workload=~"$workload"})',
                    "{{workload}}",
                )
            ],
            PERCENT,
        ),
        kit.timeseries_panel(
            "Processes per workload",
            "GPU processes of each workload (replicas, workers).",
            [
                Query(
                    "count by (workload) (slicewise_process_memory_used_bytes"
                    '{node=~"$node", namespace=~"$namespace", workload=~"$workload"}'
                    ' * on(job, instance, gpu_uuid) group_left(model) slicewise_gpu_info{model=~"$model"})',
                    "{{workload}}",
                )
            ],
            COUNT,
        ),
    ]


def now_panels() -> list[PanelBuilder]:
    return [
        kit.table_panel(
            "Workloads now",
            "Each workload's memory and compute now, the devices it is on, and its advised memory limit.",
            [
                Query(f"sum by (workload, namespace) ({MEMORY})", instant=True, table=True),
                Query(f"sum by (workload, namespace) ({COMPUTE})", instant=True, table=True),
                Query(f"count by (workload, namespace) ({MEMORY})", instant=True, table=True),
                Query(ADVISED_LIMIT, instant=True, table=True),
            ],
            columns=["workload", "namespace", "Value #A", "Value #B", "Value #C", "Value #D"],
            rename={"Value #A": "memory", "Value #B": "GPUs busy", "Value #C": "devices", "Value #D": "advised limit"},
            units={"Value #A": BYTES, "Value #B": GPUS, "Value #D": BYTES},
            height=10,
        )
    ]


def dashboard() -> builders.Dashboard:
    board = kit.new_dashboard(
        UID,
        "slicewise / Workloads",
        "Memory and compute demand per workload over time, against the advisor's memory limit for it.",
    ).annotation(advisor_runs())
    variables = (
        kit.datasource_variable(),
        kit.node_variable(),
        kit.model_variable(),
        namespace_variable(),
        workload_variable(),
    )
    for variable in variables:
        board = board.with_variable(variable)
    for title, panels in (("Demand over time", demand_panels()), ("Now", now_panels())):
        board = board.with_row(kit.row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board

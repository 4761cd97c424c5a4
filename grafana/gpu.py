"""GPU and MIG detail: one GPU (or a few) at a time: its memory and SM activity, each MIG instance's memory and GPM
activity, and the processes on it with their workloads."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders

from grafana import kit
from grafana.kit import BYTES, GPUS, PERCENT, PanelBuilder, Query

UID = "slicewise-gpu"


def on_gpu(metric: str, *extra: str) -> str:
    return kit.selector(metric, *extra, node="node", gpu_uuid="gpu")


def gpu_variable() -> builders.QueryVariable:
    return kit.label_variable(
        "gpu",
        "GPU",
        'slicewise_gpu_info{node=~"$node", model=~"$model"}',
        "gpu_uuid",
        "GPU UUIDs on the selected nodes and models.",
    )


def gpu_panels() -> list[PanelBuilder]:
    legend = "{{node}} GPU {{gpu}}"
    return [
        kit.table_panel(
            "GPU",
            "What the driver reports about the GPU: model, driver, MIG mode, compute mode, MPS.",
            [Query(on_gpu("slicewise_gpu_info"), instant=True, table=True)],
            columns=["node", "gpu", "gpu_uuid", "model", "driver_version", "mig_mode", "compute_mode", "mps"],
            rename={"gpu": "index", "gpu_uuid": "UUID", "driver_version": "driver", "mig_mode": "MIG"},
            height=5,
        ),
        kit.timeseries_panel(
            "Memory",
            "Framebuffer memory in use, against the GPU's total (dashed).",
            [
                Query(on_gpu("slicewise_gpu_memory_used_bytes"), legend),
                Query(on_gpu("slicewise_gpu_memory_total_bytes"), f"total {legend}"),
            ],
            BYTES,
            dashed="^total .*",
        ),
        kit.timeseries_panel(
            "SM activity",
            "Share of the GPU's SMs busy: the driver's figure, or on a MIG GPU the sum of its MIG devices from GPM "
            "(none on A100/A30 MIG, which have no GPM).",
            [Query(on_gpu("gpu:slicewise_sm_active:gpu_fraction"), legend)],
            PERCENT,
            max_value=1,
        ),
    ]


def mig_panels() -> list[PanelBuilder]:
    instance = "{{node}} GPU {{gpu}} GI {{gi}} {{profile}}"
    device = "{{node}} GPU {{gpu}} GI {{gi}} CI {{ci}} {{profile}}"
    return [
        kit.table_panel(
            "MIG devices",
            "GPU instance (gi), compute instance (ci), profile and placement of each MIG device.",
            [Query(on_gpu("slicewise_mig_info"), instant=True, table=True)],
            columns=["gpu", "gi", "ci", "profile", "placement_start", "placement_size", "mig_uuid"],
            rename={"gpu": "GPU", "placement_start": "start", "placement_size": "size", "mig_uuid": "UUID"},
            height=7,
        ),
        kit.timeseries_panel(
            "MIG instance memory",
            "Memory in use per GPU instance (memory belongs to the GI, shared by its compute instances).",
            [Query(on_gpu("slicewise_mig_memory_used_bytes"), instance)],
            BYTES,
        ),
        kit.bars_panel(
            "MIG instance memory use",
            "Share of each GPU instance's memory in use now; MIG memory is a hard limit.",
            [Query(on_gpu("mig_instance:slicewise_memory_used:ratio"), instance, instant=True)],
            PERCENT,
            max_value=1,
            colours=kit.FILL_LEVEL,
        ),
        kit.timeseries_panel(
            "MIG SM activity",
            "Share of each MIG device's own SMs busy (GPM, Hopper and newer).",
            [Query(on_gpu("slicewise_mig_sm_active_ratio"), device)],
            PERCENT,
            max_value=1,
        ),
        kit.timeseries_panel(
            "MIG SM occupancy and DRAM activity",
            "GPM SM occupancy (warps resident) and DRAM bandwidth use of each MIG device.",
            [
                Query(on_gpu("slicewise_mig_sm_occupancy_ratio"), f"occupancy {device}"),
                Query(on_gpu("slicewise_mig_dram_active_ratio"), f"DRAM {device}"),
            ],
            PERCENT,
            max_value=1,
        ),
        kit.timeseries_panel(
            "MIG activity as a share of the GPU",
            "Each MIG device's busy SMs as a fraction of the whole GPU (stacked: they add up to the GPU's activity).",
            [Query(on_gpu("mig_device:slicewise_sm_active:gpu_fraction"), device)],
            GPUS,
            stacked=True,
        ),
    ]


def process_panels() -> list[PanelBuilder]:
    process = "{{workload}} pid {{pid}} (GPU {{gpu}} {{gi}})"
    return [
        kit.table_panel(
            "Processes",
            "GPU processes now, with the workload each is attributed to and its memory.",
            [Query(on_gpu("slicewise_process_memory_used_bytes"), instant=True, table=True)],
            columns=["node", "gpu", "gi", "ci", "pid", "process", "workload", "namespace", "pod", "container", "Value"],
            rename={"Value": "memory", "gpu": "GPU"},
            units={"Value": BYTES},
            height=9,
        ),
        kit.timeseries_panel(
            "Process memory",
            "Memory per process.",
            [Query(on_gpu("slicewise_process_memory_used_bytes"), process)],
            BYTES,
        ),
        kit.timeseries_panel(
            "Process SM activity",
            "Per-process share of the GPU's SMs, where NVML measures it (whole GPUs, not MIG devices).",
            [Query(on_gpu("slicewise_process_sm_active_ratio"), process)],
            PERCENT,
            max_value=1,
        ),
        kit.timeseries_panel(
            "Workload demand on this GPU",
            "Compute demand of each workload here as a fraction of the GPU; on MIG, the device's activity split "
            "evenly among its workloads.",
            [Query(on_gpu("workload_device:slicewise_sm_active:gpu_fraction"), "{{workload}} {{profile}}")],
            GPUS,
            stacked=True,
        ),
    ]


def dashboard() -> builders.Dashboard:
    board = kit.new_dashboard(
        UID, "slicewise / GPU and MIG detail", "One GPU at a time: its MIG instances and the processes on it."
    )
    for variable in (kit.datasource_variable(), kit.node_variable(), kit.model_variable(), gpu_variable()):
        board = board.with_variable(variable)
    for title, panels in (("GPU", gpu_panels()), ("MIG devices", mig_panels()), ("Processes", process_panels())):
        board = board.with_row(kit.row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board

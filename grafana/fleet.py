"""Fleet overview: how many GPUs and MIG devices there are, how much of their memory and compute is used, by GPU
model and node, and how much sits idle (the waste the advisor tries to win back)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders

from grafana import kit
from grafana.kit import BYTES, COUNT, GPU_KEY, GPUS, MIG_DEVICE_KEY, PERCENT, PanelBuilder, Query

UID = "slicewise-fleet"

GPU_FILTER = kit.matchers(node="node", model="model")
GPUS_SELECTED = f"slicewise_gpu_info{{{GPU_FILTER}}}"
SM_ACTIVE = kit.selector("gpu:slicewise_sm_active:gpu_fraction", node="node", model="model")
MEMORY_USED = kit.with_model("slicewise_gpu_memory_used_bytes", GPU_FILTER)
MEMORY_TOTAL = kit.with_model("slicewise_gpu_memory_total_bytes", GPU_FILTER)
MEMORY_FREE = kit.with_model("(slicewise_gpu_memory_total_bytes - slicewise_gpu_memory_used_bytes)", GPU_FILTER)
MIG_GPUS = kit.selector("slicewise_gpu_info", 'mig_mode="enabled"', node="node", model="model")
MIG_DEVICES = kit.with_model("slicewise_mig_info", GPU_FILTER)
PROCESSES = kit.with_model("slicewise_process_memory_used_bytes", GPU_FILTER)
WORKLOAD_MEMORY = kit.selector("workload_device:slicewise_memory_used_bytes:sum", node="node", model="model")


def inventory() -> list[PanelBuilder]:
    return [
        kit.stat_panel("GPUs", "GPUs the exporters report.", Query(f"count({GPUS_SELECTED})", instant=True), COUNT),
        kit.stat_panel(
            "MIG-enabled GPUs",
            "GPUs with MIG mode on.",
            Query(f"count({MIG_GPUS}) or vector(0)", instant=True),
            COUNT,
        ),
        kit.stat_panel(
            "MIG devices",
            "MIG devices (compute instances) across the selected GPUs.",
            Query(f"count({MIG_DEVICES}) or vector(0)", instant=True),
            COUNT,
        ),
        kit.stat_panel(
            "Workloads",
            "Distinct workloads with a process on the selected GPUs.",
            Query(f"count(count by (workload) ({WORKLOAD_MEMORY})) or vector(0)", instant=True),
            COUNT,
        ),
        kit.stat_panel(
            "Processes", "GPU processes now.", Query(f"count({PROCESSES}) or vector(0)", instant=True), COUNT
        ),
        kit.stat_panel(
            "Busy GPU-equivalents",
            "Whole GPUs' worth of SMs busy now: per-GPU SM activity added up (MIG GPUs from GPM; unknown on A100 and "
            "A30 MIG, which are left out).",
            Query(f"sum({SM_ACTIVE})", instant=True),
            GPUS,
            decimals=2,
        ),
        kit.table_panel(
            "GPUs by node and model",
            "How many GPUs each node has, per model, MIG mode and MPS state.",
            [Query(f"count by (node, model, mig_mode, mps) ({GPUS_SELECTED})", instant=True, table=True)],
            columns=["node", "model", "mig_mode", "mps", "Value"],
            rename={"Value": "GPUs", "mig_mode": "MIG", "mps": "MPS"},
            height=7,
        ),
    ]


def use_by_model_and_node() -> list[PanelBuilder]:
    per_gpu = "{{node}} GPU {{gpu}} ({{model}})"
    return [
        kit.timeseries_panel(
            "Memory used by GPU model",
            "Framebuffer memory in use, added up per GPU model, against the model's total (dashed).",
            [
                Query(f"sum by (model) ({MEMORY_USED})", "{{model}}"),
                Query(f"sum by (model) ({MEMORY_TOTAL})", "capacity {{model}}"),
            ],
            BYTES,
            dashed="^capacity .*",
        ),
        kit.timeseries_panel(
            "Busy GPU-equivalents by GPU model",
            "SM activity as whole GPUs' worth of busy SMs, added up per model.",
            [Query(f"sum by (model) ({SM_ACTIVE})", "{{model}}")],
            GPUS,
        ),
        kit.timeseries_panel(
            "Memory used by node",
            "Framebuffer memory in use on each node's selected GPUs.",
            [Query(f"sum by (node) ({MEMORY_USED})", "{{node}}")],
            BYTES,
        ),
        kit.timeseries_panel(
            "Busy GPU-equivalents by node",
            "SM activity as whole GPUs' worth of busy SMs, added up per node.",
            [Query(f"sum by (node) ({SM_ACTIVE})", "{{node}}")],
            GPUS,
        ),
        kit.bars_panel(
            "Memory use per GPU",
            "Share of each GPU's memory in use now.",
            [Query(kit.selector("gpu:slicewise_memory_used:ratio", node="node", model="model"), per_gpu, instant=True)],
            PERCENT,
            max_value=1,
            colours=kit.FILL_LEVEL,
        ),
        kit.bars_panel(
            "SM activity per GPU",
            "Share of each GPU's SMs busy now (MIG GPUs: the sum of their MIG devices, from GPM).",
            [Query(SM_ACTIVE, per_gpu, instant=True)],
            PERCENT,
            max_value=1,
        ),
    ]


def waste() -> list[PanelBuilder]:
    idle_memory = (
        f"{WORKLOAD_MEMORY} and on({GPU_KEY}, gi, ci, workload) "
        f"({kit.selector('workload_device:slicewise_sm_active:gpu_fraction', node='node', model='model')} < 0.05)"
    )
    return [
        kit.stat_panel(
            "Idle GPU-equivalents",
            "Whole GPUs' worth of SMs idle now, on GPUs whose activity is known.",
            Query(f"sum(1 - {SM_ACTIVE})", instant=True),
            GPUS,
            decimals=2,
        ),
        kit.stat_panel(
            "Unused GPU memory",
            "Framebuffer memory not in use now on the selected GPUs.",
            Query(f"sum({MEMORY_FREE})", instant=True),
            BYTES,
        ),
        kit.stat_panel(
            "GPUs without a workload",
            "GPUs with no process on them (nor on any of their MIG devices).",
            Query(
                f"count({GPUS_SELECTED} unless on({GPU_KEY}) slicewise_process_memory_used_bytes) or vector(0)",
                instant=True,
            ),
            COUNT,
        ),
        kit.stat_panel(
            "MIG devices without a workload",
            "MIG devices that exist but run no process: slices carved out and left empty.",
            Query(
                f"count({MIG_DEVICES} unless on({MIG_DEVICE_KEY}) slicewise_process_memory_used_bytes) or vector(0)",
                instant=True,
            ),
            COUNT,
        ),
        kit.stat_panel(
            "Memory held by idle workloads",
            "Memory of workloads that keep less than 5 % of a GPU busy on that device: the usual notebook pattern.",
            Query(f"sum({idle_memory}) or vector(0)", instant=True),
            BYTES,
        ),
        kit.stat_panel(
            "Workloads per GPU",
            "Workloads per GPU with any workload: above 1 means sharing (MIG, MPS or time-slicing).",
            Query(
                f"count(count by (workload, {GPU_KEY}) ({WORKLOAD_MEMORY})) "
                f"/ count(count by ({GPU_KEY}) ({WORKLOAD_MEMORY}))",
                instant=True,
            ),
            COUNT,
            decimals=2,
        ),
        kit.timeseries_panel(
            "Idle GPU-equivalents by GPU model",
            "Whole GPUs' worth of SMs idle, per model: capacity a better layout could give back.",
            [Query(f"sum by (model) (1 - {SM_ACTIVE})", "{{model}}")],
            GPUS,
        ),
        kit.timeseries_panel(
            "Memory held by idle workloads, by GPU model",
            "Memory held on a device by workloads keeping less than 5 % of a GPU busy there (0 for models with "
            "none; models whose activity is unknown are left out).",
            [Query(f"sum by (model) ({idle_memory}) or sum by (model) (0 * {SM_ACTIVE})", "{{model}}")],
            BYTES,
        ),
    ]


def exporter_health() -> list[PanelBuilder]:
    on_nodes = kit.matchers(node="node")
    return [
        kit.stat_panel(
            "Exporters with NVML up",
            "Exporters that answered their last scrape with NVML initialised (the driver ready).",
            Query(f"sum(slicewise_exporter_nvml_up{{{on_nodes}}})", instant=True),
            COUNT,
        ),
        kit.stat_panel(
            "Lost GPUs",
            "GPUs an exporter reports as lost (NVML_ERROR_GPU_IS_LOST): they need a reset or a reboot.",
            Query(f"count(slicewise_exporter_gpu_up{{{on_nodes}}} == 0) or vector(0)", instant=True),
            COUNT,
            colours=kit.thresholds((None, "green"), (1, "red")),
        ),
        kit.timeseries_panel(
            "NVML errors per second",
            "Failed NVML calls by node, function and error (answers of 'not supported' are not errors). 0 when "
            "there are none.",
            [
                Query(
                    "sum by (node, function, error) "
                    f"(rate(slicewise_exporter_nvml_errors_total{{{on_nodes}}}[$__rate_interval]))"
                    f" or sum by (node) (0 * slicewise_exporter_nvml_up{{{on_nodes}}})",
                    "{{node}} {{function}} {{error}}",
                )
            ],
            COUNT,
            width=8,
        ),
        kit.timeseries_panel(
            "Scrape time",
            "How long each exporter took to read NVML and name the workloads, per scrape.",
            [Query(f"slicewise_exporter_collect_duration_seconds{{{on_nodes}}}", "{{node}}")],
            "s",
            width=8,
        ),
    ]


def dashboard() -> builders.Dashboard:
    board = kit.new_dashboard(
        UID,
        "slicewise / Fleet overview",
        "GPUs and MIG devices, memory and SM use by GPU model and node, and what sits idle.",
    )
    for variable in (kit.datasource_variable(), kit.node_variable(), kit.model_variable()):
        board = board.with_variable(variable)
    sections = (
        ("Fleet", inventory()),
        ("Use by GPU model and node", use_by_model_and_node()),
        ("Waste", waste()),
        ("Exporters", exporter_health()),
    )
    for title, panels in sections:
        board = board.with_row(kit.row(title))
        for panel in panels:
            board = board.with_panel(panel)
    return board

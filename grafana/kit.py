"""Building blocks the slicewise dashboards share: the data source, template variables, selectors and panel kinds.

Every panel reads Prometheus through the ``$datasource`` variable, so one JSON file works against any Prometheus
data source a Grafana has. Multi-value variables use ``.*`` as their "All" value, so that "All" also matches series
where the label is empty (a workload outside Kubernetes has no namespace).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import bargauge, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus as prometheus_builders
from grafana_foundation_sdk.cog import variants as cog_variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import piechart as piechart_models
from grafana_foundation_sdk.models import prometheus as prometheus_models

PanelBuilder = Builder[models.Panel]

DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
ALL_VALUE = ".*"
TAGS = ["slicewise", "gpu"]

# Units (Grafana's unit ids)
BYTES = "bytes"
PERCENT = "percentunit"  # 0..1 shown as a percentage
GPUS = "suffix: GPUs"  # GPU-equivalents: fractions of whole GPUs added up
COUNT = "short"

# Joins: a GPU is unique per scrape target, and target labels (node) pass through (deploy/prometheus/*.rules.yml).
GPU_KEY = "job, instance, gpu_uuid"
MIG_DEVICE_KEY = "job, instance, gpu_uuid, gi, ci"


def matchers(**label_to_variable: str) -> str:
    """``node="node"`` -> ``node=~"$node"``: one regex matcher per label, against the variable of that name."""
    return ", ".join(f'{label}=~"${variable}"' for label, variable in label_to_variable.items())


def selector(metric: str, *extra: str, **label_to_variable: str) -> str:
    """A series selector filtered by dashboard variables, plus any literal matchers (``'mode="mig"'``)."""
    parts = [matchers(**label_to_variable), *extra]
    inner = ", ".join(part for part in parts if part)
    return f"{metric}{{{inner}}}" if inner else metric


def with_model(expr: str, gpu_filter: str) -> str:
    """Copy the GPU model onto a GPU-level series, keeping only GPUs that ``gpu_filter`` selects on slicewise_gpu_info.

    Only slicewise_gpu_info carries ``model``; the recording rules copy it onto their own series, raw metrics need
    this join.
    """
    return f"{expr} * on({GPU_KEY}) group_left(model) slicewise_gpu_info{{{gpu_filter}}}"


# ---------------------------------------------------------------------------------------------------------------
# template variables


def datasource_variable() -> builders.DatasourceVariable:
    return builders.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_variable(name: str, label: str, series: str, label_name: str, description: str) -> builders.QueryVariable:
    """A multi-value variable listing the values of ``label_name`` on ``series`` (which may use earlier variables)."""
    return (
        builders.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(f"label_values({series}, {label_name})")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .multi(True)
        .include_all(True)
        .all_value(ALL_VALUE)
        .current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def node_variable() -> builders.QueryVariable:
    return label_variable(
        "node", "Node", "slicewise_gpu_info", "node", "GPU nodes (the `node` target label of the exporter's scrape)."
    )


def model_variable() -> builders.QueryVariable:
    return label_variable(
        "model", "GPU model", 'slicewise_gpu_info{node=~"$node"}', "model", "NVML product names of the GPUs."
    )


def dashboard_links() -> builders.DashboardLink:
    """A drop-down to the other slicewise dashboards, carrying the time range and variables across."""
    return (
        builders.DashboardLink("slicewise")
        .type(models.DashboardLinkType.DASHBOARDS)
        .tags(["slicewise"])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    )


def new_dashboard(uid: str, title: str, description: str) -> builders.Dashboard:
    return (
        builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .link(dashboard_links())
    )


# ---------------------------------------------------------------------------------------------------------------
# queries and panels


@dataclass(frozen=True)
class Query:
    """One PromQL target. ``instant`` for "now" figures (stats, tables); ``table`` for label columns in a table."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def targets(queries: Sequence[Query]) -> list[Builder[cog_variants.Dataquery]]:
    built: list[Builder[cog_variants.Dataquery]] = []
    for index, query in enumerate(queries):
        target = prometheus_builders.Dataquery().ref_id(chr(ord("A") + index)).expr(query.expr)
        target = target.instant() if query.instant else target.range()
        if query.legend:
            target = target.legend_format(query.legend)
        if query.table:
            target = target.format(prometheus_models.PromQueryFormat.TABLE)
        built.append(target)
    return built


def thresholds(*steps: tuple[float | None, str]) -> builders.ThresholdsConfig:
    """Colour steps: the first step's value is None (from minus infinity)."""
    return (
        builders.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=value, color=color) for value, color in steps])
    )


FILL_LEVEL = thresholds((None, "green"), (0.8, "orange"), (0.95, "red"))  # memory: MIG OOMs at 100 %
QUIET = thresholds((None, "text"))


def timeseries_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    max_value: float | None = None,
    dashed: str | None = None,
) -> timeseries.Panel:
    """A time series; ``dashed`` is a regex of series names drawn as dashed red lines (limits)."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .unit(unit)
        .min(0)
        .span(width)
        .height(height)
        .line_width(1)
        .fill_opacity(10 if not stacked else 40)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    if max_value is not None:
        panel = panel.max(max_value)
    if dashed is not None:
        panel = panel.override_by_regexp(
            dashed,
            [
                models.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
                models.DynamicConfigValue(id_val="custom.lineWidth", value=2),
                models.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
                models.DynamicConfigValue(id_val="custom.stacking", value={"mode": "none", "group": "A"}),
                models.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
            ],
        )
    return panel


def stat_panel(
    title: str,
    description: str,
    query: Query,
    unit: str,
    *,
    width: int = 4,
    height: int = 4,
    colours: builders.ThresholdsConfig = QUIET,
    decimals: int | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets([query]))
        .unit(unit)
        .span(width)
        .height(height)
        .thresholds(colours)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def table_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    columns: Sequence[str],
    rename: dict[str, str] | None = None,
    units: dict[str, str] | None = None,
    width: int = 24,
    height: int = 8,
) -> table.Panel:
    """An instant table keeping only ``columns`` (label names, and ``Value``/``Value #B`` for the figures)."""
    organize = {
        "excludeByName": {"Time": True, "__name__": True, "job": True, "instance": True},
        "indexByName": {column: index for index, column in enumerate(columns)},
        "renameByName": dict(rename or {}),
    }
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .span(width)
        .height(height)
        .show_header(True)
        .cell_height(common.TableCellHeight.SM)
    )
    if len(queries) > 1:
        panel = panel.with_transformation(models.DataTransformerConfig(id_val="merge", options={}))
    panel = panel.with_transformation(models.DataTransformerConfig(id_val="organize", options=organize))
    panel = panel.with_transformation(
        models.DataTransformerConfig(
            id_val="filterFieldsByName", options={"include": {"names": [*columns, *(rename or {}).values()]}}
        )
    )
    for column, unit in (units or {}).items():
        panel = panel.override_by_name((rename or {}).get(column, column), [models.DynamicConfigValue("unit", unit)])
    return panel


def bars_panel(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    width: int = 12,
    height: int = 8,
    max_value: float | None = None,
    colours: builders.ThresholdsConfig = QUIET,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets(queries))
        .unit(unit)
        .min(0)
        .span(width)
        .height(height)
        .thresholds(colours)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if max_value is not None:
        panel = panel.max(max_value)
    return panel


def pie_panel(title: str, description: str, query: Query, *, width: int = 8, height: int = 8) -> piechart.Panel:
    return (
        piechart.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(targets([query]))
        .unit(COUNT)
        .span(width)
        .height(height)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .legend(
            piechart.PieChartLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT)
            .show_legend(True)
            .values([piechart_models.PieChartLegendValues.VALUE, piechart_models.PieChartLegendValues.PERCENT])
        )
    )


def row(title: str) -> builders.Row:
    return builders.Row(title)

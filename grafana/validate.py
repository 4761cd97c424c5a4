"""Check dashboard JSON against Grafana's schema as the foundation SDK types it, plus what the schema cannot say.

No Grafana server can run here, so the schema check is the SDK's: the JSON is decoded into the SDK's typed models
(``Dashboard.from_json`` with every panel and data-query plugin registered), every attribute is checked against its
declared type (enums, literals, nested models, lists), and the models are encoded again: anything the schema does
not know (a misspelt key, a field in the wrong place) is dropped on the way and shows up as a difference. On top of
that: unique panel ids, panels inside the 24-column grid without overlaps, one data source variable used by every
panel, and every ``$variable`` a query uses defined (before it, for variables' own queries).
"""

from __future__ import annotations

import copy
import enum
import json
import types
import typing
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog import runtime as cog_runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models

from grafana import queries

GRID_COLUMNS = 24


@cache
def _register_plugins() -> None:
    plugins.register_default_plugins()


def validate(board: Mapping[str, Any]) -> list[str]:
    """Problems with a dashboard's JSON, each naming where it is; empty when the dashboard is sound."""
    _register_plugins()
    try:
        model = models.Dashboard.from_json(copy.deepcopy(dict(board)))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return [f"not a dashboard the SDK can decode: {exc!r}"]
    problems = list(_type_problems(model, "dashboard"))
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    problems += [
        f"{path}: not in Grafana's schema (lost in a round trip through the SDK)" for path in _diff(board, again)
    ]
    problems += _panel_problems(board)
    problems += _variable_problems(board)
    return problems


# ---------------------------------------------------------------------------------------------------------------
# types


def _type_problems(obj: object, path: str) -> Iterator[str]:
    """Walk an SDK model and check each attribute against the type its class declares."""
    try:
        hints = typing.get_type_hints(type(obj))
    except (NameError, TypeError):
        return
    for name, hint in hints.items():
        value = getattr(obj, name, None)
        yield from _check(value, hint, f"{path}.{name}")


def _check(value: object, hint: Any, path: str) -> Iterator[str]:
    origin = typing.get_origin(hint)
    if hint is object or hint is typing.Any:
        if hasattr(value, "to_json"):
            yield from _type_problems(value, path)
        return
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        candidates = [option for option in options if option is not type(None)]
        matching = [option for option in candidates if isinstance(option, type) and isinstance(value, option)]
        failures = [list(_check(value, option, path)) for option in matching or candidates]
        if all(failures):
            yield from min(failures, key=len)
        return
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            yield f"{path}: {value!r} is not one of {typing.get_args(hint)}"
        return
    if origin is list:
        if not isinstance(value, list):
            yield f"{path}: expected a list, got {value!r}"
            return
        (item_hint,) = typing.get_args(hint) or (typing.Any,)
        for index, item in enumerate(value):
            yield from _check(item, item_hint, f"{path}[{index}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            yield f"{path}: expected an object, got {value!r}"
        return
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if value not in {member.value for member in hint}:
            yield f"{path}: {value!r} is not a {hint.__name__} ({', '.join(repr(m.value) for m in hint)})"
        return
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            yield f"{path}: expected a number, got {value!r}"
        return
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            yield f"{path}: expected an integer, got {value!r}"
        return
    if hint in (str, bool):
        if not isinstance(value, hint):
            yield f"{path}: expected {hint.__name__}, got {value!r}"
        return
    if isinstance(hint, type) and isinstance(value, dict) and hasattr(hint, "from_json"):
        # the SDK leaves some nested objects (a panel's transformations) undecoded: decode and check them here
        decoded = hint.from_json(copy.deepcopy(value))
        yield from _type_problems(decoded, path)
        again = json.loads(json.dumps(decoded, cls=JSONEncoder))
        yield from (f"{where}: not in Grafana's schema" for where in _diff(value, again, path))
        return
    if isinstance(hint, type):
        if not isinstance(value, hint):
            yield f"{path}: expected {hint.__name__}, got {type(value).__name__} {value!r}"[:300]
            return
        yield from _type_problems(value, path)


def _diff(before: object, after: object, path: str = "dashboard") -> Iterator[str]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after)):
            if key not in after:
                yield f"{path}.{key}"
            elif key not in before:
                continue  # defaults the SDK fills in are fine
            else:
                yield from _diff(before[key], after[key], f"{path}.{key}")
    elif isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            yield f"{path} (length {len(before)} became {len(after)})"
            return
        for index, (one, other) in enumerate(zip(before, after, strict=True)):
            yield from _diff(one, other, f"{path}[{index}]")
    elif before != after:
        yield f"{path} ({before!r} became {after!r})"


# ---------------------------------------------------------------------------------------------------------------
# what the schema cannot say


def _panel_problems(board: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    seen_ids: set[int] = set()
    cells: dict[tuple[int, int], str] = {}
    for panel in queries.panels(board):
        title = str(panel.get("title", "?"))
        where = f"panel {title!r}"
        panel_id = panel.get("id")
        if not isinstance(panel_id, int) or panel_id in seen_ids:
            problems.append(f"{where}: id {panel_id!r} missing or not unique")
        else:
            seen_ids.add(panel_id)
        kind = panel.get("type")
        if kind != "row" and cog_runtime.panelcfg_config(str(kind)) is None:
            problems.append(f"{where}: unknown panel type {kind!r}")
        grid = panel.get("gridPos") or {}
        x, y, w, h = (grid.get(key, -1) for key in ("x", "y", "w", "h"))
        if min(x, y) < 0 or w <= 0 or h <= 0 or x + w > GRID_COLUMNS:
            problems.append(f"{where}: gridPos {grid} is outside the {GRID_COLUMNS}-column grid")
            continue
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            if cell in cells:
                problems.append(f"{where}: overlaps panel {cells[cell]!r}")
                break
            cells[cell] = title
        if kind == "row":
            continue
        if not title.strip():
            problems.append(f"{where}: no title")
        if (panel.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"{where}: does not use the $datasource variable")
        targets = panel.get("targets") or []
        ref_ids = [t.get("refId") for t in targets]
        if not targets or not all(t.get("expr", "").strip() for t in targets):
            problems.append(f"{where}: has no query, or an empty one")
        if len(set(ref_ids)) != len(ref_ids) or not all(ref_ids):
            problems.append(f"{where}: refIds {ref_ids} missing or not unique")
        if not isinstance(panel.get("options"), dict):
            problems.append(f"{where}: no options (Grafana would fall back to the plugin's defaults)")
    return problems


def _variable_problems(board: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    defined: list[str] = []
    board_variables = queries.variables(board)
    names = [v.name for v in board_variables]
    if len(set(names)) != len(names):
        problems.append(f"variables {names} are not unique")
    if "datasource" not in [v.name for v in board_variables if v.kind == "datasource"]:
        problems.append("no `datasource` variable of type datasource")
    for variable in board_variables:
        if variable.kind == "query":
            unknown = queries.referenced_variables(variable.query) - set(defined) - queries.BUILTIN_VARIABLES
            if unknown:
                problems.append(f"variable {variable.name}: its query uses {sorted(unknown)}, not defined before it")
            try:
                variable.label_values  # noqa: B018 - parsing is the check
            except ValueError as exc:
                problems.append(str(exc))
            if variable.include_all and variable.all_value is None:
                problems.append(f"variable {variable.name}: includeAll without an allValue")
        defined.append(variable.name)
    for query in queries.panel_queries(board):
        unknown = queries.referenced_variables(query.expr) - set(names) - queries.BUILTIN_VARIABLES
        if unknown:
            problems.append(f"{query.where}: uses undefined variables {sorted(unknown)}")
    return problems

"""What a dashboard asks Prometheus, and how Grafana fills in its variables before asking.

The end-to-end test runs every query of every dashboard against a real Prometheus. To do that without a Grafana
server it needs what Grafana would send: the panels' and annotations' expressions, the template variables with their
own queries, and Grafana's interpolation of ``$var`` (for multi-value variables: regex-escaped values joined as
``(a|b)``, or the variable's "All" value).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# $var, ${var}, ${var:format}, [[var]]: the forms Grafana replaces in a query.
VARIABLE_REFERENCE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]")
BUILTIN_VARIABLES = frozenset({"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms"})
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<series>.+),\s*)?(?P<label>\w+)\)$", re.DOTALL)
# A series selector of a slicewise metric or recording rule, with its matchers if it has any.
SLICEWISE_SELECTOR = re.compile(r"[a-zA-Z_:]*slicewise_[a-zA-Z0-9_:]*(?:\{[^}]*\})?")
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")


@dataclass(frozen=True)
class PanelQuery:
    """One expression a dashboard sends: a panel target or an annotation."""

    dashboard: str  # uid
    panel: str  # panel title, or "annotation: <name>"
    ref_id: str
    expr: str
    instant: bool

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


@dataclass(frozen=True)
class Variable:
    """A template variable as Grafana evaluates it."""

    name: str
    kind: str  # query, datasource, custom, ...
    query: str
    multi: bool
    include_all: bool
    all_value: str | None

    @property
    def label_values(self) -> tuple[str | None, str]:
        """``label_values(series, label)`` split into (series selector or None, label)."""
        match = LABEL_VALUES.match(self.query.strip())
        if match is None:
            raise ValueError(f"variable {self.name}: not a label_values() query: {self.query!r}")
        return match.group("series"), match.group("label")


def panels(board: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel, including those folded inside collapsed rows."""
    for panel in board.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def panel_queries(board: Mapping[str, Any]) -> list[PanelQuery]:
    uid = str(board["uid"])
    found = [
        PanelQuery(uid, str(panel.get("title", "")), str(t.get("refId", "")), str(t["expr"]), bool(t.get("instant")))
        for panel in panels(board)
        for t in panel.get("targets") or []
        if t.get("expr")
    ]
    for annotation in (board.get("annotations") or {}).get("list") or []:
        if annotation.get("expr"):
            found.append(PanelQuery(uid, f"annotation: {annotation.get('name')}", "", annotation["expr"], False))
    return found


def variables(board: Mapping[str, Any]) -> list[Variable]:
    return [
        Variable(
            name=str(v["name"]),
            kind=str(v.get("type", "")),
            query=v["query"] if isinstance(v.get("query"), str) else str((v.get("query") or {}).get("query", "")),
            multi=bool(v.get("multi")),
            include_all=bool(v.get("includeAll")),
            all_value=v.get("allValue"),
        )
        for v in (board.get("templating") or {}).get("list") or []
    ]


def referenced_variables(text: str) -> set[str]:
    return {next(group for group in match.groups() if group) for match in VARIABLE_REFERENCE.finditer(text)}


def regex_escape(value: str) -> str:
    """Grafana's Prometheus escape for a value going into a regex matcher inside a PromQL string literal."""
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


def variable_value(variable: Variable, selected: Sequence[str] | None) -> str:
    """What Grafana writes for ``$name``: ``None`` selects "All"."""
    if selected is None:
        if variable.all_value is not None:
            return variable.all_value
        raise ValueError(f"variable {variable.name} has no All value")
    if not variable.multi and not variable.include_all:
        return selected[0].replace("\\", "\\\\").replace("'", "\\\\'")
    escaped = [regex_escape(value) for value in selected]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(text: str, board_variables: Sequence[Variable], selection: Mapping[str, Sequence[str] | None]) -> str:
    """Fill in a query as Grafana would; variables missing from ``selection`` are "All"."""
    by_name = {v.name: v for v in board_variables}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in by_name:
            return match.group(0)  # builtins such as $__rate_interval are Grafana's, not ours
        return variable_value(by_name[name], selection.get(name))

    return VARIABLE_REFERENCE.sub(replace, text)


def slicewise_selectors(expr: str) -> list[str]:
    """The slicewise series selectors an expression reads (raw metrics and recording rules)."""
    return SLICEWISE_SELECTOR.findall(expr)

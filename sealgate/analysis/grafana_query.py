"""Reading a Grafana dashboard the way Grafana does: every panel whatever the layout, which datasource each query goes
to, and Grafana's template variables substituted by *where* they stand in the query.

Used by the dashboard checks (checks/dashboard.py) and by `sealgate lint` (lint.py), so both read a dashboard the
same way.

* Panels: `panels[]`, the collapsed panels of `row` panels, the old `rows[].panels[]` layout, and library panels
  (`libraryPanel`, with their model from `__elements` when the file was exported with it).
* Datasources: a query goes to its target's datasource, else its panel's, else the default; a datasource is a
  `{type, uid}` object, a name, or a variable (`$datasource`, `${DS_PROMETHEUS}`) resolved through the dashboard's
  datasource variables and `__inputs`. Only Prometheus queries are PromQL: Loki's LogQL and the rest are not judged.
* Variables (`$x`, `${x}`, `${x:fmt}`, `[[x]]`): what a variable stands for depends on its position —
  `rate(m[$__rate_interval])` a duration, `offset $offset` a duration, `@ ${__to:date:seconds}` a timestamp,
  `topk($k, …)` / `quantile($q, …)` / `histogram_quantile($q, …)` a number, `by ($label)` a label name,
  `{job=~"$job"}` a label value, and `${metric}{…}` or `{__name__="x_${y}"}` part of a *metric name*. Two renderings:
  `static` (placeholders of the right kind: the query parses, and a metric name built from a variable is marked, so
  it is said to be "cannot be judged statically" instead of inventing a metric), and `prometheus` (the query Grafana
  would send: `$__all` through `includeAll`/`allValue`, other variables through their current or first option
  value, or the options a `label_values(...)` query gives).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Marks what a variable stood for in a `static` rendering: valid inside identifiers, strings and regexes.
TEMPLATED = "__grafana_var__"

# Grafana's built-in variables, as a query to Prometheus receives them (Grafana computes them from the panel's
# time range and width; these match a 1 h range at 1 m resolution — 4 scrapes at the usual 15 s interval).
GLOBAL_DURATIONS = {"__rate_interval": "1m", "__interval": "1m", "__auto": "1m", "__range": "1h"}
GLOBAL_NUMBERS = {"__interval_ms": "60000", "__range_s": "3600", "__range_ms": "3600000"}
RANGE_S = 3600.0

# Functions whose first argument is a number (`topk($k, …)`), and the clauses whose parentheses hold label names.
_NUMBER_PARAM_FUNCTIONS = frozenset(
    {"topk", "bottomk", "limitk", "limit_ratio", "quantile", "histogram_quantile", "quantile_over_time"}
)
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_IDENT = re.compile(r"[A-Za-z0-9_:]")
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_VARIABLE = re.compile(
    r"\$\{(?P<braced>[\w.]+?)(?::(?P<fmt>[^}]*))?\}|\[\[(?P<old>[\w.]+?)(?::(?P<oldfmt>[^\]]*))?\]\]|\$(?P<plain>\w+)"
)
_MATCHER_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_DURATION = re.compile(r"^(\d+(ms|[smhdwy]))+$")

# Datasource plugin ids told apart by name when a dashboard names its datasource by a plain string.
_NON_PROMQL_HINTS = (
    "loki",
    "elasticsearch",
    "influx",
    "graphite",
    "mysql",
    "postgres",
    "mssql",
    "cloudwatch",
    "tempo",
    "jaeger",
    "zipkin",
    "testdata",
    "stackdriver",
    "azure",
    "opensearch",
    "clickhouse",
)


def pointer(path: list[Any]) -> str:
    """`$.panels[0].targets[1].expr` — the JSON path a finding about a dashboard points at."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


# --- the dashboard's shape -------------------------------------------------------------------------------------

# What the dashboard checks read, in the types they read it as (Grafana's dashboard model); anything else is theirs.
# A shape is (allowed types, {key: shape} for an object's keys | shape of an array's items | None). Walked by hand:
# a JSON Schema validator took as long as the JSON parse itself on a 10,000-panel dashboard.
_NULL = type(None)
_DATASOURCE_REF: Any = ((dict, str, _NULL), {"uid": ((str, _NULL), None)})
_PANEL: Any = ((dict,), {})
_PANEL[1].update(
    {
        "title": ((str, _NULL), None),
        "panels": ((list, _NULL), _PANEL),  # a row's collapsed panels
        "datasource": _DATASOURCE_REF,
        "targets": ((list, _NULL), ((dict,), {"datasource": _DATASOURCE_REF})),
        "fieldConfig": (
            (dict, _NULL),
            {
                "defaults": (
                    (dict, _NULL),
                    {
                        "thresholds": ((dict, _NULL), {"steps": ((list, _NULL), None)}),
                        "mappings": ((list, _NULL), ((dict,), {"options": ((dict, _NULL), None)})),
                    },
                )
            },
        ),
    }
)
# `current.value` is text, a list of texts (multi-value) or — as Grafana also accepts — an option object.
_TEMPLATE_VARIABLE: Any = (
    (dict,),
    {"name": ((str, _NULL), None), "current": ((dict, _NULL), {"value": ((str, list, dict, _NULL), ((str,), None))})},
)
DASHBOARD_SHAPE: Any = (
    (dict,),
    {
        "tags": ((list, _NULL), None),
        "templating": ((dict, _NULL), {"list": ((list, _NULL), _TEMPLATE_VARIABLE)}),
        "panels": ((list, _NULL), _PANEL),
        "rows": ((list, _NULL), ((dict,), {"panels": ((list, _NULL), _PANEL)})),  # the pre-5.0 layout
    },
)
_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    _NULL: "null",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def shape_problems(value: Any, shape: Any, path: list[Any]) -> Iterator[tuple[list[Any], str]]:
    """(JSON path, what is wrong) for every value under `shape` whose type the dashboard checks cannot read."""
    types, inner = shape
    if not isinstance(value, types):
        wanted = " or ".join(_JSON_TYPES[t] for t in types)
        yield path, f"expected {wanted}, found {_JSON_TYPES.get(type(value), type(value).__name__)}"
    elif isinstance(value, dict) and isinstance(inner, dict):
        for key, sub in inner.items():
            if key in value:
                yield from shape_problems(value[key], sub, [*path, key])
    elif isinstance(value, list) and inner is not None:
        for index, item in enumerate(value):
            yield from shape_problems(item, inner, [*path, index])


def read_dashboard(text: str) -> tuple[dict[str, Any] | None, list[tuple[str, str]]]:
    """The dashboard, or None and the problems: (JSON path or `:line`, what) — bad JSON, not an object, or values of
    a type the checks cannot read."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [(f":{exc.lineno}", f"not valid JSON: {exc.msg}")]
    if not isinstance(document, dict):
        return None, [("", "a dashboard must be a JSON object")]
    problems = [(pointer(path), what) for path, what in shape_problems(document, DASHBOARD_SHAPE, [])]
    return (None if problems else document), problems


# --- panels -------------------------------------------------------------------------------------------------------


def panels_of(dashboard: dict[str, Any]) -> list[tuple[list[Any], dict[str, Any]]]:
    """(JSON path, panel) of every visualisation panel: top-level, nested in collapsed rows, and in the old
    `rows[].panels` layout; rows themselves are layout, not panels."""
    found: list[tuple[list[Any], dict[str, Any]]] = []
    for i, panel in enumerate(dashboard.get("panels") or []):
        if not isinstance(panel, dict):
            continue
        if panel.get("type") == "row":
            for j, inner in enumerate(panel.get("panels") or []):
                if isinstance(inner, dict):
                    found.append((["panels", i, "panels", j], inner))
            continue
        found.append((["panels", i], panel))
    for i, row in enumerate(dashboard.get("rows") or []):
        for j, panel in enumerate(row.get("panels") or [] if isinstance(row, dict) else []):
            if isinstance(panel, dict):
                found.append((["rows", i, "panels", j], panel))
    return found


def targets_of(panel: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(j, t) for j, t in enumerate(panel.get("targets") or []) if isinstance(t, dict) and not t.get("hide")]


def library_panel(dashboard: dict[str, Any], panel: dict[str, Any]) -> tuple[list[Any], dict[str, Any]] | None:
    """A library panel's model and its JSON path when the file carries it (`__elements`, Grafana's export)."""
    ref = panel.get("libraryPanel")
    if not isinstance(ref, dict):
        return None
    uid = ref.get("uid")
    element = (dashboard.get("__elements") or {}).get(uid) if isinstance(dashboard.get("__elements"), dict) else None
    model = element.get("model") if isinstance(element, dict) else None
    return (["__elements", str(uid), "model"], model) if isinstance(model, dict) else None


# --- variables --------------------------------------------------------------------------------------------------


def _text(value: Any) -> list[str]:
    """The values of a `current.value` / option value: text, a list of texts, or an option object."""
    if isinstance(value, dict):
        return _text(value.get("value", value.get("text")))
    if isinstance(value, list):
        return [str(v) for v in value if isinstance(v, (str, int, float))]
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return [str(value)]
    return []


@dataclass
class Variable:
    name: str
    kind: str  # query | custom | interval | textbox | constant | datasource | adhoc | …
    current: list[str]
    options: list[str]
    include_all: bool = False
    all_value: str | None = None
    query: str = ""

    @property
    def is_all(self) -> bool:
        return "$__all" in self.current


def variables_of(dashboard: dict[str, Any]) -> dict[str, Variable]:
    found: dict[str, Variable] = {}
    for item in (dashboard.get("templating") or {}).get("list") or []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        query = item.get("query")
        if isinstance(query, dict):  # newer Grafana: {"query": "label_values(...)", "refId": ...}
            query = query.get("query")
        options = [v for o in item.get("options") or [] if isinstance(o, dict) for v in _text(o.get("value"))]
        kind = str(item.get("type") or "query")
        if not options and kind in ("custom", "interval") and isinstance(query, str):
            options = [o.strip() for o in re.split(r"(?<!\\),", query) if o.strip()]
        if not options and kind in ("constant", "textbox") and isinstance(query, str):
            options = [query]
        current = item.get("current")
        found[item["name"]] = Variable(
            name=item["name"],
            kind=kind,
            current=_text(current.get("value")) if isinstance(current, dict) else [],
            options=[o for o in options if o != "$__all"],
            include_all=bool(item.get("includeAll")),
            all_value=item.get("allValue") if isinstance(item.get("allValue"), str) and item.get("allValue") else None,
            query=query if isinstance(query, str) else "",
        )
    return found


def _datasource_plugin(dashboard: dict[str, Any], variable: str) -> str | None:
    """The plugin a datasource variable (or an `__inputs` entry of an exported dashboard) stands for."""
    for item in (dashboard.get("templating") or {}).get("list") or []:
        if isinstance(item, dict) and item.get("name") == variable and item.get("type") == "datasource":
            query = item.get("query")
            return str(query) if query else None
    for item in dashboard.get("__inputs") or []:
        if isinstance(item, dict) and item.get("name") == variable:
            return str(item.get("pluginId") or "") or None
    return None


_VARIABLE_NAME = re.compile(r"^\$\{?([\w.]+)(?::[^}]*)?\}?$")


def datasource_type(dashboard: dict[str, Any], ref: Any, names: Mapping[str, str]) -> str | None:
    """The plugin type a datasource reference stands for; None for the default datasource or one that cannot be
    told (both are taken as Prometheus). `names` maps known datasource names and uids to their type."""
    if ref is None:
        return None
    if isinstance(ref, dict):
        kind, uid = ref.get("type"), ref.get("uid")
        if uid in ("-- Mixed --", "-- Grafana --", "-- Dashboard --", "grafana") and kind in (None, "datasource"):
            return {"-- Mixed --": "mixed", "-- Dashboard --": "dashboard"}.get(uid, "grafana")
        if isinstance(kind, str) and kind and not kind.startswith("$"):
            return kind
        return datasource_type(dashboard, uid, names) if isinstance(uid, str) else None
    if not isinstance(ref, str) or not ref:
        return None
    if ref in ("-- Mixed --", "-- Grafana --", "-- Dashboard --"):
        return ref.strip("- ").lower()
    variable = _VARIABLE_NAME.match(ref)
    if variable:
        return _datasource_plugin(dashboard, variable.group(1))
    if ref in names:
        return names[ref]
    lowered = ref.lower()
    return next((hint for hint in _NON_PROMQL_HINTS if hint in lowered), None)


# --- substituting variables by position -------------------------------------------------------------------------


@dataclass
class Occurrence:
    start: int
    end: int
    name: str
    fmt: str
    kind: str  # duration | number | timestamp | label | metric | string | metric-string | operand
    regex: bool = False  # inside the value of a `=~` / `!~` matcher
    after_arithmetic: bool = False  # an operand right of `+ - * / % ^` or a comparison: a number more likely


def occurrences(expr: str) -> list[Occurrence]:
    """Every Grafana variable in `expr` with the kind of value its position takes (see the module's docstring)."""
    found: list[Occurrence] = []
    frames: list[list[Any]] = []  # [opener, owner word, argument index]
    tokens: list[tuple[str, str]] = []  # (kind, text) outside strings: word | punct | var
    i = 0
    length = len(expr)
    while i < length:
        char = expr[i]
        if char == "#":  # a PromQL comment runs to the end of the line (a `'` in it opens no string)
            newline = expr.find("\n", i)
            i = length if newline < 0 else newline
            continue
        if char in "\"'`":
            i = _scan_string(expr, i, frames, found)
            tokens.append(("string", ""))
            continue
        match = _VARIABLE.match(expr, i)
        if match:
            found.append(_occurrence(expr, match, frames, tokens))
            tokens.append(("var", match.group(0)))
            i = match.end()
            continue
        if char.isspace():
            i += 1
            continue
        word = _WORD.match(expr, i)
        if word:
            tokens.append(("word", word.group(0)))
            i = word.end()
            continue
        if char in "([{":
            frames.append([char, _owner(tokens) if char == "(" else None, 0])
        elif char in ")]}" and frames:
            frames.pop()
        elif char == "," and frames:
            frames[-1][2] += 1
        tokens.append(("punct", char))
        i += 1
    return found


def _owner(tokens: list[tuple[str, str]]) -> str | None:
    """The word a `(` belongs to: `rate(`, `by (`, and for `topk by (x) (` the aggregation before the clause."""
    if not tokens:
        return None
    kind, text = tokens[-1]
    if kind == "word":
        return text
    if text != ")":
        return None
    depth = 0
    for index in range(len(tokens) - 1, -1, -1):
        if tokens[index] == ("punct", ")"):
            depth += 1
        elif tokens[index] == ("punct", "("):
            depth -= 1
            if depth == 0:
                before = tokens[index - 2 : index]
                if len(before) == 2 and before[1][1] in ("by", "without") and before[0][0] == "word":
                    return before[0][1]
                return None
    return None


def _scan_string(expr: str, start: int, frames: list[list[Any]], found: list[Occurrence]) -> int:
    """Skip a string literal from its opening quote; variables inside become `string` occurrences (or
    `metric-string` in a `__name__` matcher). Returns the index after the closing quote."""
    quote = expr[start]
    before = _MATCHER_BEFORE.search(expr[:start]) if frames and frames[-1][0] == "{" else None
    kind = "metric-string" if before and before.group(1) == "__name__" else "string"
    regex = bool(before and before.group(2) in ("=~", "!~"))
    i = start + 1
    while i < len(expr):
        char = expr[i]
        if char == "\\" and quote != "`":
            i += 2
            continue
        if char == quote:
            return i + 1
        match = _VARIABLE.match(expr, i)
        if match:
            name = match.group("braced") or match.group("old") or match.group("plain")
            fmt = match.group("fmt") or match.group("oldfmt") or ""
            found.append(Occurrence(match.start(), match.end(), name, fmt, kind, regex))
            i = match.end()
            continue
        i += 1
    return len(expr)


def _occurrence(expr: str, match: re.Match[str], frames: list[list[Any]], tokens: list[tuple[str, str]]) -> Occurrence:
    name = match.group("braced") or match.group("old") or match.group("plain")
    fmt = match.group("fmt") or match.group("oldfmt") or ""
    start, end = match.start(), match.end()
    frame = frames[-1] if frames else None
    glued_before = start > 0 and bool(_IDENT.match(expr[start - 1]))
    glued_after = end < len(expr) and bool(_IDENT.match(expr[end]))
    previous = tokens[-1] if tokens else ("", "")
    following = expr[end:].lstrip()[:1]
    if frame is not None and frame[0] == "[":
        kind = "number" if glued_after else "duration"  # `[$__rate_interval]`, `[${__range_s}s]`
    elif previous == ("word", "offset"):
        kind = "number" if glued_after else "duration"
    elif previous == ("punct", "@"):
        kind = "timestamp"
    elif frame is not None and (frame[0] == "{" or (frame[0] == "(" and frame[1] in _LABEL_LISTS)):
        kind = "label"
    elif glued_before or glued_after:
        kind = "metric"  # `node_${x}_total`, `${prefix}_up`
    elif frame is not None and frame[0] == "(" and frame[1] in _NUMBER_PARAM_FUNCTIONS and frame[2] == 0:
        kind = "number"
    elif following in ("{", "["):
        kind = "metric"  # `${geo_metric}{…}`, `$metric[5m]`
    else:
        kind = "operand"  # a number (`> $threshold`) or a whole metric name (`sum($metric)`): told by its value
    arithmetic = previous[0] == "punct" and previous[1] in "+-*/%^<>=!"
    return Occurrence(start, end, name, fmt, kind, after_arithmetic=arithmetic)


@dataclass
class Rendered:
    text: str
    templated_metric: bool = False  # a metric name is built from a variable: it cannot be judged statically
    unresolved: list[str] = field(default_factory=list)  # variables with no value (prometheus rendering)


_STATIC = {
    "duration": "5m",
    "number": "1",
    "timestamp": "1700000000",
    "label": TEMPLATED,
    "metric": TEMPLATED,
    "string": TEMPLATED,
    "metric-string": TEMPLATED,
}


def _known(name: str, variables: Mapping[str, Variable]) -> bool:
    return name in variables or name.startswith("__")


_OPERATORS = frozenset({"and", "or", "unless", "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<="})


def _operand_kind(occ: Occurrence, variables: Mapping[str, Variable]) -> str:
    """A variable standing alone for an operand: a number when its value is one (or it follows an arithmetic or
    comparison operator and has no value to tell), an operator when its values are (`a $op on (x) b`), else a whole
    metric name."""
    variable = variables.get(occ.name)
    values = (variable.current or variable.options) if variable else []
    values = [v for v in values if v != "$__all"]
    if values and values[0].strip() in _OPERATORS:
        return "operator"
    if values:
        return "number" if is_number(values[0]) else "metric"
    if occ.name in GLOBAL_NUMBERS or occ.name in ("__from", "__to"):
        return "number"
    return "number" if occ.after_arithmetic else "metric"


def render_static(expr: str, variables: Mapping[str, Variable] | None = None) -> Rendered:
    """The query with each variable replaced by a placeholder of its kind: parseable PromQL whose metric names are
    the panel's own (a name built from a variable carries `TEMPLATED`). Inside strings only variables the
    dashboard defines (and Grafana's `$__…`) are replaced: `"$1"` of label_replace stays."""
    variables = variables or {}
    parts: list[str] = []
    last = 0
    templated = False
    for occ in occurrences(expr):
        kind = occ.kind
        if kind == "string" and not _known(occ.name, variables):
            continue  # `"$1"` of label_replace; but in a `__name__` value anything `$x` builds the metric name
        if kind == "operand":
            kind = _operand_kind(occ, variables)
        if kind == "operator":  # the operator itself: the query's shape depends on it
            variable = variables[occ.name]
            parts += [expr[last : occ.start], next(v for v in variable.current or variable.options if v != "$__all")]
            last = occ.end
            continue
        templated = templated or kind in ("metric", "metric-string")
        parts += [expr[last : occ.start], _STATIC[kind]]
        last = occ.end
    return Rendered("".join(parts) + expr[last:], templated)


OptionSource = Callable[[Variable], list[str]]


def render_prometheus(
    expr: str,
    variables: Mapping[str, Variable],
    options: OptionSource | None = None,
    now: float | None = None,
) -> Rendered:
    """The query as Grafana would send it to Prometheus (see the module's docstring); `options(variable)` lists a
    query variable's values when the dashboard holds none (e.g. from Prometheus' label values)."""
    now = time.time() if now is None else now
    parts: list[str] = []
    unresolved: list[str] = []
    last = 0
    for occ in occurrences(expr):
        value = _global_value(occ, now)
        if value is None and occ.name in variables:
            value = _variable_value(variables[occ.name], occ, options)
        if value is None:
            if occ.kind in ("string", "metric-string") and not _known(occ.name, variables):
                continue  # not a variable Grafana knows (`$1` of label_replace): Grafana leaves it as it is
            unresolved.append(occ.name)
            kind = _operand_kind(occ, variables) if occ.kind == "operand" else occ.kind
            value = ".*" if occ.regex else _STATIC[kind]
        parts += [expr[last : occ.start], value]
        last = occ.end
    return Rendered("".join(parts) + expr[last:], False, unresolved)


def _global_value(occ: Occurrence, now: float) -> str | None:
    name = occ.name
    if name in GLOBAL_DURATIONS:
        return GLOBAL_DURATIONS[name] if occ.kind != "number" else "60"
    if name in GLOBAL_NUMBERS:
        return GLOBAL_NUMBERS[name]
    if name in ("__from", "__to"):
        stamp = now - RANGE_S if name == "__from" else now
        seconds = occ.kind == "timestamp" or occ.fmt.endswith("seconds")
        return str(int(stamp)) if seconds else str(int(stamp * 1000))
    return None


def _variable_value(variable: Variable, occ: Occurrence, options: OptionSource | None) -> str | None:
    if variable.kind == "datasource":
        return None
    values: list[str]
    if variable.is_all:
        if variable.all_value is not None:
            return variable.all_value  # Grafana sends a custom all value as it is, unescaped
        values = variable.options or (options(variable) if options else [])
        if not values:
            return ".*" if occ.regex or occ.kind in ("string", "metric-string") else None
    else:
        values = [v for v in variable.current if v != "$__all"] or variable.options[:1]
        if not values and options:
            values = options(variable)[:1]
    if not values:
        return None
    if occ.kind in ("duration", "number", "timestamp", "label", "metric", "operand"):
        value = values[0]
        if occ.kind == "duration" and not _DURATION.match(value):
            return GLOBAL_DURATIONS["__interval"]  # `auto` and the like: Grafana computes one
        return value
    return _format(values, occ.fmt, occ.regex or len(values) > 1)


def _format(values: list[str], fmt: str, regex: bool) -> str:
    """Grafana's formatting of a (multi-)value for Prometheus: a regex alternation by default."""
    if fmt == "pipe":
        return "|".join(values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "raw" or (not regex and len(values) == 1 and fmt != "regex"):
        return values[0] if len(values) == 1 else ",".join(values)
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def is_number(value: str) -> bool:
    return bool(_NUMBER.match(value.strip()))


# --- the queries of a dashboard ---------------------------------------------------------------------------------


@dataclass
class PanelQuery:
    panel: str | None
    ref: str
    json_path: str
    expr: str
    datasource: str | None  # the plugin type, None for the default datasource

    def label(self) -> str:
        return f"panel {self.panel!r} ({self.ref})"


@dataclass
class DashboardQueries:
    queries: list[PanelQuery]  # the PromQL ones
    other: dict[str, int] = field(default_factory=dict)  # queries to other datasources, by type: not judged
    library_panels: list[tuple[str, str]] = field(default_factory=list)  # (JSON path, name) not in the file


def dashboard_queries(
    dashboard: dict[str, Any], names: Mapping[str, str] | None = None, default_type: str = "prometheus"
) -> DashboardQueries:
    """Every query of every panel, told PromQL or not by its datasource (`names`: known datasource names/uids →
    type; `default_type`: the type of the default datasource)."""
    names = names or {}
    result = DashboardQueries([])
    for path, panel in panels_of(dashboard):
        if "libraryPanel" in panel and not panel.get("targets"):
            model = library_panel(dashboard, panel)
            if model is None:
                ref = panel["libraryPanel"] if isinstance(panel["libraryPanel"], dict) else {}
                result.library_panels.append((pointer(path), str(ref.get("name") or ref.get("uid") or "?")))
                continue
            path, panel = model
        panel_type = datasource_type(dashboard, panel.get("datasource"), names)
        for j, target in targets_of(panel):
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                continue
            own = datasource_type(dashboard, target.get("datasource"), names) if target.get("datasource") else None
            kind = own or (None if panel_type == "mixed" else panel_type) or default_type
            if kind != "prometheus":
                result.other[kind] = result.other.get(kind, 0) + 1
                continue
            result.queries.append(
                PanelQuery(
                    panel=panel.get("title") if isinstance(panel.get("title"), str) else None,
                    ref=str(target.get("refId", j)),
                    json_path=pointer([*path, "targets", j, "expr"]),
                    expr=expr.strip(),
                    datasource=own or panel_type,
                )
            )
    return result


_LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<match>.+?)\s*,\s*)?(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S
)


def label_values_query(query: str) -> tuple[str, str | None] | None:
    """(label, series selector or None) of a `label_values(selector, label)` / `label_values(label)` variable
    query — what Grafana asks Prometheus for a query variable's options; None for any other query."""
    match = _LABEL_VALUES.match(query or "")
    if not match:
        return None
    selector = match.group("match")
    if selector is not None and "$" in selector:
        selector = render_static(selector).text.replace(f'"{TEMPLATED}"', '".*"').replace(f"={TEMPLATED}", "=~.*")
        selector = re.sub(r'(\w+)\s*=\s*"\.\*"', r'\1=~".*"', selector)
    return match.group("label"), selector

"""EIXO 5 — the Grafana dashboard: provisioning, the dashboard's JSON, its queries against the live Prometheus, and
Grafana itself where one answers.

Grafana cannot run on the machines this is built on; everything that does not need a running Grafana is proven
here (the files, and every panel query answered by the real Prometheus after real traffic), and the one check that
does need Grafana is skipped with the reason — never passed.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sealgate.checks.grafana import GrafanaClient, GrafanaError, comparable, differences
from sealgate.errors import InputError
from sealgate.sprint.context import Context
from sealgate.sprint.registry import check
from sealgate.sprint.yamlsource import Located, parse_yaml

DASHBOARD = "stack/grafana/dashboards/llm_metrics.json"
DATASOURCES = "stack/grafana/provisioning/datasources/prometheus.yml"
PROVIDERS = "stack/grafana/provisioning/dashboards/default.yml"
COMPOSE = "stack/docker-compose.yml"

# Grafana's built-in interval variables, replaced by a fixed value before a query reaches Prometheus (Grafana does
# the same with values computed from the panel's time range). 1m covers 4 scrapes at the seed's 15 s interval.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__interval_ms": "60000",
}
# Factors to base units (seconds, ratio), so "5 s" matches a threshold of 5000 on an `ms` panel.
UNIT_FACTORS = {"s": 1.0, "ms": 0.001, "µs": 1e-6, "ns": 1e-9, "m": 60.0, "percentunit": 1.0, "percent": 0.01}
SHADES = ("super-light-", "light-", "semi-dark-", "dark-")

_PATHS: dict[str, Any] = {
    "dashboard": {"type": "string"},
    "datasources": {"type": "string"},
}


def _pointer(path: list[Any]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _dashboard_queries(ctx: Context) -> tuple[str, list[dict[str, Any]]]:
    """The dashboard file and its panels' queries; a dashboard without any query fails the check."""
    relative, dashboard = _load_dashboard(ctx)
    queries = panel_queries(dashboard)
    if not queries:
        ctx.fail(f"{relative}: no panel has a query")
    return relative, queries


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
_VARIABLE: Any = (
    (dict,),
    {"name": ((str, _NULL), None), "current": ((dict, _NULL), {"value": ((str, list, _NULL), ((str,), None))})},
)
_DASHBOARD_SHAPE: Any = (
    (dict,),
    {
        "tags": ((list, _NULL), None),
        "templating": ((dict, _NULL), {"list": ((list, _NULL), _VARIABLE)}),
        "panels": ((list, _NULL), _PANEL),
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


def _load_dashboard(ctx: Context) -> tuple[str, dict[str, Any]]:
    relative = ctx.params.get("dashboard", DASHBOARD)
    path = ctx.judge(relative)
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        ctx.fail(f"{relative}:{exc.lineno}: not valid JSON: {exc.msg}")
    if not isinstance(document, dict):
        ctx.fail(f"{relative}: a dashboard must be a JSON object")
    problems = [(_pointer(path), what) for path, what in shape_problems(document, _DASHBOARD_SHAPE, [])]
    for where, what in problems:
        ctx.finding(f"{where}: {what}", file=relative, json_path=where)
    if problems:
        ctx.fail(
            f"{relative}: not a Grafana dashboard of the expected shape ({len(problems)} problems, first at "
            f"{problems[0][0]}: {problems[0][1]})"
        )
    return relative, document


def _load_yaml(ctx: Context, relative: str) -> Located:
    path = ctx.judge(relative)
    doc = parse_yaml(path.read_text(), relative)
    if not isinstance(doc.value, dict):
        ctx.fail(f"{relative}: expected a YAML mapping")
    return doc


def panels_of(dashboard: dict[str, Any]) -> list[tuple[list[Any], dict[str, Any]]]:
    """(JSON path, panel) of every visualisation panel, including those nested in collapsed rows; rows themselves
    are layout, not panels."""
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
    return found


def substitute_variables(expr: str, dashboard: dict[str, Any]) -> str:
    """Replace Grafana's `$__rate_interval` & co. (and dashboard variables, by their current value) so the query is
    the PromQL Prometheus would receive."""
    values = dict(GRAFANA_VARIABLES)
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        current = (variable.get("current") or {}).get("value")
        if variable.get("name") and current is not None:
            values[variable["name"]] = "|".join(current) if isinstance(current, list) else str(current)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)


def targets_of(panel: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(j, t) for j, t in enumerate(panel.get("targets") or []) if isinstance(t, dict) and not t.get("hide")]


# --- provisioning --------------------------------------------------------------------------------------------------


@check(
    "dashboard/provisioning",
    stage=5,
    title="Datasource Prometheus (default) e provider de dashboards provisionados; compose monta o diretório lido",
    params={
        "type": "object",
        "properties": {
            **_PATHS,
            "providers": {"type": "string"},
            "compose": {"type": "string"},
            "datasource": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "url": {"type": "string"}},
                "required": ["type", "url"],
                "additionalProperties": False,
            },
            "provider": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "interval_s": {"type": "integer"}},
                "required": ["path", "interval_s"],
                "additionalProperties": False,
            },
            "provisioning_target": {"type": "string"},
            "service": {"type": "string"},
        },
        "required": ["datasource", "provider"],
        "additionalProperties": False,
    },
)
def provisioning(ctx: Context) -> None:
    ds_rel = ctx.params.get("datasources", DATASOURCES)
    want_ds = ctx.params["datasource"]
    ds_doc = _load_yaml(ctx, ds_rel)
    entries = ds_doc.value.get("datasources") or []
    defaults = [i for i, d in enumerate(entries) if isinstance(d, dict) and d.get("isDefault") is True]
    matching = [i for i, d in enumerate(entries) if isinstance(d, dict) and d.get("type") == want_ds["type"]]
    if not matching:
        ctx.finding(f"no datasource of type {want_ds['type']}", file=ds_rel, line=ds_doc.line_of(["datasources"]))
    for i in matching:
        entry = entries[i]
        if entry.get("url") != want_ds["url"]:
            ctx.finding(
                f"datasource {entry.get('name')!r} url is {entry.get('url')!r}, expected {want_ds['url']!r}",
                file=ds_rel,
                line=ds_doc.line_of(["datasources", i, "url"]),
            )
        if "name" in want_ds and entry.get("name") != want_ds["name"]:
            ctx.finding(
                f"datasource is named {entry.get('name')!r}, expected {want_ds['name']!r}",
                file=ds_rel,
                line=ds_doc.line_of(["datasources", i, "name"]),
            )
        if i not in defaults:
            ctx.finding(
                f"datasource {entry.get('name')!r} is not the default (isDefault: true)",
                file=ds_rel,
                line=ds_doc.line_of(["datasources", i]),
            )
    if len(defaults) > 1:
        ctx.finding(
            f"{len(defaults)} datasources claim isDefault: true (Grafana accepts one)",
            file=ds_rel,
            line=ds_doc.line_of(["datasources", defaults[1]]),
        )
    ctx.record("datasources", entries)

    pv_rel = ctx.params.get("providers", PROVIDERS)
    want_pv = ctx.params["provider"]
    pv_doc = _load_yaml(ctx, pv_rel)
    providers = [p for p in pv_doc.value.get("providers") or [] if isinstance(p, dict)]
    file_providers = [(i, p) for i, p in enumerate(providers) if p.get("type", "file") == "file"]
    if not file_providers:
        ctx.finding("no file dashboard provider", file=pv_rel, line=pv_doc.line_of(["providers"]))
    paths = []
    for i, provider in file_providers:
        path = (provider.get("options") or {}).get("path")
        paths.append(path)
        if path != want_pv["path"]:
            ctx.finding(
                f"provider {provider.get('name')!r} reads {path!r}, expected {want_pv['path']!r}",
                file=pv_rel,
                line=pv_doc.line_of(["providers", i, "options", "path"]),
            )
        if provider.get("updateIntervalSeconds") != want_pv["interval_s"]:
            ctx.finding(
                f"provider {provider.get('name')!r} updateIntervalSeconds is {provider.get('updateIntervalSeconds')!r}"
                f", expected {want_pv['interval_s']}",
                file=pv_rel,
                line=pv_doc.line_of(["providers", i, "updateIntervalSeconds"]),
            )
    ctx.record("providers", providers)
    _compose_mounts(ctx, want_pv["path"])


def _compose_mounts(ctx: Context, provider_path: str) -> None:
    """The compose file must mount the repository's dashboards directory where the provider reads, and the
    provisioning directory where Grafana looks for it — otherwise both files above are never seen by Grafana."""
    from sealgate.stack.backends.base import StackError
    from sealgate.stack.backends.composefile import ComposeFile

    compose_rel = ctx.params.get("compose", COMPOSE)
    service = ctx.params.get("service", "grafana")
    compose_path = ctx.judge(compose_rel)
    try:
        where = parse_yaml(compose_path.read_text(), compose_rel).line_of(["services", service, "volumes"])
    except InputError:
        where = None  # our line-tracking reader refuses YAML merge keys (`<<`); Compose's reading below does not
    try:
        # Interpolated like Compose would, defaults only: the mounts must not depend on someone's shell.
        compose = ComposeFile(compose_path, {}, compose_rel)
    except StackError as exc:
        ctx.fail(str(exc))
    if service not in compose.services:
        ctx.fail(f"{compose_rel}: no service {service!r}")
    mounts = compose.services[service].mounts(compose_path.parent)
    ctx.record(
        "grafana_mounts", [{"source": _display(ctx, m.source), "target": m.target, "bind": m.bind} for m in mounts]
    )
    dashboards_dir = ctx.path(ctx.params.get("dashboard", DASHBOARD)).parent
    at_provider = [m for m in mounts if m.target.rstrip("/") == provider_path.rstrip("/")]
    if not at_provider:
        ctx.finding(
            f"service {service} mounts nothing at {provider_path} (where the dashboard provider reads)",
            file=compose_rel,
            line=where,
        )
    for mount in at_provider:
        if not mount.bind or Path(mount.source).resolve() != dashboards_dir.resolve():
            ctx.finding(
                f"{provider_path} is mounted from {_display(ctx, mount.source)}, not from "
                f"{_display(ctx, str(dashboards_dir))} (the dashboards directory of the repository)",
                file=compose_rel,
                line=where,
            )
    target = ctx.params.get("provisioning_target", "/etc/grafana/provisioning")
    provisioning_dir = ctx.path(ctx.params.get("datasources", DATASOURCES)).parent.parent
    ok = any(
        m.bind and (m.target.rstrip("/") == target and Path(m.source).resolve() == provisioning_dir.resolve())
        for m in mounts
    ) or all(
        any(
            m.bind
            and m.target.rstrip("/") == f"{target}/{sub}"
            and Path(m.source).resolve() == (provisioning_dir / sub).resolve()
            for m in mounts
        )
        for sub in ("datasources", "dashboards")
    )
    if not ok:
        ctx.finding(
            f"service {service} does not mount {_display(ctx, str(provisioning_dir))} at {target}",
            file=compose_rel,
            line=where,
        )


def _display(ctx: Context, path: str) -> str:
    """Repository-relative where possible: evidence must not carry this machine's paths."""
    try:
        return Path(path).resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return path


# --- the dashboard's JSON ------------------------------------------------------------------------------------------

_PANEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "type": {"type": "string"},
        "threshold": {
            "type": "object",
            "properties": {"value": {"type": "number"}, "unit": {"type": "string"}},
            "required": ["value", "unit"],
            "additionalProperties": False,
        },
        "quantiles": {"type": "array", "items": {"type": "number"}},
        "group_by": {"type": "array", "items": {"type": "string"}},
        "mappings": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"value": {"type": "string"}, "text": {"type": "string"}, "color": {"type": "string"}},
                "required": ["value", "text", "color"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["title", "type"],
    "additionalProperties": False,
}


@check(
    "dashboard/json-structure",
    stage=5,
    title="Dashboard llm-metrics-f910: uid, tags, exatamente os 4 painéis, thresholds, mapeamentos, datasource",
    params={
        "type": "object",
        "properties": {
            **_PATHS,
            "uid": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "datasource_type": {"type": "string"},
            "panels": {"type": "array", "items": _PANEL_SCHEMA, "minItems": 1},
        },
        "required": ["uid", "tags", "panels"],
        "additionalProperties": False,
    },
)
def json_structure(ctx: Context) -> None:
    relative, dashboard = _load_dashboard(ctx)

    def finding(summary: str, path: list[Any]) -> None:
        ctx.finding(summary, file=relative, json_path=_pointer(path))

    if dashboard.get("uid") != ctx.params["uid"]:
        finding(f"uid is {dashboard.get('uid')!r}, expected {ctx.params['uid']!r}", ["uid"])
    tags = dashboard.get("tags") or []
    missing_tags = [t for t in ctx.params["tags"] if t not in tags]
    if missing_tags:
        finding(f"tags {tags} lack {missing_tags}", ["tags"])

    found = panels_of(dashboard)
    wanted = ctx.params["panels"]
    ctx.record(
        "panels", [{"path": _pointer(p), "title": panel.get("title"), "type": panel.get("type")} for p, panel in found]
    )
    if len(found) != len(wanted):
        finding(f"{len(found)} panels, expected exactly {len(wanted)}", ["panels"])
    by_title = {panel.get("title"): (path, panel) for path, panel in found}
    for want in wanted:
        if want["title"] not in by_title:
            finding(f"no panel titled {want['title']!r}", ["panels"])
            continue
        path, panel = by_title[want["title"]]
        _judge_panel(ctx, want, path, panel, finding)
    for path, panel in found:
        if panel.get("title") not in {w["title"] for w in wanted}:
            finding(f"panel {panel.get('title')!r} is not one of the spec's panels", path)
    _judge_datasources(ctx, dashboard, found, finding)


def _judge_panel(ctx: Context, want: dict[str, Any], path: list[Any], panel: dict[str, Any], finding: Any) -> None:
    title = want["title"]
    if panel.get("type") != want["type"]:
        finding(f"panel {title!r} is a {panel.get('type')!r}, expected {want['type']!r}", [*path, "type"])
    targets = targets_of(panel)
    if not any(str(t.get("expr") or "").strip() for _, t in targets):
        finding(f"panel {title!r} has no query", [*path, "targets"])
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    if "threshold" in want:
        _judge_threshold(want["threshold"], title, path, defaults, finding)
    exprs = " ".join(str(t.get("expr") or "") for _, t in targets)
    for q in want.get("quantiles", []):
        if not any(math.isclose(float(v), q) for v in re.findall(r"histogram_quantile\(\s*([0-9.]+)", exprs)):
            finding(f"panel {title!r} has no histogram_quantile({q}, ...) query", [*path, "targets"])
    if want.get("group_by"):
        groups = [{label.strip() for label in g.split(",")} for g in re.findall(r"\bby\s*\(([^)]*)\)", exprs)]
        if not any(set(want["group_by"]) <= g for g in groups):
            finding(f"panel {title!r} does not aggregate by ({', '.join(want['group_by'])})", [*path, "targets"])
    if "mappings" in want:
        _judge_mappings(want["mappings"], title, path, defaults, finding)


def _judge_threshold(want: dict[str, Any], title: str, path: list[Any], defaults: dict[str, Any], finding: Any) -> None:
    unit = str(defaults.get("unit") or "")
    steps = ((defaults.get("thresholds") or {}).get("steps")) or []
    expected = want["value"] * UNIT_FACTORS.get(want["unit"], 1.0)
    factor = UNIT_FACTORS.get(unit, 1.0 if unit == want["unit"] else math.nan)
    values = [s.get("value") for s in steps if isinstance(s, dict) and isinstance(s.get("value"), (int, float))]
    if math.isnan(factor):
        finding(
            f"panel {title!r} has unit {unit!r}; cannot compare with a {want['value']} {want['unit']} threshold",
            [*path, "fieldConfig", "defaults", "unit"],
        )
    elif not any(math.isclose(v * factor, expected, rel_tol=1e-9) for v in values):
        finding(
            f"panel {title!r} has no threshold at {want['value']} {want['unit']} (unit {unit!r}, steps {values})",
            [*path, "fieldConfig", "defaults", "thresholds", "steps"],
        )


def _colour_matches(actual: str, wanted: str) -> bool:
    actual = actual.strip().lower()
    return actual == wanted.lower() or any(actual == shade + wanted.lower() for shade in SHADES)


def _judge_mappings(
    want: list[dict[str, str]], title: str, path: list[Any], defaults: dict[str, Any], finding: Any
) -> None:
    options: dict[str, Any] = {}
    for mapping in defaults.get("mappings") or []:
        if isinstance(mapping, dict) and mapping.get("type") == "value":
            options.update(mapping.get("options") or {})
    where = [*path, "fieldConfig", "defaults", "mappings"]
    for item in want:
        got = options.get(item["value"])
        if not isinstance(got, dict):
            finding(f"panel {title!r} maps no text to value {item['value']} ({item['text']})", where)
            continue
        if got.get("text") != item["text"]:
            finding(f"panel {title!r} maps {item['value']} to {got.get('text')!r}, expected {item['text']!r}", where)
        if not _colour_matches(str(got.get("color") or ""), item["color"]):
            finding(f"panel {title!r} colours {item['text']} {got.get('color')!r}, expected {item['color']}", where)
    extra = sorted(set(options) - {i["value"] for i in want})
    if extra:
        finding(f"panel {title!r} maps unexpected values {extra}", where)


def _judge_datasources(
    ctx: Context, dashboard: dict[str, Any], found: list[tuple[list[Any], dict[str, Any]]], finding: Any
) -> None:
    """Every panel and every query on the provisioned Prometheus datasource (by uid when it declares one)."""
    ds_type = ctx.params.get("datasource_type", "prometheus")
    ds_rel = ctx.params.get("datasources", DATASOURCES)
    provisioned = parse_yaml(ctx.judge(ds_rel).read_text(), ds_rel).value or {}
    ours = [d for d in provisioned.get("datasources") or [] if isinstance(d, dict) and d.get("type") == ds_type]
    uids = {d["uid"] for d in ours if d.get("uid")}
    names = {d["name"] for d in ours if d.get("name")}
    for path, panel in found:
        title = panel.get("title")
        refs = [([*path, "datasource"], panel.get("datasource"))]
        refs += [
            ([*path, "targets", j, "datasource"], t["datasource"]) for j, t in targets_of(panel) if "datasource" in t
        ]
        for where, ref in refs:
            if isinstance(ref, dict):
                uid = ref.get("uid")
                if ref.get("type") != ds_type or (uids and uid not in uids):
                    finding(
                        f"panel {title!r} uses datasource {ref}, not the provisioned {ds_type} {sorted(uids)}", where
                    )
            elif isinstance(ref, str) and ref in names:
                continue
            else:
                finding(f"panel {title!r} names no {ds_type} datasource ({ref!r})", where)


# --- queries: parse, metrics exist, answer ----------------------------------------------------------------------


def _prom_get(ctx: Context, base: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read())
        except json.JSONDecodeError:
            return exc.code, {"error": f"HTTP {exc.code}"}
    except (urllib.error.URLError, OSError) as exc:
        ctx.error(f"Prometheus does not answer at {base}: {getattr(exc, 'reason', exc)}")


def panel_queries(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every query of every panel, with the PromQL Prometheus would receive and where it is in the file."""
    queries = []
    for path, panel in panels_of(dashboard):
        for j, target in targets_of(panel):
            expr = str(target.get("expr") or "").strip()
            if expr:
                queries.append(
                    {
                        "panel": panel.get("title"),
                        "ref": target.get("refId", str(j)),
                        "json_path": _pointer([*path, "targets", j, "expr"]),
                        "expr": expr,
                        "promql": substitute_variables(expr, dashboard),
                    }
                )
    return queries


def _exposition(ctx: Context) -> str:
    url = ctx.stack.url("api") + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as exc:
        ctx.error(f"the API does not answer at {url}: {getattr(exc, 'reason', exc)}")
    ctx.attach("api_metrics.txt", text)
    return text


@check(
    "dashboard/queries-metrics",
    stage=5,
    title="Toda query de painel é PromQL válida e cada métrica nomeada existe na exposição da API e no Prometheus",
    needs_stack=True,
    params={"type": "object", "properties": {**_PATHS}, "additionalProperties": False},
)
def queries_metrics(ctx: Context) -> None:
    # EIXO 2's PromQL reader (a real parser) and its exposition/Prometheus name sources: the rules and the
    # dashboard are judged by the same code, so a metric cannot exist for one and not the other.
    from sealgate.checks import promql

    relative, queries = _dashboard_queries(ctx)
    prometheus = ctx.stack.url("prometheus")
    exposed = promql.exposition_names(_exposition(ctx))
    since = ctx.stack.started_at  # persisted volumes hold old series: only what this stack scraped counts
    try:
        stored = promql.prometheus_metric_names(prometheus, since=since)
    except (OSError, ValueError) as exc:
        ctx.error(f"Prometheus at {prometheus} does not list its metric names: {exc}")
    ctx.record("prometheus_names_since", since)
    for query in queries:
        where = {"file": relative, "json_path": query["json_path"]}
        label = f"panel {query['panel']!r} ({query['ref']})"
        try:
            names = sorted(promql.metric_names(promql.substitute_grafana_variables(query["expr"])))
        except promql.PromQLError as exc:
            ctx.finding(f"{label}: not valid PromQL: {exc}", **where)
            continue
        # Prometheus's own parser too: what it refuses never draws, whatever another parser thinks.
        status, body = _prom_get(ctx, prometheus, "/api/v1/query", {"query": query["promql"]})
        if status != 200 or body.get("status") != "success":
            ctx.finding(f"{label}: Prometheus refuses the query: {body.get('error', status)}", **where)
        query["metrics"] = names
        if not names:
            ctx.finding(f"{label} names no metric", **where)
        for name in promql.missing_metrics(names, exposed):
            ctx.finding(f"{label}: {name} is not exported by the API (/metrics)", **where)
        for name in promql.missing_metrics(names, stored):
            ctx.finding(
                f"{label}: Prometheus holds no {name}" + (" since this stack started" if since else ""), **where
            )
    ctx.record("queries", queries)


def _query(ctx: Context, base: str, promql: str) -> list[dict[str, Any]]:
    status, body = _prom_get(ctx, base, "/api/v1/query", {"query": promql})
    if status != 200 or body.get("status") != "success":
        raise ValueError(f"HTTP {status} from {base}/api/v1/query: {body.get('error', 'no error text')}")
    data = body.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar":
        return [{"metric": {}, "value": result}]
    return list(result or [])


def _generate_traffic(ctx: Context, requests: int) -> dict[str, int]:
    """Real completions through the API, so latency, tokens and the error ratio all have something to show."""
    base = ctx.stack.url("api")
    outcomes: dict[str, int] = {}
    for n in range(requests):
        body = json.dumps({"prompt": f"sealgate dashboard traffic {n}", "provider": "sim", "model": "sim-1"}).encode()
        request = urllib.request.Request(
            base + "/v1/complete", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                code = response.status
        except urllib.error.HTTPError as exc:
            code = exc.code
        except (urllib.error.URLError, OSError) as exc:
            ctx.error(f"the API does not answer at {base}: {getattr(exc, 'reason', exc)}")
        outcomes[str(code)] = outcomes.get(str(code), 0) + 1
    return outcomes


def _wait_scrape_after(ctx: Context, base: str, job: str, after: float, limit_s: float) -> float:
    """Wait until Prometheus holds a sample of the API scraped after `after` (epoch seconds); bounded."""
    started = time.monotonic()
    while True:
        try:
            result = _query(ctx, base, f'max(timestamp(up{{job="{job}"}}))')
        except ValueError as exc:
            ctx.error(f"Prometheus refuses the freshness query: {exc}")
        latest = float(result[0]["value"][1]) if result else 0.0
        if latest > after:
            waited = time.monotonic() - started
            ctx.note_wait(f"a scrape of job {job} after the traffic", waited)
            return latest
        if time.monotonic() - started > limit_s:
            ctx.error(f"Prometheus scraped no {job} sample within {limit_s:g}s after the traffic")
        time.sleep(0.5)


@check(
    "dashboard/queries-answer",
    stage=5,
    title="Após tráfego real pela API, cada query de painel retorna dados do Prometheus vivo",
    needs_stack=True,
    params={
        "type": "object",
        "properties": {
            **_PATHS,
            "requests": {"type": "integer", "minimum": 1, "maximum": 1000},
            "scrape_job": {"type": "string"},
            "scrape_wait_s": {"type": "number", "minimum": 1, "maximum": 300},
        },
        "required": ["requests", "scrape_job"],
        "additionalProperties": False,
    },
)
def queries_answer(ctx: Context) -> None:
    relative, queries = _dashboard_queries(ctx)
    prometheus = ctx.stack.url("prometheus")
    outcomes = _generate_traffic(ctx, ctx.params["requests"])
    traffic_end = time.time()
    ctx.record("traffic", outcomes)
    scraped_at = _wait_scrape_after(
        ctx, prometheus, ctx.params["scrape_job"], traffic_end, ctx.params.get("scrape_wait_s", 60)
    )
    ctx.record("fresh_scrape_after_traffic_s", round(scraped_at - traffic_end, 3))
    for query in queries:
        where = {"file": relative, "json_path": query["json_path"]}
        try:
            result = _query(ctx, prometheus, query["promql"])
        except ValueError as exc:
            ctx.finding(f"panel {query['panel']!r} ({query['ref']}): Prometheus refuses the query: {exc}", **where)
            continue
        values = [float(r["value"][1]) for r in result if "value" in r]
        finite = [v for v in values if math.isfinite(v)]
        query["series"] = len(result)
        query["values"] = [v if math.isfinite(v) else str(v) for v in values[:10]]
        if not result:
            ctx.finding(f"panel {query['panel']!r} ({query['ref']}) returns no data from Prometheus", **where)
        elif not finite:
            ctx.finding(
                f"panel {query['panel']!r} ({query['ref']}) returns only {sorted(set(map(str, values)))}", **where
            )
    ctx.record("queries", queries)


# --- Grafana itself ----------------------------------------------------------------------------------------------


@check(
    "dashboard/grafana-live",
    stage=5,
    title="Grafana vivo: /api/health, datasource saudável, dashboard provisionado por uid igual ao arquivo",
    needs_stack=True,
    params={
        "type": "object",
        "properties": {**_PATHS, "uid": {"type": "string"}, "datasource_name": {"type": "string"}},
        "required": ["uid", "datasource_name"],
        "additionalProperties": False,
    },
)
def grafana_live(ctx: Context) -> None:
    from sealgate.stack.backends.base import ServiceNotRunning

    relative, dashboard = _load_dashboard(ctx)
    # A Grafana outside the stack (the user's own) may be named explicitly; else the stack's, where it runs.
    base = os.environ.get("SEALGATE_GRAFANA_URL", "").strip()
    if not base:
        try:
            base = ctx.stack.url("grafana")
        except ServiceNotRunning as exc:
            ctx.record("grafana", exc.reason)
            ctx.skip(f"no Grafana answers on the {ctx.stack.name} backend: {exc.reason}")
    client = GrafanaClient(
        base,
        # The stack's Grafana refuses to start with the default password: the operator's GF_SECURITY_ADMIN_* apply.
        user=os.environ.get("SEALGATE_GRAFANA_USER") or os.environ.get("GF_SECURITY_ADMIN_USER") or "admin",
        password=os.environ.get("SEALGATE_GRAFANA_PASSWORD") or os.environ.get("GF_SECURITY_ADMIN_PASSWORD") or "admin",
    )
    try:
        health = client.health()
        ctx.record("health", health)
        if health.get("database") != "ok":
            ctx.finding(f"Grafana /api/health says database {health.get('database')!r}")
        datasource = client.datasource_by_name(ctx.params["datasource_name"])
        status, ds_health = client.datasource_health(str(datasource.get("uid")))
        ctx.record("datasource", {"uid": datasource.get("uid"), "url": datasource.get("url"), "health": ds_health})
        if status != 200 or str(ds_health.get("status", "")).upper() != "OK":
            ctx.finding(f"datasource {ctx.params['datasource_name']!r} is not healthy: {status} {ds_health}")
        status, served = client.dashboard(ctx.params["uid"])
    except GrafanaError as exc:
        ctx.error(f"Grafana at {base}: {exc}")
    if status != 200:
        ctx.fail(
            f"Grafana has no dashboard with uid {ctx.params['uid']!r} ({status})",
        )
    meta = served.get("meta") or {}
    ctx.record("dashboard_meta", {k: meta.get(k) for k in ("provisioned", "provisionedExternalId", "version")})
    if not meta.get("provisioned"):
        ctx.finding(f"dashboard {ctx.params['uid']!r} is in Grafana but not provisioned from a file")
    drift = differences(comparable(dashboard), comparable(served.get("dashboard") or {}))
    if drift:
        ctx.finding(f"the dashboard Grafana serves differs from {relative}: {'; '.join(drift[:5])}", file=relative)

"""A Grafana dashboard: provisioning, the dashboard's JSON, its queries against the live
Prometheus, and Grafana itself where one answers.

The dashboard and provisioning files are the spec's parameters; the compose file, the Grafana service (role
`dashboards`), the Prometheus and the scraped target that exports the metrics come from the stack description.

Grafana cannot run on the machines this is built on; everything that does not need a running Grafana is proven
here (the files, and every panel query answered by the real Prometheus after real traffic), and the one check that
does need Grafana is skipped with the reason — never passed.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import Any

from sealgate.analysis import parecer
from sealgate.analysis.described import described_service, judged_since_start, spec_entry, unjudged_values
from sealgate.analysis.grafana import GrafanaClient, GrafanaError, comparable, differences
from sealgate.analysis.grafana_query import (
    OptionSource,
    dashboard_queries,
    panels_of,
    read_dashboard,
    render_prometheus,
    targets_of,
    variables_of,
)
from sealgate.analysis.grafana_query import pointer as _pointer
from sealgate.api.context import Context
from sealgate.api.params import REPO_GLOBS, REPO_PATH
from sealgate.api.registry import check
from sealgate.backends.errors import StackError
from sealgate.backends.http import HttpAnswerError, Prometheus, request, send_traffic
from sealgate.kernel.errors import InputError
from sealgate.kernel.yamlsource import Located, parse_yaml
from sealgate.model.results import Severity

# Factors to base units (seconds, ratio), so "5 s" matches a threshold of 5000 on an `ms` panel.
UNIT_FACTORS = {"s": 1.0, "ms": 0.001, "µs": 1e-6, "ns": 1e-9, "m": 60.0, "percentunit": 1.0, "percent": 0.01}
SHADES = ("super-light-", "light-", "semi-dark-", "dark-")

# The files a check reads, repository-relative (each check lists the ones it needs as required).
DASHBOARD_PARAM: dict[str, Any] = {
    **REPO_PATH,
    "description": "the dashboard JSON file",
    "examples": ["grafana/dashboards/service.json"],
}
DATASOURCES_PARAM: dict[str, Any] = {
    **REPO_PATH,
    "description": "the Grafana datasource provisioning file",
    "examples": ["grafana/provisioning/datasources/prometheus.yml"],
}
DEFAULT_PROVISIONING_TARGET = "/etc/grafana/provisioning"  # where Grafana reads provisioning, unless told otherwise


def _dashboard_queries(ctx: Context, options: OptionSource | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The dashboard file and its panels' PromQL queries; a dashboard without any fails the check."""
    relative, dashboard = load_dashboard(ctx)
    queries = panel_queries(dashboard, options)
    if not queries:
        ctx.fail(f"{relative}: no panel has a query")
    return relative, queries


def load_dashboard(ctx: Context) -> tuple[str, dict[str, Any]]:
    relative = str(ctx.params["dashboard"])
    path = ctx.judge(relative)
    document, problems = read_dashboard(path.read_text())
    if document is None and problems and not problems[0][0].startswith("$"):
        ctx.fail(f"{relative}{problems[0][0]}: {problems[0][1]}")
    for where, what in problems:
        ctx.finding(f"{where}: {what}", file=relative, json_path=where)
    if document is None:
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


# --- provisioning --------------------------------------------------------------------------------------------------


@check(
    "dashboard/provisioning",
    title="Prometheus datasource (default) and dashboard provider provisioned; the compose file mounts what they read",
    titles={
        "pt-BR": (
            "Datasource Prometheus (default) e provider de dashboards provisionados; compose monta o diretório lido"
        )
    },
    params={
        "type": "object",
        "properties": {
            "dashboard": DASHBOARD_PARAM,
            "datasources": DATASOURCES_PARAM,
            "providers": {
                **REPO_PATH,
                "description": "the Grafana dashboard-provider provisioning file",
                "examples": ["grafana/provisioning/dashboards/default.yml"],
            },
            "datasource": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "type": {"type": "string"}, "url": {"type": "string"}},
                "required": ["type", "url"],
                "additionalProperties": False,
            },
            "provider": {
                "type": "object",
                "description": "what the file provider must say, where the project fixes it: the directory it reads "
                "(`options.path`) and how often it rescans (`updateIntervalSeconds`, Grafana's default 10)",
                "properties": {"path": {"type": "string"}, "interval_s": {"type": "integer"}},
                "additionalProperties": False,
            },
            "provisioning_target": {
                "type": "string",
                "description": "where Grafana reads provisioning (default: the service's GF_PATHS_PROVISIONING, else "
                f"{DEFAULT_PROVISIONING_TARGET})",
            },
            "service": {
                "type": "string",
                "description": "the compose service running Grafana (default: the described `dashboards` service)",
            },
        },
        "required": ["dashboard", "datasources", "providers", "datasource"],
        "additionalProperties": False,
    },
)
def provisioning(ctx: Context) -> None:
    ds_rel = str(ctx.params["datasources"])
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

    pv_rel = str(ctx.params["providers"])
    want_pv = ctx.params.get("provider") or {}
    pv_doc = _load_yaml(ctx, pv_rel)
    providers = [p for p in pv_doc.value.get("providers") or [] if isinstance(p, dict)]
    # Grafana's own defaults for what a provider may leave out (its dashboards config reader): type `file`, a rescan
    # every 10 s (also for 0), organisation 1. Only `options.path` (formerly `options.folder`) has none.
    file_providers = [(i, p) for i, p in enumerate(providers) if (p.get("type") or "file") == "file"]
    if not file_providers:
        ctx.finding("no file dashboard provider", file=pv_rel, line=pv_doc.line_of(["providers"]))
    reads: list[tuple[str, int | None]] = []  # (the directory each file provider reads, its line)
    for i, provider in file_providers:
        options = provider.get("options") if isinstance(provider.get("options"), dict) else {}
        path = options.get("path", options.get("folder"))
        line = pv_doc.line_of(["providers", i, "options", "path" if "path" in options else "folder"])
        if not isinstance(path, str) or not path:
            ctx.finding(
                f"provider {provider.get('name')!r} has no `options.path`: Grafana loads no dashboard from it",
                file=pv_rel,
                line=line,
            )
            continue
        reads.append((path, line))
        if "path" in want_pv and path != want_pv["path"]:
            ctx.finding(
                f"provider {provider.get('name')!r} reads {path!r}, expected {want_pv['path']!r}",
                file=pv_rel,
                line=line,
            )
        interval = provider.get("updateIntervalSeconds") or GRAFANA_PROVIDER_INTERVAL_S
        if "interval_s" in want_pv and interval != want_pv["interval_s"]:
            said = "" if provider.get("updateIntervalSeconds") else " (Grafana's default: the file sets none)"
            ctx.finding(
                f"provider {provider.get('name')!r} updateIntervalSeconds is {interval!r}{said}, expected "
                f"{want_pv['interval_s']}",
                file=pv_rel,
                line=pv_doc.line_of(["providers", i, "updateIntervalSeconds"]),
            )
    ctx.record("providers", providers)
    dashboard = _dashboard_file(ctx)
    _compose_mounts(ctx, dashboard, reads, pv_rel)


GRAFANA_PROVIDER_INTERVAL_S = 10  # Grafana's updateIntervalSeconds when a provider sets none (or 0)


def _dashboard_file(ctx: Context) -> Path | None:
    """The dashboard the check is given. The spec loader refuses a path that names nothing (`repo-path`); one that
    names a folder, or no longer exists, is a finding at the spec's `with.dashboard`."""
    relative = str(ctx.params["dashboard"])
    path = ctx.path(relative)
    if path.is_file():
        return ctx.judge(relative)
    located, base = spec_entry(ctx)
    ctx.finding(
        f"the dashboard {relative} (with.dashboard) is not a file of the repository: Grafana has nothing to load",
        file=ctx.spec.relpath,
        line=located.line_of((*base, "dashboard")) if located is not None else None,
    )
    return None


def _compose_mounts(ctx: Context, dashboard: Path | None, reads: list[tuple[str, int | None]], pv_rel: str) -> None:
    """Grafana must see what the files above say, as the compose file gives its container files
    (`ComposeFile.file_at`: bind mounts of the files or of directories above them, `configs:`): the datasource and
    provider files in its provisioning directory, and the dashboard under a directory a file provider reads."""
    from sealgate.backends.composefile import ComposeFile

    compose_rel = ctx.description.compose_file
    service = str(ctx.params.get("service") or ctx.description.role("dashboards").name)
    compose_path = ctx.judge(compose_rel)
    try:
        # Interpolated like Compose would, defaults only: the mounts must not depend on someone's shell.
        compose = ComposeFile(compose_path, {}, compose_rel)
    except StackError as exc:
        ctx.fail(str(exc))
    if service not in compose.services:
        ctx.fail(f"{compose_rel}: no service {service!r}")
    where = compose.line("services", service, "volumes") or compose.line("services", service)
    mounts = compose.services[service].mounts(compose_path.parent)
    ctx.record(
        "grafana_mounts", [{"source": _display(ctx, m.source), "target": m.target, "bind": m.bind} for m in mounts]
    )
    if dashboard is not None and reads:
        seen = compose.container_paths(service, dashboard)
        # A file provider reads every *.json below its path (Grafana walks it, skipping hidden directories).
        under = [
            (path, inside)
            for path, _line in reads
            for inside in seen
            if inside.startswith(path.rstrip("/") + "/")
            and inside.endswith(".json")
            and not any(part.startswith(".") for part in inside[len(path.rstrip("/")) + 1 :].split("/")[:-1])
        ]
        ctx.record("dashboard_in_grafana", sorted(inside for _path, inside in under))
        if not under:
            path, line = reads[0]
            there = compose.file_at(service, path)
            if there is None or there.host is None:
                ctx.finding(
                    f"service {service} mounts nothing at {path} (where the dashboard provider reads)",
                    file=compose_rel,
                    line=where,
                )
            else:
                ctx.finding(
                    f"the dashboard {_display(ctx, str(dashboard))} is not under {path} in service {service} "
                    f"({path} is {_display(ctx, there.host)}"
                    + (f"; the dashboard is at {', '.join(seen)}" if seen else "")
                    + "): the provider never loads it",
                    file=pv_rel,
                    line=line,
                )
    target = str(
        ctx.params.get("provisioning_target")
        or compose.services[service].environment().get("GF_PATHS_PROVISIONING")
        or DEFAULT_PROVISIONING_TARGET
    ).rstrip("/")
    missing = []
    for kind, param in (("datasources", "datasources"), ("dashboards", "providers")):
        relative = str(ctx.params[param])
        # Grafana reads the *.yaml / *.yml files directly in <provisioning>/<kind>/.
        places = [
            inside
            for inside in compose.container_paths(service, ctx.path(relative))
            if inside.rsplit("/", 1)[0] == f"{target}/{kind}" and inside.endswith((".yaml", ".yml"))
        ]
        if not places:
            missing.append((kind, relative))
    if len(missing) == 2:
        provisioning_dir = ctx.path(str(ctx.params["datasources"])).parent.parent
        ctx.finding(
            f"service {service} does not mount {_display(ctx, str(provisioning_dir))} at {target}",
            file=compose_rel,
            line=where,
        )
    for kind, relative in missing if len(missing) == 1 else []:
        ctx.finding(
            f"service {service} does not see {relative} in {target}/{kind} (where Grafana reads its {kind} "
            "provisioning)",
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
    title="Dashboard JSON: uid, tags, exactly the spec's panels, thresholds, value mappings, datasource",
    titles={
        "pt-BR": "JSON do dashboard: uid, tags, exatamente os painéis da spec, thresholds, mapeamentos, datasource"
    },
    params={
        "type": "object",
        "properties": {
            "dashboard": DASHBOARD_PARAM,
            "datasources": DATASOURCES_PARAM,
            "uid": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "datasource_type": {"type": "string"},
            "panels": {"type": "array", "items": _PANEL_SCHEMA, "minItems": 1},
        },
        "required": ["dashboard", "datasources", "uid", "tags", "panels"],
        "additionalProperties": False,
    },
)
def json_structure(ctx: Context) -> None:
    relative, dashboard = load_dashboard(ctx)

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
    ds_rel = str(ctx.params["datasources"])
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


def panel_queries(dashboard: dict[str, Any], options: OptionSource | None = None) -> list[dict[str, Any]]:
    """Every PromQL query of every panel (all layouts, Prometheus datasources only), with the PromQL Grafana would
    send to Prometheus (variables resolved, checks/grafana_query.py) and where it is in the file."""
    variables = variables_of(dashboard)
    return [
        {
            "panel": query.panel,
            "ref": query.ref,
            "json_path": query.json_path,
            "expr": query.expr,
            "promql": render_prometheus(query.expr, variables, options).text,
        }
        for query in dashboard_queries(dashboard).queries
    ]


def _target(ctx: Context) -> Any:
    """The scraped service whose metrics the panels show: the spec's `target`, else the description's main target."""
    name = ctx.params.get("target")
    return ctx.description.service(str(name)) if name else ctx.description.main_target()


def _targets(ctx: Context) -> list[Any]:
    """Every scraped service whose metrics the panels show: the spec's `targets` (an exporter's beside the
    application's), else the one of `_target`."""
    names = ctx.params.get("targets")
    if not names:
        return [_target(ctx)]
    return [described_service(ctx, str(name), ("targets", index)) for index, name in enumerate(names)]


def _exposition(ctx: Context, target: Any) -> str:
    """The target's metrics page, as Prometheus scrapes it (attached to the evidence)."""
    url = ctx.stack.url(target.name) + target.metrics_path
    answer = request("GET", url)  # nothing answering is a StackError: the check could not run, naming the address
    if not answer.ok or not isinstance(answer.body, str):
        ctx.error(f"{target.name} does not serve its metrics at {url}: HTTP {answer.status}")
    ctx.attach(f"{target.name}_metrics.txt", answer.body)
    return answer.body


def _prometheus(ctx: Context) -> tuple[str, Prometheus]:
    url = ctx.stack.url(ctx.description.role("prometheus").name)
    return url, Prometheus(url)


TARGET_PARAM: dict[str, Any] = {
    "type": "string",
    "description": "the scraped service whose metrics the panels show (default: the description's main target)",
}
TARGETS_PARAM: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"type": "string"},
    "description": "instead of `target`: every scraped service whose metrics the panels show (e.g. an exporter's "
    "beside the application's); a metric must be exported by one of them",
}


def _datasource_types(ctx: Context) -> tuple[dict[str, str], str]:
    """Provisioned datasource names and uids -> type, and the default datasource's type."""
    if "datasources" not in ctx.params:  # the queries are then taken as the default datasource's: Prometheus
        return {}, "prometheus"
    relative = str(ctx.params["datasources"])
    try:
        provisioned = parse_yaml(ctx.judge(relative).read_text(), relative).value or {}
    except InputError:
        return {}, "prometheus"
    entries = [d for d in provisioned.get("datasources") or [] if isinstance(d, dict) and d.get("type")]
    names = {str(d[k]): str(d["type"]) for d in entries for k in ("name", "uid") if d.get(k)}
    default = next((str(d["type"]) for d in entries if d.get("isDefault") is True), "prometheus")
    return names, default


def missing_texts(label: str, verdict: parecer.MetricVerdict, exposition: str, scope: str) -> list[str]:
    """A missing metric said per source, one finding each ("not exported by the API", "Prometheus holds no …")."""
    texts = []
    if verdict.kind in ("metric-missing", "metric-not-scraped", "metric-disappeared") and verdict.metric:
        if verdict.exported is False:
            texts.append(f"{label}: {verdict.metric} is not exported by {exposition}")
        if verdict.prometheus in ("never", "gone"):
            texts.append(f"{label}: Prometheus holds no {verdict.metric} {scope}")
    return texts or [f"{label}: {verdict.message}"]


@check(
    "dashboard/queries-metrics",
    title="Every panel query is valid PromQL and every metric and label it reads is exported by the target and held "
    "by Prometheus",
    titles={
        "pt-BR": (
            "Toda query de painel é PromQL válida e cada métrica nomeada existe na exposição do alvo e no Prometheus"
        )
    },
    needs_stack=True,
    params={
        "type": "object",
        "properties": {
            "dashboard": DASHBOARD_PARAM,
            "datasources": DATASOURCES_PARAM,
            "target": TARGET_PARAM,
            "targets": TARGETS_PARAM,
            "rules": {
                "type": "array",
                "items": REPO_GLOBS["items"],
                "description": "rule files whose recorded series the panels may read (judged through their inputs)",
            },
            "min_age": {"type": "string", "pattern": "^([0-9]+(ms|[smhdwy]))+$"},
            "lookback": {"type": "string", "pattern": "^([0-9]+(ms|[smhdwy]))+$"},
        },
        "required": ["dashboard"],
        "not": {"required": ["target", "targets"]},
        "additionalProperties": False,
    },
)
def queries_metrics(ctx: Context) -> None:
    # The rules' judgement (analysis/parecer.py) on every panel query: the rules and the dashboard are judged by the
    # same code — and by `sealgate lint` — so a metric cannot exist for one and not the other.
    from sealgate.analysis import rulefiles as rule_files

    relative, dashboard = load_dashboard(ctx)
    names, default = _datasource_types(ctx)
    found = dashboard_queries(dashboard, names, default)
    if not found.queries:
        ctx.fail(f"{relative}: no panel has a query")
    for path, name in found.library_panels:
        ctx.finding(
            f"library panel {name!r} is not in {relative} (export the dashboard with its library panels): "
            "its queries are not judged",
            file=relative,
            json_path=path,
            severity=Severity.WARNING,
        )
    ctx.record("other_datasources", found.other)
    scope = "since this stack started"
    targets = _targets(ctx)
    prometheus_url, prometheus = _prometheus(ctx)
    judged_since_start(ctx, prometheus)
    source = parecer.PrometheusSource(
        prometheus_url,
        scope=scope,
        min_age_s=rule_files.duration_s(ctx.params.get("min_age", "1h")),
        lookback_s=rule_files.duration_s(ctx.params.get("lookback", "7d")),
    )
    recorded = (
        rule_files.all_rules(rule_files.load_rules(ctx, list(ctx.params["rules"]))) if "rules" in ctx.params else []
    )
    variables = variables_of(dashboard)
    options = parecer.variable_options(source)
    queries = []
    try:
        expositions = [
            parecer.Exposition.parse(_exposition(ctx, target), f"{target.name} ({target.metrics_path})")
            for target in targets
        ]
        judge = parecer.Parecer(
            expositions, source, rule_files.recordings(recorded), unjudged_values=unjudged_values(ctx)
        )
        assert judge.exposition is not None
        exported_by = judge.exposition.origin  # every target's, merged: a metric exported by any of them exists
        for item in parecer.judge_panels(judge, dashboard, found.queries):
            query = item.query
            where = {"file": relative, "json_path": query.json_path}
            label = query.label()
            sent = render_prometheus(query.expr, variables, options).text
            queries.append({"panel": query.panel, "ref": query.ref, "json_path": query.json_path, "promql": sent})
            if item.judged.syntax_error is not None:
                ctx.finding(f"{label}: not valid PromQL: {item.judged.syntax_error}", **where)
                continue
            assert item.judged.analysis is not None
            queries[-1]["metrics"] = sorted(item.judged.analysis.names())
            # Prometheus's own parser too: what it refuses never draws, whatever another parser thinks.
            refusal = source.refuses(sent)
            if refusal is not None:
                ctx.finding(f"{label}: Prometheus refuses the query: {refusal}", **where)
            for verdict in item.judged.verdicts:
                for text in missing_texts(label, verdict, exported_by, scope):
                    ctx.finding(text, severity=Severity(verdict.severity), **where)
    except parecer.SourceError as exc:
        ctx.error(str(exc))
    ctx.record("queries", queries)


@check(
    "dashboard/queries-answer",
    title="After real traffic through the target, every panel query returns data from the live Prometheus",
    titles={"pt-BR": "Após tráfego real pelo alvo, cada query de painel retorna dados do Prometheus vivo"},
    needs_stack=True,
    params={
        "type": "object",
        "properties": {
            "dashboard": DASHBOARD_PARAM,
            "target": TARGET_PARAM,
            "requests": {"type": "integer", "minimum": 1, "maximum": 1000},
            "burst": {
                "type": "object",
                "description": "after the steady requests, this many more sent at once by `concurrency` parallel "
                "clients (default 8): traffic a rate limiter refuses, for panels that show refusals",
                "required": ["requests"],
                "additionalProperties": False,
                "properties": {
                    "requests": {"type": "integer", "minimum": 1, "maximum": 5000},
                    "concurrency": {"type": "integer", "minimum": 1, "maximum": 64},
                },
            },
            "expect_statuses": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "integer", "minimum": 100, "maximum": 599},
                "description": "HTTP statuses the traffic must have been answered with at least once (e.g. 429): a "
                "panel that shows them is only proven by traffic that provokes them",
            },
            "nonzero_panels": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string"},
                "description": "titles of panels that must show a value above 0 after the traffic, in one of their "
                "queries at least (data alone may be a flat 0: a series created at 0 answers before anything happened)",
            },
            "scrape_job": {"type": "string", "description": "the target's scrape job (default: the described one)"},
            "scrape_jobs": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string"},
                "description": "instead of `scrape_job`: every job that feeds the panels (an exporter's too), each "
                "waited for until scraped after the traffic — rate() over a series needs that second sample",
            },
            "scrape_wait_s": {"type": "number", "minimum": 1, "maximum": 300},
        },
        "required": ["dashboard", "requests"],
        "not": {"required": ["scrape_job", "scrape_jobs"]},
        "additionalProperties": False,
    },
)
def queries_answer(ctx: Context) -> None:
    target = _target(ctx)
    jobs = [str(j) for j in ctx.params.get("scrape_jobs") or [ctx.params.get("scrape_job") or target.job]]
    prometheus_url, prometheus = _prometheus(ctx)
    # Query variables get their options the way Grafana gets them: label_values(...) asked to this Prometheus.
    relative, queries = _dashboard_queries(ctx, parecer.variable_options(parecer.PrometheusSource(prometheus_url)))
    nonzero = [str(title) for title in ctx.params.get("nonzero_panels") or []]
    for title in nonzero:
        if not any(query["panel"] == title for query in queries):
            ctx.finding(f"no panel titled {title!r} has a query (named by `nonzero_panels`)", file=relative)
    # Real requests through the target, so every panel (latency, volume, errors) has something to show.
    outcomes = send_traffic(ctx.stack, ctx.params["requests"], target)
    burst = ctx.params.get("burst")
    if burst:
        # All at once, from parallel clients: what a rate limiter exists to refuse.
        burst_outcomes = send_traffic(ctx.stack, burst["requests"], target, concurrency=burst.get("concurrency", 8))
        ctx.record("burst", burst_outcomes)
        for status, count in burst_outcomes.items():
            outcomes[status] = outcomes.get(status, 0) + count
    traffic_end = time.time()
    ctx.record("traffic", outcomes)
    for status in ctx.params.get("expect_statuses") or []:
        if str(status) not in outcomes:
            ctx.finding(
                f"the traffic to {target.name} was never answered {status} (answers: "
                f"{', '.join(f'{s} x{n}' for s, n in sorted(outcomes.items()))}): the panels that show {status}s are "
                "not proven by it"
            )
    limit_s = float(ctx.params.get("scrape_wait_s", 60))
    fresh: dict[str, float] = {}
    for job in jobs:
        try:
            waited = prometheus.wait_scrape_after(job, traffic_end, limit_s)
            scraped_at = prometheus.newest_sample(job)
        except HttpAnswerError as exc:
            ctx.error(f"Prometheus refuses the freshness query: {exc}")
        except StackError as exc:
            ctx.error(f"{exc} after the traffic")
        ctx.note_wait(f"a scrape of job {job} after the traffic", waited)
        fresh[job] = round(scraped_at - traffic_end, 3)
    ctx.record("fresh_scrape_after_traffic_s", fresh[jobs[0]] if len(jobs) == 1 else fresh)
    shown: set[str] = set()  # panels with a value above 0
    for query in queries:
        where = {"file": relative, "json_path": query["json_path"]}
        try:
            result = prometheus.query(query["promql"])
        except HttpAnswerError as exc:
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
        if query["panel"] in nonzero and any(v > 0 for v in finite):
            shown.add(query["panel"])
    for title in nonzero:
        refs = [q["ref"] for q in queries if q["panel"] == title and q.get("series")]
        if refs and title not in shown:
            ctx.finding(
                f"panel {title!r} ({', '.join(refs)}) shows only 0 after the traffic: what it shows did not happen, "
                "or is not counted",
                file=relative,
                json_path=next(q["json_path"] for q in queries if q["panel"] == title),
            )
    ctx.record("queries", queries)


# --- Grafana itself ----------------------------------------------------------------------------------------------


@check(
    "dashboard/grafana-live",
    title="Live Grafana: /api/health, datasource healthy, dashboard provisioned under its uid and equal to the file",
    titles={"pt-BR": "Grafana vivo: /api/health, datasource saudável, dashboard provisionado por uid igual ao arquivo"},
    needs_stack=True,
    params={
        "type": "object",
        "properties": {
            "dashboard": DASHBOARD_PARAM,
            "uid": {"type": "string"},
            "datasource_name": {"type": "string"},
        },
        "required": ["dashboard", "uid", "datasource_name"],
        "additionalProperties": False,
    },
)
def grafana_live(ctx: Context) -> None:
    from sealgate.backends.errors import ServiceNotRunning

    relative, dashboard = load_dashboard(ctx)
    # A Grafana outside the stack (the user's own) may be named explicitly; else the stack's, where it runs.
    base = os.environ.get("SEALGATE_GRAFANA_URL", "").strip()
    if not base:
        try:
            base = ctx.stack.url(ctx.description.role("dashboards").name)
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

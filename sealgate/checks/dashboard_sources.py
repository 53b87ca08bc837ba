"""Exporter-fed panels: a panel said to show what an exporter measures (a database, a queue, a host) must draw it from
that exporter's scrape job — not from a same-named metric of another target, nor from a job whose targets are down.

`dashboard/panel-jobs` takes, from the spec, the dashboard file and a list of panels, each with the scrape job that
feeds it (`{title: Database Transactions, job: postgres}`). For each named panel, on the live Prometheus:

* every target of the job is up (`up{job="…"} == 1`), and there is at least one;
* every metric selector each of the panel's queries reads (its label matchers kept, Grafana variables resolved the
  way `dashboard/queries-answer` sends them) has series scraped by that job *now* — `count by (job) (selector)`;
* with `exclusive: true`, it has series of no other job either (a query that mixes two sources draws both).

Selectors that only decide whether a query falls back (`absent()`, `or vector()`, right of `unless`) are not judged:
the panel does not draw them. Whether the metrics exist at all is `dashboard/queries-metrics`' judgement, and
whether the queries return data after traffic is `dashboard/queries-answer`'s.
"""

from __future__ import annotations

import json
from typing import Any

from sealgate.analysis import parecer, promql
from sealgate.analysis.described import prometheus
from sealgate.api.context import Context
from sealgate.api.registry import check
from sealgate.backends.http import HttpAnswerError, Prometheus
from sealgate.checks.dashboard import DASHBOARD_PARAM, load_dashboard, panel_queries


def selector_text(use: promql.Use) -> str:
    """A PromQL selector for one use: its metric name (or `__name__` pattern) and label matchers, values quoted as
    PromQL strings (JSON's escapes are PromQL's)."""
    matchers = [f"{m.label}{m.op}{json.dumps(m.value)}" for m in use.matchers]
    if not use.ref.name:
        op = "!~" if use.ref.negated else "=~"
        matchers.insert(0, f"__name__{op}{json.dumps(use.ref.pattern)}")
    inner = ", ".join(matchers)
    return f"{use.ref.name or ''}{{{inner}}}" if inner or not use.ref.name else str(use.ref.name)


def jobs_of(source: Prometheus, selector: str) -> dict[str, int]:
    """Scrape job -> how many series of `selector` Prometheus holds now (series without a job under "")."""
    result = source.query(f"count by (job) ({selector})")
    return {str(r["metric"].get("job", "")): int(float(r["value"][1])) for r in result}


def _job_targets(ctx: Context, source: Prometheus, job: str, where: str) -> dict[str, float]:
    """instance -> up of every target of `job`; a finding when there is none or one is down."""
    up = {
        str(r["metric"].get("instance", "")): float(r["value"][1]) for r in source.query(f"up{{job={json.dumps(job)}}}")
    }
    if not up:
        ctx.finding(f"{where}: Prometheus scrapes no target of job {job!r}")
    for instance, value in sorted(up.items()):
        if value != 1:
            ctx.finding(f"{where}: target {instance} of job {job!r} is down (up = {value:g})")
    return up


@check(
    "dashboard/panel-jobs",
    title="Each named panel reads series scraped by its exporter's job, and every target of that job is up",
    titles={"pt-BR": "Cada painel nomeado lê séries coletadas pelo job do seu exporter, e todo alvo desse job está up"},
    needs_stack=True,
    params={
        "type": "object",
        "properties": {
            "dashboard": DASHBOARD_PARAM,
            "panels": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["title", "job"],
                    "additionalProperties": False,
                    "properties": {
                        "title": {"type": "string", "minLength": 1},
                        "job": {"type": "string", "minLength": 1, "description": "the scrape job that feeds it"},
                        "exclusive": {
                            "type": "boolean",
                            "description": "its selectors must match series of no other job (default false)",
                        },
                    },
                },
            },
        },
        "required": ["dashboard", "panels"],
        "additionalProperties": False,
    },
)
def panel_jobs(ctx: Context) -> None:
    source = prometheus(ctx)
    relative, dashboard = load_dashboard(ctx)
    queries = panel_queries(dashboard, parecer.variable_options(parecer.PrometheusSource(source.base)))
    checked: list[dict[str, Any]] = []
    try:
        for want in ctx.params["panels"]:
            title, job = str(want["title"]), str(want["job"])
            mine = [q for q in queries if q["panel"] == title]
            if not mine:
                ctx.finding(f"no panel titled {title!r} has a query", file=relative)
                continue
            up = _job_targets(ctx, source, job, f"panel {title!r}")
            for query in mine:
                checked.append(_judge_query(ctx, source, relative, query, job, bool(want.get("exclusive")), up))
    except HttpAnswerError as exc:
        ctx.error(f"Prometheus refuses a query: {exc}")
    ctx.record("queries", checked)


def _judge_query(
    ctx: Context,
    source: Prometheus,
    relative: str,
    query: dict[str, Any],
    job: str,
    exclusive: bool,
    up: dict[str, float],
) -> dict[str, Any]:
    where = {"file": relative, "json_path": query["json_path"]}
    label = f"panel {query['panel']!r} ({query['ref']})"
    entry: dict[str, Any] = {"panel": query["panel"], "ref": query["ref"], "job": job, "targets_up": up}
    try:
        analysis = promql.analyse(query["promql"])
    except promql.PromQLError as exc:
        ctx.finding(f"{label}: not valid PromQL: {exc}", **where)
        return entry
    drawn = [use for use in analysis.uses if not use.optional]
    if not drawn:
        ctx.finding(f"{label}: reads no metric a panel draws (only absent() / fallbacks)", **where)
    selectors: dict[str, dict[str, int]] = {}
    for use in drawn:
        selector = selector_text(use)
        if selector in selectors:
            continue
        jobs = selectors[selector] = jobs_of(source, selector)
        others = sorted(j or "(no job label)" for j in jobs if j != job)
        if job not in jobs:
            found = f"it has series of {', '.join(others)}" if others else "Prometheus holds no series of it now"
            ctx.finding(f"{label}: {selector} has no series scraped by job {job!r} ({found})", **where)
        elif exclusive and others:
            ctx.finding(
                f"{label}: {selector} also matches series of {', '.join(others)}, not only job {job!r}: the panel "
                "mixes sources (add a job matcher)",
                **where,
            )
    entry["selectors"] = selectors
    return entry

"""Real-world patterns of rule files and dashboards that broke the parecer, each reproduced by a minimal input of
our own, with a passing and a failing case: dashboards (rows[].panels, non-Prometheus datasources, Grafana variables
by position, variables inside metric names, $__all, current.value objects, {__name__=~…} and constants, library
panels) and rule files (`for: "0"`, promtool errors at the file it names, files over 2 MiB, `**` globs, inventories
with warning/critical pairs and recording rules)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from checkrun import explain, run_checks
from conftest import commit_all, need_tool

from sealgate.analysis import promql
from sealgate.analysis import rulefiles as rules
from sealgate.analysis.grafana_query import (
    Variable,
    dashboard_queries,
    panels_of,
    read_dashboard,
    render_prometheus,
    render_static,
    variables_of,
)
from sealgate.lint import LintFinding, LintOptions, lint
from sealgate.model.results import Status

EXPOSITION = """\
# TYPE app_requests_total counter
app_requests_total{code="200"} 1
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le="1"} 1
app_latency_seconds_bucket{le="+Inf"} 1
app_latency_seconds_sum 0.2
app_latency_seconds_count 1
# TYPE node_load1 gauge
node_load1 0.5
"""


def panel(expr: str, datasource: Any = None, **extra: Any) -> dict[str, Any]:
    target: dict[str, Any] = {"refId": "A", "expr": expr}
    return {"type": "timeseries", "title": "P", "datasource": datasource, "targets": [target], **extra}


def lint_dashboard(tmp_path: Path, dashboard: dict[str, Any], metrics: bool = True) -> list[LintFinding]:
    (tmp_path / "board.json").write_text(json.dumps(dashboard, indent=2))
    (tmp_path / "metrics.txt").write_text(EXPOSITION)
    report = lint(LintOptions(root=tmp_path, dashboards=["board.json"], metrics=["metrics.txt"] if metrics else []))
    return report.findings


def summary(findings: list[LintFinding]) -> list[tuple[str, str, str | None]]:
    return [(f.kind, f.severity, f.json_path) for f in findings]


# --- dashboards: where panels are ----------------------------------------------------------------------------------


def test_old_rows_layout_panels_are_read_and_judged(tmp_path: Path) -> None:
    board = {
        "rows": [{"title": "r", "panels": [panel("rate(app_requests_total[5m])"), panel("rate(app_typo_total[5m])")]}]
    }
    assert [path for path, _ in panels_of(board)] == [["rows", 0, "panels", 0], ["rows", 0, "panels", 1]]
    assert summary(lint_dashboard(tmp_path, board)) == [
        ("metric-missing", "error", "$.rows[0].panels[1].targets[0].expr")
    ]


def test_collapsed_row_panels_are_read(tmp_path: Path) -> None:
    board = {"panels": [{"type": "row", "panels": [panel("rate(app_typo_total[5m])")]}]}
    assert summary(lint_dashboard(tmp_path, board)) == [
        ("metric-missing", "error", "$.panels[0].panels[0].targets[0].expr")
    ]


# --- dashboards: which queries are PromQL ---------------------------------------------------------------------

LOGQL = 'sum(count_over_time({app="api"} |= "error" [5m]))'


@pytest.mark.parametrize(
    "datasource",
    [
        {"type": "loki", "uid": "logs"},
        "$loki_datasource",  # a datasource variable whose plugin is loki
        "Loki",  # a datasource named by a plain string
    ],
    ids=["typed", "variable", "name"],
)
def test_queries_to_loki_are_not_judged_as_promql(tmp_path: Path, datasource: Any) -> None:
    board = {
        "templating": {"list": [{"name": "loki_datasource", "type": "datasource", "query": "loki"}]},
        "panels": [panel(LOGQL, datasource)],
    }
    assert lint_dashboard(tmp_path, board) == []
    assert dashboard_queries(board).other == {"loki": 1}


def test_logql_on_a_prometheus_panel_is_invalid_promql(tmp_path: Path) -> None:
    board = {"panels": [panel(LOGQL, {"type": "prometheus", "uid": "p"})]}
    assert summary(lint_dashboard(tmp_path, board)) == [("promql-syntax", "error", "$.panels[0].targets[0].expr")]


def test_target_datasource_overrides_a_mixed_panel(tmp_path: Path) -> None:
    mixed = {"type": "datasource", "uid": "-- Mixed --"}
    board = {"panels": [panel(LOGQL, mixed)]}
    board["panels"][0]["targets"][0]["datasource"] = {"type": "loki", "uid": "x"}
    board["panels"][0]["targets"].append({"refId": "B", "expr": "rate(app_typo_total[5m])"})
    assert summary(lint_dashboard(tmp_path, board)) == [("metric-missing", "error", "$.panels[0].targets[1].expr")]


# --- dashboards: Grafana variables by position ---------------------------------------------------------------

VARIABLES = {
    "templating": {
        "list": [
            {"name": "k", "type": "custom", "query": "5,10", "current": {"value": "5"}},
            {"name": "q", "type": "custom", "query": "0.99,0.9", "current": {"value": "0.9"}},
            {"name": "interval", "type": "interval", "query": "1m,5m", "current": {"value": "5m"}},
            {"name": "offset", "type": "custom", "query": "1h,1d", "current": {"value": "1d"}},
            {"name": "group", "type": "custom", "query": "code", "current": {"value": "code"}},
            # Grafana also writes the current option as an object
            {"name": "job", "type": "query", "current": {"value": {"text": "api", "value": "api"}}},
            {"name": "op", "type": "custom", "query": "Include : or, Exclude : unless", "current": {"value": "unless"}},
        ]
    }
}


@pytest.mark.parametrize(
    ("expr", "sent"),
    [
        ("topk($k, rate(app_requests_total[5m]))", "topk(5, rate(app_requests_total[5m]))"),
        ("quantile($q, rate(app_requests_total[5m]))", "quantile(0.9, rate(app_requests_total[5m]))"),
        (
            "histogram_quantile($q, sum by (le) (rate(app_latency_seconds_bucket[5m])))",
            "histogram_quantile(0.9, sum by (le) (rate(app_latency_seconds_bucket[5m])))",
        ),
        ("rate(app_requests_total[${__rate_interval}])", "rate(app_requests_total[1m])"),
        ("rate(app_requests_total[[[__interval]]])", "rate(app_requests_total[1m])"),
        ("rate(app_requests_total[$interval])", "rate(app_requests_total[5m])"),
        ("rate(app_requests_total[$__auto])", "rate(app_requests_total[1m])"),
        ("app_requests_total offset $offset", "app_requests_total offset 1d"),
        ("app_requests_total @ ${__to:date:seconds}", "app_requests_total @ 1700000000"),
        ("sum by ($group) (rate(app_requests_total[5m]))", "sum by (code) (rate(app_requests_total[5m]))"),
        ('rate(app_requests_total{job="$job"}[5m])', 'rate(app_requests_total{job="api"}[5m])'),
        ("topk by (code) ($k, app_requests_total)", "topk by (code) (5, app_requests_total)"),
        ("increase(app_requests_total[${__range_s}s])", "increase(app_requests_total[3600s])"),
        ('label_replace(node_load1, "a", "$1", "b", "(.*)")', 'label_replace(node_load1, "a", "$1", "b", "(.*)")'),
        ("node_load1 > 1 $op on () app_requests_total", "node_load1 > 1 unless on () app_requests_total"),
        (
            "# it's a comment\nrate(app_requests_total[$__rate_interval])",
            "# it's a comment\nrate(app_requests_total[1m])",
        ),
    ],
)
def test_variables_are_replaced_by_what_their_position_takes(tmp_path: Path, expr: str, sent: str) -> None:
    variables = variables_of(VARIABLES)
    promql.parse(render_static(expr, variables).text)  # the static rendering parses
    assert render_prometheus(expr, variables, now=1700000000).text == sent
    board = {**VARIABLES, "panels": [panel(expr)]}
    findings = [f for f in lint_dashboard(tmp_path, board) if f.kind not in ("counter-compared",)]
    assert findings == []


def test_an_unparseable_query_is_still_reported(tmp_path: Path) -> None:
    board = {**VARIABLES, "panels": [panel("rate(app_requests_total[$interval]")]}
    assert summary(lint_dashboard(tmp_path, board)) == [("promql-syntax", "error", "$.panels[0].targets[0].expr")]


@pytest.mark.parametrize(
    "expr",
    [
        'sum(${geo_metric}{job="api"})',
        'sum(rate({__name__="vault_route_create_${mountpoint}__count"}[5m]))',
        "sum(rate(node_${mode}_seconds_total[5m]))",
    ],
)
def test_metric_name_built_from_a_variable_cannot_be_judged_statically(tmp_path: Path, expr: str) -> None:
    board = {"panels": [panel(expr)]}
    findings = lint_dashboard(tmp_path, board)
    assert summary(findings) == [("not-judgeable", "warning", "$.panels[0].targets[0].expr")]
    assert "cannot be judged statically" in findings[0].message
    assert not any(f.kind == "metric-missing" for f in findings)  # never a false "not exported"


def test_all_resolves_through_all_value_or_the_options() -> None:
    board = {
        "templating": {
            "list": [
                {"name": "a", "includeAll": True, "allValue": ".*", "current": {"value": "$__all"}},
                {
                    "name": "b",
                    "includeAll": True,
                    "current": {"value": ["$__all"]},
                    "options": [{"value": "$__all"}, {"value": "x.y"}, {"value": "z"}],
                },
                {"name": "c", "current": {"value": ["p", "q"]}},
                {"name": "d", "type": "query", "query": "label_values(up, job)"},
            ]
        }
    }
    variables = variables_of(board)
    expr = 'up{a=~"$a", b=~"$b", c=~"$c", d="$d"}'
    assert render_prometheus(expr, variables).text == 'up{a=~".*", b=~"(x\\.y|z)", c=~"(p|q)", d="__grafana_var__"}'
    # A query variable's options from Prometheus (label_values), the way Grafana fills them.
    assert render_prometheus(expr, variables, lambda v: ["api", "db"]).text.endswith('d="api"}')


def test_current_value_as_an_object_is_accepted_and_a_list_of_numbers_is_not() -> None:
    good = {"templating": {"list": [{"name": "x", "current": {"value": {"text": "a", "value": "a"}}}]}}
    assert read_dashboard(json.dumps(good)) == (good, [])
    assert variables_of(good)["x"] == Variable("x", "query", ["a"], [], False, None, "")
    bad = {"templating": {"list": [{"name": "x", "current": {"value": [1]}}]}}
    assert read_dashboard(json.dumps(bad))[1] == [
        ("$.templating.list[0].current.value[0]", "expected a string, found a number")
    ]


# --- dashboards: selectors by regex, constants, library panels -------------------------------------------------


def test_name_regex_selectors_are_judged_and_constants_accepted(tmp_path: Path) -> None:
    board = {
        "panels": [
            panel('sum(rate({__name__=~"app_requests_.*"}[5m]))'),
            panel("vector(1)"),
            panel("time() - 1"),
            panel('count({__name__=~"appp_.*"})'),
        ]
    }
    assert summary(lint_dashboard(tmp_path, board)) == [("pattern-unmatched", "error", "$.panels[3].targets[0].expr")]


def test_library_panels_are_reported_or_judged_from_the_export(tmp_path: Path) -> None:
    board = {"panels": [{"type": "timeseries", "libraryPanel": {"uid": "lib1", "name": "Shared"}}]}
    findings = lint_dashboard(tmp_path, board)
    assert summary(findings) == [("library-panel", "warning", "$.panels[0]")]
    assert "library panel 'Shared' is not in the file" in findings[0].message
    board["__elements"] = {"lib1": {"model": panel("rate(app_typo_total[5m])")}}
    assert summary(lint_dashboard(tmp_path, board)) == [
        ("metric-missing", "error", "$.__elements.lib1.model.targets[0].expr")
    ]


# --- rule files ----------------------------------------------------------------------------------------------------


def lint_rules(tmp_path: Path, files: dict[str, str], pattern: str = "*.yml") -> list[LintFinding]:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    return lint(LintOptions(root=tmp_path, rules=[pattern])).findings


ALERT = """\
groups:
  - name: g
    rules:
      - alert: A
        expr: up == 0
        for: {duration}
"""


def test_for_zero_is_accepted_as_prometheus_does(tmp_path: Path) -> None:
    need_tool("promtool")
    assert rules.duration_s("0") == 0.0
    assert lint_rules(tmp_path, {"a.yml": ALERT.format(duration='"0"')}) == []
    findings = lint_rules(tmp_path, {"a.yml": ALERT.format(duration='"0x"')})
    assert ("rule-file", "a.yml", 6, "not a Prometheus duration: '0x'") in [
        (f.kind, f.file, f.line, f.message) for f in findings
    ]
    assert any(f.kind == "promtool" and "not a valid duration string" in f.message for f in findings)


def test_promtool_lint_errors_are_at_the_file_and_rule_promtool_names(tmp_path: Path) -> None:
    need_tool("promtool")
    duplicated = ALERT.format(duration="1m") + "      - alert: A\n        expr: up == 1\n"
    findings = lint_rules(tmp_path, {"a.yml": ALERT.format(duration="1m"), "b.yml": duplicated})
    assert [(f.file, f.line, f.kind) for f in findings] == [("b.yml", 7, "promtool")]
    assert findings[0].message == "promtool: lint error: duplicate rule A{} (1 duplicate rule(s) found.)"


def test_rule_files_over_2_mib_are_read_and_an_alias_bomb_is_still_refused(tmp_path: Path) -> None:
    need_tool("promtool")
    big = "groups:\n  - name: big\n    rules:\n" + "".join(
        f'      - record: job:big_{i}:sum\n        expr: sum by (job) (up{{job="{"x" * 400}"}})\n' for i in range(5000)
    )
    assert len(big) > 2 * 1024 * 1024
    (tmp_path / "big.yml").write_text(big)
    report = lint(LintOptions(root=tmp_path, rules=["big.yml"]))
    assert (report.rules, report.findings) == (5000, [])
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{n}: &{n} [{','.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True)
    )
    (finding, *_) = lint_rules(tmp_path, {"bomb.yml": bomb}, "bomb.yml")
    assert (finding.kind, finding.file) == ("rule-file", "bomb.yml")
    assert "(YAML alias bomb?)" in finding.message


def test_double_star_globs_reach_nested_directories(tmp_path: Path) -> None:
    files = {"rules/top.yml": ALERT.format(duration="1m"), "rules/team/deep/nested.yml": ALERT.format(duration="2m")}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert lint(LintOptions(root=tmp_path, rules=["rules/*.yml"])).rule_files == 1
    assert lint(LintOptions(root=tmp_path, rules=["rules/**/*.yml"])).rule_files == 2
    assert [p.relative_to(tmp_path).as_posix() for p in rules.match_files(tmp_path, "rules/**/*.yml")] == [
        "rules/team/deep/nested.yml",
        "rules/top.yml",
    ]


# --- rules/inventory keyed by kind, name and labels -------------------------------------------------------------

PAIR = """
      - alert: APIDown
        expr: up{job="techno-os-api"} == 0
        for: 30s
        labels:
          severity: warning
        annotations:
          summary: "down"
          description: "down for 30s"
      - record: job:up:sum
        expr: sum by (job) (up)
"""


def _with_pair_inventory(root: Path, critical_for: str) -> None:
    api = root / "stack/prometheus/alerts/api.yml"
    api.write_text(api.read_text() + PAIR.lstrip("\n"))
    spec_path = root / "sprint/F9.11.yaml"  # the sprint that judges the rule files as they are now
    spec = yaml.safe_load(spec_path.read_text())
    for stage in spec["stages"]:
        for ref in stage["checks"]:
            if ref["id"] == "rules/inventory":
                ref["with"]["groups"]["api"] = [
                    {"record": "job:up:sum"},
                    {"alert": "APIDown", "severity": "warning", "for": "30s"},
                    {"alert": "APIDown", "severity": "critical", "for": critical_for},
                    {"alert": "APIHighErrorRate", "severity": "warning", "for": "5m"},
                ]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    commit_all(root, "a warning/critical pair and a recording rule")


def test_inventory_describes_a_warning_critical_pair_and_recording_rules(project_copy: Path) -> None:
    need_tool("promtool")
    _with_pair_inventory(project_copy, "1m")
    result = run_checks(project_copy, 1, ["rules/promtool-check", "rules/inventory"], sprint="F9.11")["rules/inventory"]
    assert result.status is Status.PASSED, explain(result)
    assert result.data["groups"]["api"] == ["APIDown", "APIDown", "APIHighErrorRate", "job:up:sum"]


def test_inventory_names_which_of_the_pair_differs(project_copy: Path) -> None:
    need_tool("promtool")
    _with_pair_inventory(project_copy, "2m")
    result = run_checks(project_copy, 1, ["rules/promtool-check", "rules/inventory"], sprint="F9.11")["rules/inventory"]
    assert result.status is Status.FAILED, explain(result)
    assert [f.summary for f in result.findings] == ["alert APIDown (severity critical) has `for` 60s, the spec says 2m"]


def test_without_a_metric_source_only_syntax_is_judged(tmp_path: Path) -> None:
    # A rule set holding recording rules is no source of metrics: a {__name__=~…} selector is not "unmatched".
    (tmp_path / "r.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - record: job:x:sum\n        expr: sum by (job) (x)\n"
        '      - alert: A\n        expr: count({__name__=~"pg_settings_.*"}) > 0 and app_typo_total > 0\n'
    )
    report = lint(LintOptions(root=tmp_path, rules=["r.yml"]))
    assert report.findings == []
    assert report.notes == ["no --metrics or --prometheus: metrics and labels were not judged, only syntax"]


# --- exporters' counters without `_total` ------------------------------------------------------------------------

EXPORTER = """\
# HELP pg_stat_database_xact_commit Number of transactions in this database that have been committed
# TYPE pg_stat_database_xact_commit counter
pg_stat_database_xact_commit{datid="1",datname="shop",server="db:5432"} 115
# TYPE pg_up gauge
pg_up 1
# TYPE declared_only counter
"""


def test_a_counter_written_without_total_keeps_its_name_as_prometheus_does() -> None:
    """The classic text format lets a counter's samples go without `_total` (postgres_exporter, mysqld_exporter…);
    prometheus_client's parser renames them `<name>_total`, Prometheus stores them as written."""
    from sealgate.analysis.parecer import Exposition

    exported = Exposition.parse(EXPORTER, "exporter")
    assert "pg_stat_database_xact_commit" in exported.names
    assert "pg_stat_database_xact_commit_total" not in exported.names
    assert exported.types["pg_stat_database_xact_commit"] == "counter"
    assert exported.labels["pg_stat_database_xact_commit"] == {"datid", "datname", "server"}
    assert exported.types["pg_up"] == "gauge"
    assert "declared_only_total" in exported.names  # declared with no sample: the usual suffixes stand
    # A counter the text does write with `_total` is unchanged.
    assert "app_requests_total" in Exposition.parse(EXPOSITION, "app").names


@pytest.mark.parametrize(
    ("expr", "kinds"),
    [
        ('rate(pg_stat_database_xact_commit{datname="shop"}[5m])', []),
        ("rate(pg_stat_database_xact_commit_total[5m])", ["metric-missing"]),  # the parser's name, not Prometheus'
        ('rate(pg_stat_database_xact_commit{database="shop"}[5m])', ["label-missing"]),
    ],
    ids=["as-written", "renamed", "wrong-label"],
)
def test_an_exporter_panel_is_judged_by_the_names_the_exporter_writes(
    tmp_path: Path, expr: str, kinds: list[str]
) -> None:
    (tmp_path / "board.json").write_text(json.dumps({"panels": [panel(expr)]}, indent=2))
    (tmp_path / "exporter.txt").write_text(EXPORTER)
    report = lint(LintOptions(root=tmp_path, dashboards=["board.json"], metrics=["exporter.txt"]))
    assert [f.kind for f in report.findings if f.severity == "error"] == kinds, report.findings

"""The parecer judges label *values*, as cloudflare/pint's promql/series does ("has the metric with the label but no
series matching {label="value"}"), and more: each case with a failing and a passing rule, against a real Prometheus
holding real series (prometheus_client expositions served on 127.0.0.1 and scraped every second, with node-exporter's,
cAdvisor's and the reference API's metric names and labels) and against the same expositions as files, through
`sealgate lint`'s options (some cases as a user runs it, in a subprocess). Also: a recording rule's output no rule
records, a cold exposition's families, ALERTS{alertname=…}, which selectors empty a query, several targets in a seal's
rules/metrics-exist (the live stack), and the findings' rule= and metric= (what a scoped waiver names)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from checkrun import explain, run_checks
from conftest import PROJECT_ROOT, commit_all
from parecer_fixtures import Exporter, scraping_prometheus
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sealgate.analysis import parecer, promql
from sealgate.cli import build_parser
from sealgate.kernel.errors import InputError
from sealgate.lint import LintOptions, lint
from sealgate.model.results import Status
from sealgate.run.plan import open_spec

API_JOB = "techno-os-api"  # the reference project's scrape job of its API (stack/prometheus/prometheus.yml)
API_RULES = "stack/prometheus/alerts/api.yml"
CPU_MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")  # node-exporter's, on Linux


@dataclass
class Live:
    prometheus: str
    files: dict[str, Path]  # job -> its exposition as a file, as scraped
    exporters: dict[str, Exporter]


def _api_registry() -> CollectorRegistry:
    """The reference API's HTTP metrics as it creates them at start (stack/app/http_metrics.py), plus a histogram
    family declared and never observed: what a labelled metric looks like before its first use."""
    registry = CollectorRegistry()
    requests_total = Counter(
        "http_requests_total", "HTTP requests answered", ["method", "route", "status"], registry=registry
    )
    requests_total.labels("POST", "/v1/complete", "200").inc(3)
    requests_total.labels("POST", "/v1/complete", "503")
    requests_total.labels("GET", "/healthz", "200").inc()
    Histogram("http_upload_seconds", "Upload time, by route", ["route"], registry=registry)  # cold: no child yet
    return registry


def _node_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    cpu = Counter("node_cpu_seconds_total", "Seconds the CPUs spent in each mode.", ["cpu", "mode"], registry=registry)
    for mode in CPU_MODES:
        cpu.labels("0", mode).inc(10)
    Gauge("node_load1", "1m load average.", registry=registry).set(0.5)
    return registry


def _cadvisor_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    memory = Gauge(
        "container_memory_usage_bytes", "Current memory usage in bytes", ["id", "image", "name"], registry=registry
    )
    memory.labels("/docker/abc", "techno-os-api:local", "api").set(52_000_000)
    return registry


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    registries = {API_JOB: _api_registry(), "node": _node_registry(), "cadvisor": _cadvisor_registry()}
    exporters = {job: Exporter(registry) for job, registry in registries.items()}
    files_dir = tmp_path_factory.mktemp("expositions")
    files = {}
    for job, registry in registries.items():
        files[job] = files_dir / f"{job}.txt"
        files[job].write_bytes(generate_latest(registry))
    try:
        others = {job: exporter for job, exporter in exporters.items() if job != API_JOB}
        with scraping_prometheus(tmp_path_factory.mktemp("prometheus"), exporters[API_JOB], API_JOB, others) as url:
            yield Live(url, files, exporters)
    finally:
        for exporter in exporters.values():
            exporter.close()


def sealgate_lint(cwd: Path, *args: str, cli: bool = False) -> tuple[int, list[dict[str, Any]], str]:
    """`sealgate lint ARGS --format json`: (exit code, findings, notes). `cli=True` runs it as a user does (the
    console script's module in a subprocess); otherwise the same options go, parsed by the CLI's own parser, to the
    library entry it calls (`sealgate.lint.lint`) in this process — the same judgement, without a Python start-up
    per case."""
    if cli:
        done = subprocess.run(
            [sys.executable, "-m", "sealgate.cli", "lint", *args, "--format", "json"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode in (0, 1), done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done.returncode, json.loads(done.stdout), done.stderr
    parsed = build_parser().parse_args(["lint", *args])
    report = lint(
        LintOptions(
            root=cwd,
            rules=parsed.rules,
            dashboards=parsed.dashboards,
            metrics=parsed.metrics,
            prometheus=parsed.prometheus,
            target_labels=sorted(parecer.TARGET_LABELS | set(parsed.target_label)),
        )
    )
    notes = "".join(f"note: {note}\n" for note in report.notes)
    return (1 if report.errors else 0), [finding.to_json() for finding in report.findings], notes


def rules_file(tmp_path: Path, expr: str, name: str = "A") -> Path:
    (tmp_path / "rules.yml").write_text(
        f"groups:\n  - name: g\n    rules:\n      - alert: {name}\n        expr: {json.dumps(expr)}\n"
    )
    return tmp_path / "rules.yml"


def against(live: Live, source: str, *jobs: str) -> list[str]:
    """The lint options for one source: `prometheus` (the live server alone) or `file` (the expositions of `jobs`
    as files, no Prometheus)."""
    if source == "prometheus":
        return ["--prometheus", live.prometheus]
    return ["--metrics", *(str(live.files[job]) for job in jobs)]


def where(live: Live, source: str, *jobs: str) -> str:
    return f"Prometheus ({live.prometheus})" if source == "prometheus" else ", ".join(str(live.files[j]) for j in jobs)


SOURCES = ["prometheus", "file"]


# --- the closest values, by edit distance ------------------------------------------------------------------------


def test_closest_values_come_nearest_first_ties_alphabetically_at_most_five() -> None:
    assert parecer.edit_distance("sytem", "system") == 1
    assert parecer.edit_distance("sytem", "steal") == 3
    assert parecer.closest("sytem", CPU_MODES) == ["system", "steal", "idle", "nice", "user"]
    assert [parecer.edit_distance("sytem", m) for m in parecer.closest("sytem", CPU_MODES)] == [1, 3, 4, 4, 4]
    assert parecer.closest("techno-os-apii", ["node", "cadvisor", "techno-os-api"]) == [
        "techno-os-api",
        "cadvisor",
        "node",
    ]


# --- an equality matcher on a value no series carries ---------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_an_equality_value_typo_names_the_values_that_exist(tmp_path: Path, live: Live, source: str) -> None:
    rules_file(tmp_path, 'sum(rate(node_cpu_seconds_total{mode="sytem"}[5m])) > 0.9', "CPUBusy")
    code, findings, _ = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, source, "node"), cli=True)
    assert code == 1
    assert [(f["kind"], f["severity"], f["line"]) for f in findings] == [("label-value-missing", "error", 5)]
    assert findings[0]["message"] == (
        'rule CPUBusy: node_cpu_seconds_total{mode="sytem"}: no series of node_cpu_seconds_total has mode="sytem" in '
        f'{where(live, source, "node")} (its mode values, closest first: "system", "steal", "idle", "nice", "user", '
        "… 8 in all), so the selector matches nothing — alert CPUBusy can never fire"
    )
    rules_file(tmp_path, 'sum(rate(node_cpu_seconds_total{mode="system"}[5m])) > 0.9', "CPUBusy")
    assert sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, source, "node"))[:2] == (0, [])


# --- a regex that matches no value --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_a_regex_matching_no_value_names_the_values_that_exist(tmp_path: Path, live: Live, source: str) -> None:
    ratio = 'sum(rate(http_requests_total{{status=~"{}"}}[5m])) / sum(rate(http_requests_total[5m])) > 0.05'
    rules_file(tmp_path, ratio.format("4.."), "APIClientErrors")
    code, findings, _ = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, source, API_JOB))
    assert code == 1
    (finding,) = findings
    assert (finding["kind"], finding["severity"]) == ("label-value-missing", "error")
    assert finding["message"] == (
        'rule APIClientErrors: http_requests_total{status=~"4.."}: no status value of http_requests_total matches '
        f'"4.." in {where(live, source, API_JOB)} (its status values, closest first: "200", "503"), so the selector '
        "matches nothing — alert APIClientErrors can never fire"
    )
    rules_file(tmp_path, ratio.format("5.."), "APIClientErrors")
    assert sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, source, API_JOB))[:2] == (0, [])


# --- absent() over a value no series carries: always fires -----------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_absent_of_a_value_no_series_carries_always_fires(tmp_path: Path, live: Live, source: str) -> None:
    rules_file(tmp_path, 'absent(node_cpu_seconds_total{mode="sytem"})', "NoSystemCPU")
    code, findings, _ = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, source, "node"))
    assert code == 0  # a warning, as absent() of a metric that exists nowhere: the value may exist where it runs
    (finding,) = findings
    assert (finding["kind"], finding["severity"]) == ("absent-always-true", "warning")
    assert finding["message"].startswith(
        'rule NoSystemCPU: absent() of node_cpu_seconds_total{mode="sytem"} is always true: no series of '
        'node_cpu_seconds_total has mode="sytem" in '
    )
    assert finding["message"].endswith("— alert NoSystemCPU always fires")
    rules_file(tmp_path, 'absent(node_cpu_seconds_total{mode="system"})', "NoSystemCPU")
    assert sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, source, "node"))[:2] == (0, [])


# --- a value typo in a job matcher: the reference project's APIDown -------------------------------------------------


def _reference_api_rules(root: Path, job: str) -> int:
    """A copy of the reference project's api.yml (APIDown reads `up{job="techno-os-api"}`) with APIDown's job
    replaced; the line of its expression."""
    text = (PROJECT_ROOT / API_RULES).read_text()
    needle = f'up{{job="{API_JOB}"}}'
    assert needle in text
    (root / "api.yml").write_text(text.replace(needle, f'up{{job="{job}"}}'))
    return text[: text.index(needle)].count("\n") + 1


def test_a_job_value_typo_in_apidown_is_caught_against_prometheus(tmp_path: Path, live: Live) -> None:
    line = _reference_api_rules(tmp_path, "techno-os-apii")
    code, findings, _ = sealgate_lint(tmp_path, "--rules", "api.yml", "--prometheus", live.prometheus)
    assert code == 1
    assert [(f["kind"], f["severity"], f["line"]) for f in findings] == [("label-value-missing", "error", line)]
    assert findings[0]["message"] == (
        'rule APIDown: up{job="techno-os-apii"}: no series of up has job="techno-os-apii" in Prometheus '
        f'({live.prometheus}) (its job values, closest first: "techno-os-api", "cadvisor", "node"), so the selector '
        "matches nothing — alert APIDown can never fire"
    )
    # With the API's exposition too: `job` is still judged against Prometheus alone, the rest against both.
    both = sealgate_lint(
        tmp_path, "--rules", "api.yml", "--metrics", str(live.files[API_JOB]), "--prometheus", live.prometheus
    )
    assert [(f["kind"], f["line"]) for f in both[1]] == [("label-value-missing", line)]
    _reference_api_rules(tmp_path, API_JOB)
    assert sealgate_lint(tmp_path, "--rules", "api.yml", "--prometheus", live.prometheus)[:2] == (0, [])


def test_a_job_value_is_not_judged_against_an_exposition_file(tmp_path: Path, live: Live) -> None:
    """An exposition never carries `job` (Prometheus adds it at scrape time): against a file alone the typo cannot
    be seen, and lint says so instead of passing it silently or inventing a finding."""
    _reference_api_rules(tmp_path, "techno-os-apii")
    code, findings, stderr = sealgate_lint(
        tmp_path, "--rules", "api.yml", "--metrics", str(live.files[API_JOB]), cli=True
    )
    assert (code, findings) == (0, [])
    assert (
        "note: the values of job matchers were not judged: Prometheus adds those labels at scrape time, so only "
        "--prometheus knows them"
    ) in stderr


def test_a_scrape_time_label_given_with_target_label_is_judged_only_against_prometheus(
    tmp_path: Path, live: Live
) -> None:
    # `code` is a label of no sample here; declared a target label, an exposition is never asked about it.
    rules_file(tmp_path, 'sum(rate(http_requests_total{code="500"}[5m])) > 1')
    options = ["--rules", "rules.yml", "--metrics", str(live.files[API_JOB])]
    assert [f["kind"] for f in sealgate_lint(tmp_path, *options)[1]] == ["label-missing"]
    code, findings, stderr = sealgate_lint(tmp_path, *options, "--target-label", "code")
    assert (code, findings) == (0, [])
    assert "the values of code matchers were not judged" in stderr


# --- what the value judgement leaves alone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        'node_load1 > 1 unless on () node_cpu_seconds_total{mode="maintenance"}',  # `unless`: present only at times
        'rate(node_cpu_seconds_total{mode!="sytem"}[5m]) > 0',  # != and !~ also match what is not there
        'rate(node_cpu_seconds_total{mode=~"sys.*|"}[5m]) > 0',  # matches series without the label too
        'rate(node_cpu_seconds_total{mode=~"(?i)SYSTEM"}[5m]) > 0',  # a regex accepting an existing value
    ],
    ids=["unless", "negative", "matches-empty", "regex-flags"],
)
def test_selectors_that_may_match_nothing_are_not_findings(tmp_path: Path, live: Live, expr: str) -> None:
    rules_file(tmp_path, expr)
    assert sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, "file", "node"))[:2] == (0, [])


def test_a_bad_value_left_of_or_vector_always_falls_back(tmp_path: Path, live: Live) -> None:
    rules_file(tmp_path, '(sum(rate(node_cpu_seconds_total{mode="sytem"}[5m])) or vector(0)) > 1')
    code, findings, _ = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, "file", "node"))
    assert code == 0
    assert [(f["kind"], f["severity"]) for f in findings] == [("fallback-always", "warning")]
    assert "matches nothing, so the query always falls back: no series of" in findings[0]["message"]


def test_a_selector_the_query_does_not_need_is_named_without_never_fires(tmp_path: Path, live: Live) -> None:
    rules_file(tmp_path, 'rate(node_cpu_seconds_total{mode="sytem"}[5m]) > 1 or node_load1 > 4')
    (finding,) = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, "file", "node"))[1]
    assert finding["kind"] == "label-value-missing"
    assert finding["message"].endswith("so the selector matches nothing")  # the other side can still fire


# --- several expositions: node-exporter's and cAdvisor's beside the application's ---------------------------------


def test_a_rule_reading_node_exporter_and_cadvisor_is_judged_against_both(tmp_path: Path, live: Live) -> None:
    expr = (
        'container_memory_usage_bytes{name="api"} > 1e9 and on () '
        'sum(rate(node_cpu_seconds_total{mode="system"}[5m])) > 0.9'
    )
    rules_file(tmp_path, expr)
    alone = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, "file", "node"))[1]
    assert [f["kind"] for f in alone] == ["metric-missing"]
    assert sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, "file", "node", "cadvisor"))[:2] == (0, [])
    rules_file(tmp_path, expr.replace('name="api"', 'name="apu"'))
    (finding,) = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, "file", "node", "cadvisor"))[1]
    assert finding["kind"] == "label-value-missing" and '(its name values, closest first: "api")' in finding["message"]


def test_a_panel_query_is_judged_by_the_same_values(tmp_path: Path, live: Live) -> None:
    """Dashboards go through the same judgement (`dashboard/queries-metrics` in a seal, `--dashboards` in lint)."""
    panel = {"title": "CPU", "targets": [{"refId": "A", "expr": 'rate(node_cpu_seconds_total{mode="sytem"}[5m])'}]}
    (tmp_path / "board.json").write_text(json.dumps({"panels": [panel]}, indent=2))
    code, findings, _ = sealgate_lint(tmp_path, "--dashboards", "board.json", *against(live, "prometheus"))
    assert code == 1
    assert [(f["check"], f["kind"], f["json_path"]) for f in findings] == [
        ("dashboard/queries-metrics", "label-value-missing", "$.panels[0].targets[0].expr")
    ]
    assert findings[0]["message"].startswith("panel 'CPU' (A): node_cpu_seconds_total{mode=\"sytem\"}: no series of")
    panel["targets"][0]["expr"] = 'rate(node_cpu_seconds_total{mode="system"}[5m])'
    (tmp_path / "board.json").write_text(json.dumps({"panels": [panel]}, indent=2))
    assert sealgate_lint(tmp_path, "--dashboards", "board.json", *against(live, "prometheus"))[:2] == (0, [])


# --- a recording rule's output that no rule records ----------------------------------------------------------------

RECORDED = """\
groups:
  - name: recorded
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - alert: TrafficGone
        expr: {reader} == 0
"""


@pytest.mark.parametrize("source", SOURCES)
def test_a_series_named_like_a_recording_no_rule_records_names_the_closest(
    tmp_path: Path, live: Live, source: str
) -> None:
    (tmp_path / "rules.yml").write_text(RECORDED.format(reader="job:http_request:rate5m"))
    code, findings, _ = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, source, API_JOB))
    assert code == 1
    (finding,) = findings
    assert (finding["kind"], finding["line"]) == ("recorded-series-unknown", 7)
    assert finding["message"].startswith(
        "rule TrafficGone: job:http_request:rate5m is named like a recording rule's output, but no rule of the rule "
        "set records it (the closest recorded series is job:http_requests:rate5m)"
    )
    assert "not exported" not in finding["message"]  # not the application's to export
    (tmp_path / "rules.yml").write_text(RECORDED.format(reader="job:http_requests:rate5m"))
    assert sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, source, API_JOB))[:2] == (0, [])


TEAM_RECORDING = """\
groups:
  - name: recorded
    rules:
      - record: team:http_requests:rate5m
        expr: sum(rate(http_requests_total{{status="{status}"}}[5m]))
        labels:
          team: platform
      - alert: PlatformErrors
        expr: team:http_requests:rate5m{{team="{team}"}} > 1
"""


def test_values_a_recording_rule_sets_and_a_recording_that_records_nothing(tmp_path: Path, live: Live) -> None:
    """A recorded series Prometheus never evaluated: a label its rules set themselves (`labels:`) has exactly those
    values; a recording whose own selector matches nothing records nothing."""
    (tmp_path / "rules.yml").write_text(TEAM_RECORDING.format(status="503", team="platfrom"))
    (finding,) = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, "file", API_JOB))[1]
    assert (finding["kind"], finding["line"]) == ("label-value-missing", 9)
    assert finding["message"] == (
        'rule PlatformErrors: team:http_requests:rate5m{team="platfrom"}: no series of team:http_requests:rate5m has '
        'team="platfrom" in its recording rule (rules.yml:4) (its team values, closest first: "platform"), so the '
        "selector matches nothing — alert PlatformErrors can never fire"
    )
    (tmp_path / "rules.yml").write_text(TEAM_RECORDING.format(status="530", team="platform"))
    (finding,) = sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, "file", API_JOB))[1]
    assert (finding["kind"], finding["line"]) == ("label-value-missing", 5)
    assert finding["message"].endswith(
        "so the selector matches nothing — rule team:http_requests:rate5m records nothing"
    )
    (tmp_path / "rules.yml").write_text(TEAM_RECORDING.format(status="503", team="platform"))
    assert sealgate_lint(tmp_path, "--rules", "rules.yml", *against(live, "file", API_JOB))[:2] == (0, [])


# --- a family declared with no sample yet (a cold exposition) ------------------------------------------------------


@pytest.mark.parametrize("source", ["file", "file+prometheus"])
def test_a_family_with_no_sample_yet_is_cold_not_missing(tmp_path: Path, live: Live, source: str) -> None:
    options = [*against(live, "file", API_JOB)] + (["--prometheus", live.prometheus] if "+" in source else [])
    rules_file(tmp_path, "histogram_quantile(0.9, sum by (le) (rate(http_upload_seconds_bucket[5m]))) > 5")
    code, findings, _ = sealgate_lint(tmp_path, "--rules", "rules.yml", *options)
    assert code == 0  # a warning: the code does export it; its series appear on first use
    (finding,) = findings
    assert (finding["kind"], finding["severity"]) == ("metric-cold", "warning")
    assert finding["message"].startswith(
        f"rule A: metric http_upload_seconds_bucket has no sample yet in {live.files[API_JOB]}: its family is "
        "declared (HELP/TYPE) but no series exists until its first use"
    )
    assert "not exported" not in finding["message"] and "is it scraped" not in finding["message"]
    rules_file(tmp_path, "histogram_quantile(0.9, sum by (le) (rate(http_upload_seconds_bucket[5m]))) > 5 or vector(0)")
    assert sealgate_lint(tmp_path, "--rules", "rules.yml", *options)[:2] == (0, [])  # a fallback expects it


# --- ALERTS{alertname=…} needs an alerting rule of that name ----------------------------------------------------


def test_alerts_series_of_an_alert_no_rule_defines(tmp_path: Path, live: Live) -> None:
    text = (PROJECT_ROOT / API_RULES).read_text() + textwrap.indent(
        '- alert: APIPaged\n  expr: ALERTS{alertname="APIDwn", alertstate="firing"} == 1\n', " " * 6
    )
    (tmp_path / "api.yml").write_text(text)
    code, findings, _ = sealgate_lint(tmp_path, "--rules", "api.yml", "--prometheus", live.prometheus)
    assert code == 1
    (finding,) = findings
    assert finding["kind"] == "alert-unknown"
    assert finding["message"] == (
        'rule APIPaged: ALERTS{alertname="APIDwn", alertstate="firing"}: no alerting rule of the rule set is named '
        '"APIDwn" (closest: "APIDown", "APIPaged", "APIHighErrorRate"), so the selector matches nothing — alert '
        "APIPaged can never fire"
    )
    (tmp_path / "api.yml").write_text(text.replace("APIDwn", "APIDown"))
    assert sealgate_lint(tmp_path, "--rules", "api.yml", "--prometheus", live.prometheus)[:2] == (0, [])


# --- which selectors empty a query (promql.analyse) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "empties"),
    [
        ("a / b > 0.05", {"a": True, "b": True}),
        ("a or b", {"a": False, "b": False}),
        ("a unless b", {"a": True, "b": False}),
        ("sum(rate(a[5m])) or vector(0)", {"a": False}),
        ("topk(scalar(k), a)", {"k": False, "a": True}),
        ("absent(a) and b", {"a": False, "b": True}),
        ("histogram_quantile(0.9, sum by (le) (rate(a[5m])))", {"a": True}),
    ],
)
def test_which_selectors_empty_the_query(expr: str, empties: dict[str, bool]) -> None:
    assert {str(u.ref): u.empties_query for u in promql.analyse(expr).uses} == empties


@pytest.mark.parametrize(
    ("expr", "answers"),
    [
        ("absent(a)", True),
        ("(absent(a)) or b", True),
        ("absent(rate(a[5m]))", True),
        ("absent(a) and b", False),
        ("sum(absent(a))", False),
    ],
)
def test_an_absent_whose_answer_is_the_querys(expr: str, answers: bool) -> None:
    assert promql.analyse(expr).uses[0].absent_answers is answers


# --- output formats carry the new kinds ---------------------------------------------------------------------------


def test_text_and_sarif_carry_the_new_kinds(tmp_path: Path, live: Live) -> None:
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n"
        '      - alert: A\n        expr: rate(node_cpu_seconds_total{mode="sytem"}[5m]) > 1\n'
        "      - alert: B\n        expr: job:nothing:rate5m > 1\n"
    )
    lint = [sys.executable, "-m", "sealgate.cli", "lint", "--rules", "rules.yml", "--metrics", str(live.files["node"])]
    sarif = subprocess.run([*lint, "--format", "sarif"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert sarif.returncode == 1, sarif.stderr
    driver = json.loads(sarif.stdout)["runs"][0]["tool"]["driver"]
    described = {rule["id"]: rule["shortDescription"]["text"] for rule in driver["rules"]}
    assert described == {kind: parecer.KINDS[kind] for kind in ("label-value-missing", "recorded-series-unknown")}
    text = subprocess.run(lint, cwd=tmp_path, capture_output=True, text=True, timeout=120).stdout
    assert re.search(r"^rules\.yml:5: error: .* \[rules/metrics-exist label-value-missing\]$", text, re.MULTILINE)
    assert re.search(r"^rules\.yml:7: error: .* \[rules/metrics-exist recorded-series-unknown\]$", text, re.MULTILINE)


def test_the_readme_lists_every_kind() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("## The parecer") : readme.index("## The alert drill")]
    assert [kind for kind in parecer.KINDS if f"`{kind}`" not in section] == []


# --- a seal: several targets, by name and by role; rule= and metric= on findings ------------------------------

PG_RULE = """
      - alert: PostgresDown
        expr: pg_up == 0 and on () llm_circuit_breaker_state >= 0
        for: 1m
        labels:
          severity: critical
        annotations:
          summary: "PostgreSQL down"
          description: "postgres_exporter cannot reach PostgreSQL."
"""
METRICS_EXIST = "      - id: rules/metrics-exist\n"


def _metrics_exist_with(root: Path, params: str) -> int:
    """F9.11's rules/metrics-exist with `params` (YAML under `with:`) instead of what it has; the line of `with:`."""
    spec = root / "sprint/F9.11.yaml"
    text = spec.read_text()
    at = text.index("        with:\n", text.index(METRICS_EXIST))
    end = text.index("      - id: ", at)
    spec.write_text(text[:at] + "        with:\n" + textwrap.indent(params, " " * 10) + text[end:])
    commit_all(root, f"rules/metrics-exist with {params.strip()}")
    return text[:at].count("\n") + 1


@pytest.mark.stack
def test_metrics_exist_takes_several_targets_by_name_and_by_role(project_copy: Path, local_stack: Any) -> None:
    api_rules = project_copy / API_RULES
    api_rules.write_text(api_rules.read_text() + PG_RULE.lstrip("\n"))
    commit_all(project_copy, "a rule reading the API's and postgres_exporter's metrics")

    def metrics_exist() -> Any:
        checks = ["rules/promtool-check", "rules/metrics-exist"]
        return run_checks(project_copy, 1, checks, stack=local_stack, sprint="F9.11")["rules/metrics-exist"]

    # `target: api` (as F9.10 sealed it, and F9.11 says): pg_up is not the API's.
    one = metrics_exist()
    assert one.status is Status.FAILED, explain(one)
    (finding,) = one.findings
    assert finding.summary.startswith("rule PostgresDown: metric pg_up is not exported by api (GET http://127.0.0.1:")
    assert (finding.rule, finding.metric) == ("PostgresDown", "pg_up")  # what a scoped waiver names
    assert one.data["metrics_url"].endswith("/metrics") and list(one.data["metrics_urls"]) == ["api"]

    _metrics_exist_with(project_copy, "targets: [api, postgres-exporter]\n")
    by_name = metrics_exist()
    assert by_name.status is Status.PASSED, explain(by_name)
    assert list(by_name.data["metrics_urls"]) == ["api", "postgres-exporter"]
    assert "metrics_url" not in by_name.data

    _metrics_exist_with(project_copy, "targets: [target]\n")  # a role: every scraped service the stack describes
    by_role = metrics_exist()
    assert by_role.status is Status.PASSED, explain(by_role)
    assert list(by_role.data["metrics_urls"]) == ["api", "postgres-exporter"]

    line = _metrics_exist_with(project_copy, "targets: [api, node-exporter]\n")
    unknown = metrics_exist()
    assert unknown.status is Status.ERRORED
    assert unknown.reason.startswith(
        f"sprint/F9.11.yaml:{line + 1}: with.targets[1]: no service and no role 'node-exporter' in stack/stack.yaml"
    ), unknown.reason


@pytest.mark.stack
def test_a_job_value_typo_fails_the_seals_check_with_rule_and_metric(project_copy: Path, local_stack: Any) -> None:
    text = (project_copy / API_RULES).read_text()
    (project_copy / API_RULES).write_text(text.replace(f'up{{job="{API_JOB}"}}', 'up{job="techno-os-apii"}'))
    commit_all(project_copy, "APIDown on a misspelt job")
    checks = ["rules/promtool-check", "rules/metrics-exist"]
    result = run_checks(project_copy, 1, checks, stack=local_stack, sprint="F9.11")["rules/metrics-exist"]
    assert result.status is Status.FAILED, explain(result)
    (finding,) = result.findings
    assert (finding.rule, finding.metric, finding.location.file) == ("APIDown", "up", API_RULES)
    assert finding.summary.startswith(
        'rule APIDown: up{job="techno-os-apii"}: no series of up has job="techno-os-apii" in Prometheus (http://'
    )
    assert '(its job values, closest first: "techno-os-api", "postgres")' in finding.summary
    assert finding.summary.endswith("— alert APIDown can never fire")


@pytest.mark.parametrize(
    "params", ["target: api\ntargets: [api]\n", "targets: [api]\nmetrics_path: /metrics\n"], ids=["both", "path"]
)
def test_targets_with_target_or_a_metrics_path_is_refused_at_the_specs_line(project_copy: Path, params: str) -> None:
    """`metrics_path` belongs to the one `target:`; with `targets:` each service is read at its described path."""
    line = _metrics_exist_with(project_copy, params)
    with pytest.raises(InputError) as raised:
        open_spec(project_copy, "F9.11")
    (problem,) = [str(p) for p in raised.value.problems]
    assert problem.startswith(f"sprint/F9.11.yaml:{line}: $.stages[1].checks[3].with: "), problem
    assert "should not be valid under {'required': [" in problem

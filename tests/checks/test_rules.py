"""rules/* checks: promtool, inventory, routing and Alertmanager config on the reference files and on broken copies
(failing at the right file:line); metrics-exist and loaded-live against the live stacks; the alert drill once per
backend (slow: real `for` durations).

The rule files are judged as the current sprint's spec places the checks (F9.11's EIXO 1: six rules, APIHighErrorRate
restored); routing, the Alertmanager config and the drill as F9.10's EIXO 2 does (F9.11 adds no such check here). The
drill's prerequisite loaded-live counts the rules loaded now (see `f9_10_drill_on_todays_rules`)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from checkrun import run_checks
from conftest import commit_all, need_tool
from parecer_fixtures import MISSPELT_RULE

from sealgate.analysis import promql
from sealgate.api.context import RunOptions
from sealgate.kernel.errors import InputError
from sealgate.model.results import Severity, Status
from sealgate.run.plan import open_spec

API_RULES = "stack/prometheus/alerts/api.yml"
LLM_RULES = "stack/prometheus/alerts/llm.yml"
AM_CONFIG = "stack/prometheus/alertmanager.yml"
# The console-mode Alertmanager configuration sprint F9.10 sealed (F9.11 pages on-call for critical alerts): the
# rules checks as F9.10's spec runs them judge it, so these tests write it into each project copy.
F9_10_ALERTMANAGER = """\
# Alertmanager for the F9.10 stack: console mode only (human-in-the-loop). Every route ends at the console-log
# service, which prints each alert as one line on its stdout. No external webhooks (Slack/PagerDuty are F9.11+).
#
# The severity routes use receivers named after console-log so `amtool config routes test` can prove where a
# critical or a warning alert goes; all three deliver to the same sink.
global:
  resolve_timeout: 5m

route:
  receiver: console-log
  group_by: ['alertname', 'severity']
  # Short waits so a drill sees its alert (and its resolution) within seconds, not minutes.
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: console-log-critical
    - matchers: ['severity="warning"']
      receiver: console-log-warning

receivers:
  - name: console-log
    webhook_configs:
      - url: 'http://console-log:5001/alerts'
        send_resolved: true
  - name: console-log-critical
    webhook_configs:
      - url: 'http://console-log:5001/alerts'
        send_resolved: true
  - name: console-log-warning
    webhook_configs:
      - url: 'http://console-log:5001/alerts'
        send_resolved: true
"""


@pytest.fixture
def project_copy(project_copy: Path) -> Path:
    """This project's copy with F9.10's console-mode Alertmanager configuration, committed."""
    (project_copy / AM_CONFIG).write_text(F9_10_ALERTMANAGER)
    commit_all(project_copy, "F9.10's console-mode Alertmanager")
    return project_copy


RULE_TESTS = "stack/prometheus/tests/alerts_test.yml"

RULES_SPRINT, RULES_EIXO = "F9.11", 1  # the sprint whose spec judges the rule files as they are now


def append(root: Path, relative: str, text: str) -> int:
    """Append to a file of the copy, commit; return the 1-based line where the appended text starts."""
    path = root / relative
    before = path.read_text()
    if not before.endswith("\n"):
        before += "\n"
    path.write_text(before + text.lstrip("\n"))
    commit_all(root, f"append to {relative}")
    return before.count("\n") + 1


def edit(root: Path, relative: str, old: str, new: str) -> int:
    path = root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1))
    commit_all(root, f"edit {relative}")
    return line


def line_of(root: Path, relative: str, needle: str) -> int:
    text = (root / relative).read_text()
    return text[: text.index(needle)].count("\n") + 1


def errors(result) -> list:
    return [f for f in result.findings if f.severity is Severity.ERROR]


def rules_checks(root: Path, ids: list[str], **kwargs) -> dict:
    """The rules checks as the current sprint places them (F9.11's EIXO 1)."""
    return run_checks(root, RULES_EIXO, ids, sprint=RULES_SPRINT, **kwargs)


def f9_10_drill_on_todays_rules(root: Path) -> None:
    """F9.10's EIXO 2 drives the alert drill, whose prerequisite loaded-live expects the 5 rules F9.10 sealed; the
    stack loads 6 since F9.11 restored APIHighErrorRate. The drill tests are about the drill: the copy's F9.10 spec
    counts today's rules."""
    edit(root, "sprint/F9.10.yaml", "rule_count: 5", "rule_count: 6")


# --- the PromQL helpers (analysis/promql.py) -------------------------------------------------------------------------


def test_metric_names_come_from_the_parser_not_a_regex() -> None:
    expr = (
        'sum by (job, le) (rate(llm_request_latency_seconds_bucket{provider="sim"}[5m])) '
        '/ on (job) group_left label_replace(up{job="x"}, "rate", "$1", "job", "(.*)") '
        'and {__name__="llm_errors_total", error_type="sum"} unless absent(llm_tokens_total)'
    )
    assert promql.metric_names(expr) == {
        "llm_request_latency_seconds_bucket",
        "up",
        "llm_errors_total",
        "llm_tokens_total",
    }
    refs = promql.selectors('{__name__=~"llm_.*_total"}')
    assert refs == [promql.MetricRef(None, "llm_.*_total")]
    assert promql.missing_patterns(refs, {"llm_errors_total"}) == []
    with pytest.raises(promql.PromQLError):
        promql.metric_names("rate(llm_errors_total[5m)")


# --- static checks on the reference files -------------------------------------------------------------------------

STATIC = [
    "rules/promtool-check",
    "rules/promtool-test",
    "rules/inventory",
    "rules/alertmanager-config",
    "rules/routing",
]


def test_static_checks_pass_on_the_reference_rules(project_copy: Path) -> None:
    need_tool("promtool", "amtool")
    results = rules_checks(project_copy, STATIC[:3])
    results.update(run_checks(project_copy, 2, STATIC[3:]))  # routing: F9.10's EIXO 2
    for check_id in STATIC:
        assert results[check_id].status is Status.PASSED, (check_id, results[check_id].reason)
    assert results["rules/promtool-check"].data["rule_files_loaded"] == [API_RULES, LLM_RULES]
    assert results["rules/inventory"].data["rule_count"] == 6
    assert results["rules/inventory"].data["group_count"] == 2
    routing = results["rules/routing"]
    assert routing.data["verified_routes"] == {
        "severity=critical": "console-log-critical",
        "severity=warning": "console-log-warning",
    }
    assert routing.data["unhandled_label_sets"] == ["severity=info"]  # reported, not failed
    junit = project_copy / "artifacts" / "f9_11" / "eixo_1" / "promtool-junit.xml"
    suites = ET.parse(junit).getroot().findall("testsuite")
    assert suites and all(suite.get("failures") == "0" for suite in suites)
    cases = sum(len(suite.findall("testcase")) for suite in suites)
    assert cases == results["rules/promtool-test"].data["tests"] >= 8 + 5  # F9.10's and APIHighErrorRate's


# --- rules/promtool-check -----------------------------------------------------------------------------------------


def test_promql_syntax_error_fails_at_its_line(project_copy: Path) -> None:
    need_tool("promtool")
    line = edit(project_copy, LLM_RULES, "expr: llm_circuit_breaker_state >= 1", "expr: llm_circuit_breaker_state >=")
    result = run_checks(project_copy, 2, ["rules/promtool-check"])["rules/promtool-check"]
    assert result.status is Status.FAILED
    finding = errors(result)[0]
    assert (finding.location.file, finding.location.line) == (LLM_RULES, line)
    assert 'group "llm", rule 3, "CircuitBreakerOpen": could not parse expression' in finding.summary


def test_rule_file_not_loaded_by_the_container_fails(project_copy: Path) -> None:
    need_tool("promtool")
    line = edit(project_copy, "stack/prometheus/prometheus.yml", "/etc/prometheus/alerts/*.yml", "/rules/*.yml")
    result = run_checks(project_copy, 2, ["rules/promtool-check"])["rules/promtool-check"]
    assert result.status is Status.FAILED
    first = errors(result)[0]
    assert (first.location.file, first.location.line) == ("stack/prometheus/prometheus.yml", line)
    assert "rule_files entry '/rules/*.yml' is under no bind mount of service prometheus" in first.summary
    assert any(f"{API_RULES} is not loaded" in f.summary for f in errors(result))


def test_an_alert_whose_range_holds_one_sample_at_most_can_never_fire(project_copy: Path) -> None:
    """increase() over 20 s when Prometheus scrapes every 15 s: one sample at most in the range, so the expression is
    always empty, the rule is never pending and its `for` never matures — promtool accepts it, the check does not."""
    need_tool("promtool")
    old = 'increase(llm_errors_total{error_type="provider_unavailable"}[5m])'
    line = edit(project_copy, LLM_RULES, old, old.replace("[5m]", "[20s]"))
    result = run_checks(project_copy, 2, ["rules/promtool-check"])["rules/promtool-check"]
    assert result.status is Status.FAILED, result.reason
    (finding,) = errors(result)
    assert (finding.location.file, finding.location.line, finding.rule) == (LLM_RULES, line - 1, "LLMProviderDown")
    assert finding.summary.startswith(
        'rule LLMProviderDown: increase(llm_errors_total{error_type="provider_unavailable"}[20s]) spans less than two '
        "scrape intervals (2 × 15s, the shortest this Prometheus scrapes at): it holds one sample at most, so it is "
        "always empty and the rule can never fire"
    ), finding.summary


# --- rules/promtool-test ------------------------------------------------------------------------------------------


def test_failing_rule_unit_test_fails_with_junit(project_copy: Path) -> None:
    need_tool("promtool")
    test_line = line_of(project_copy, RULE_TESTS, "- name: APIDown fires")
    edit(project_copy, API_RULES, "for: 1m", "for: 3m")
    result = run_checks(project_copy, 2, ["rules/promtool-test"])["rules/promtool-test"]
    assert result.status is Status.FAILED
    finding = errors(result)[0]
    assert (finding.location.file, finding.location.line) == (RULE_TESTS, test_line)
    assert "promtool test 'APIDown fires after the API is unreachable for 1m" in finding.summary
    suite = ET.parse(project_copy / "artifacts/f9_10/eixo_2/promtool-junit.xml").getroot().find("testsuite")
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert failed == ["APIDown fires after the API is unreachable for 1m, not before, and not while it is up"]


# --- rules/inventory ----------------------------------------------------------------------------------------------


def test_extra_rule_fails_and_removed_rule_must_stay_removed(project_copy: Path) -> None:
    need_tool("promtool")
    # F9.10's claim (APIHighErrorRate removed) made against today's rule files, where F9.11 restored it.
    edit(
        project_copy,
        "sprint/F9.11.yaml",
        "              - {alert: APIHighErrorRate, severity: warning, for: 5m}\n          annotations: [summary, description]",
        "          annotations: [summary, description]\n          removed: [APIHighErrorRate]",
    )
    line = line_of(project_copy, API_RULES, "- alert: APIHighErrorRate")
    result = rules_checks(project_copy, ["rules/promtool-check", "rules/inventory"])["rules/inventory"]
    assert result.status is Status.FAILED
    summaries = {str(f) for f in errors(result)}
    assert f"{API_RULES}:{line}: alert rule APIHighErrorRate (group api) is not in the spec's inventory" in summaries
    assert (
        f"{API_RULES}:{line}: alert APIHighErrorRate must stay removed (the spec's technical decisions), but it is "
        "defined" in summaries
    )


def test_changed_for_severity_and_missing_annotation_fail(project_copy: Path) -> None:
    need_tool("promtool")
    edit(project_copy, LLM_RULES, "for: 30s", "for: 15s")
    edit(project_copy, LLM_RULES, "severity: warning", "severity: info")
    edit(project_copy, API_RULES, '          summary: "techno-os-api down on {{ $labels.instance }}"\n', "")
    result = rules_checks(project_copy, ["rules/promtool-check", "rules/inventory"])["rules/inventory"]
    assert result.status is Status.FAILED
    summaries = [str(f) for f in errors(result)]
    provider_down = line_of(project_copy, LLM_RULES, "- alert: LLMProviderDown")
    latency = line_of(project_copy, LLM_RULES, "- alert: LLMHighLatency")
    api_down = line_of(project_copy, API_RULES, "- alert: APIDown")
    assert f"{LLM_RULES}:{provider_down}: alert LLMProviderDown has `for` 15s, the spec says 30s" in summaries
    assert f"{LLM_RULES}:{latency}: alert LLMHighLatency has severity 'info', the spec says 'warning'" in summaries
    assert f"{API_RULES}:{api_down}: alert APIDown has no 'summary' annotation" in summaries


def test_an_alert_the_spec_says_carries_no_severity_passes_only_without_one(project_copy: Path) -> None:
    """`severity: null` is a claim too: a rule that carries a severity breaks it, one that carries none keeps it."""
    need_tool("promtool")
    edit(
        project_copy,
        "sprint/F9.11.yaml",
        "{alert: LLMHighLatency, severity: warning, for: 2m}",
        "{alert: LLMHighLatency, severity: null, for: 2m}",
    )
    latency = line_of(project_copy, LLM_RULES, "- alert: LLMHighLatency")
    result = rules_checks(project_copy, ["rules/promtool-check", "rules/inventory"])["rules/inventory"]
    assert result.status is Status.FAILED
    assert [str(f) for f in errors(result)] == [
        f"{LLM_RULES}:{latency}: alert LLMHighLatency has severity 'warning', the spec says it carries none"
    ]
    edit(
        project_copy, LLM_RULES, "        for: 2m\n        labels:\n          severity: warning\n", "        for: 2m\n"
    )
    result = rules_checks(project_copy, ["rules/promtool-check", "rules/inventory"])["rules/inventory"]
    assert result.status is Status.PASSED, [str(f) for f in result.findings]


def test_missing_rule_fails_pointing_at_the_spec(project_copy: Path) -> None:
    need_tool("promtool")
    text = (project_copy / LLM_RULES).read_text()
    start = text.index("      - alert: LLMHighLatency")
    end = text.index("      - alert: LLMErrorRateHigh")
    (project_copy / LLM_RULES).write_text(text[:start] + text[end:])
    commit_all(project_copy, "drop a rule")
    result = rules_checks(project_copy, ["rules/promtool-check", "rules/inventory"])["rules/inventory"]
    assert result.status is Status.FAILED
    (finding,) = errors(result)
    assert finding.location.file == "sprint/F9.11.yaml"
    spec_line = (project_copy / "sprint/F9.11.yaml").read_text().splitlines()[finding.location.line - 1]
    assert "LLMHighLatency" in spec_line
    assert finding.summary == "alert LLMHighLatency (group llm) named by the spec is missing from the rule files"


# --- rules/alertmanager-config and rules/routing ------------------------------------------------------------------


def test_route_to_an_undefined_receiver_fails(project_copy: Path) -> None:
    need_tool("amtool")
    line = edit(project_copy, AM_CONFIG, "receiver: console-log-critical", "receiver: pagerduty-oncall")
    result = run_checks(project_copy, 2, ["rules/alertmanager-config"])["rules/alertmanager-config"]
    assert result.status is Status.FAILED
    summaries = [str(f) for f in errors(result)]
    assert any(s.startswith(f"{AM_CONFIG}: amtool check-config:") and "pagerduty-oncall" in s for s in summaries)
    assert (
        f"{AM_CONFIG}:{line}: route sends to receiver 'pagerduty-oncall', which is not defined (receivers: "
        "console-log, console-log-critical, console-log-warning)" in summaries
    )


def test_external_receiver_breaks_console_mode(project_copy: Path) -> None:
    need_tool("amtool")
    line = edit(
        project_copy,
        AM_CONFIG,
        "      - url: 'http://console-log:5001/alerts'\n        send_resolved: true\n  - name: console-log-warning",
        "      - url: 'https://hooks.example.invalid/pager'\n        send_resolved: true\n"
        "  - name: console-log-warning",
    )
    result = run_checks(project_copy, 2, ["rules/alertmanager-config"])["rules/alertmanager-config"]
    assert result.status is Status.FAILED
    (finding,) = errors(result)
    assert (finding.location.file, finding.location.line) == (AM_CONFIG, line)
    assert "receiver console-log-critical posts to https://hooks.example.invalid/pager" in finding.summary


def test_route_with_no_receiver_for_warnings_fails(project_copy: Path) -> None:
    """Without the warning route, warning alerts reach no severity receiver: the expected route fails and every
    warning rule is named as handled by no route, at its own line."""
    need_tool("amtool", "promtool")
    edit(project_copy, AM_CONFIG, "    - matchers: ['severity=\"warning\"']\n      receiver: console-log-warning\n", "")
    results = run_checks(project_copy, 2, ["rules/alertmanager-config", "rules/routing"])
    result = results["rules/routing"]
    assert result.status is Status.FAILED
    summaries = [str(f) for f in errors(result)]
    assert any("alerts with severity=warning reach console-log, expected console-log-warning" in s for s in summaries)
    # Each warning rule is named at its own line, as information: falling back to the root receiver is a design
    # choice for many teams; the `routes` expectation above is what fails.
    latency = line_of(project_copy, LLM_RULES, "- alert: LLMHighLatency")
    infos = [str(f) for f in result.findings if f.severity is Severity.INFO]
    assert (
        f"{LLM_RULES}:{latency}: alert LLMHighLatency (severity=warning) is handled by no route: it only reaches the "
        "default receiver console-log" in infos
    )
    assert not any("handled by no route" in s for s in summaries)


# --- live: metrics-exist and loaded-live --------------------------------------------------------------------------


@pytest.fixture(params=["compose_stack", "local_stack"])
def live_stack(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


@pytest.mark.stack
def test_metrics_exist_and_rules_loaded_on_the_live_stack(project_copy: Path, live_stack) -> None:
    results = rules_checks(
        project_copy, ["rules/promtool-check", "rules/metrics-exist", "rules/loaded-live"], stack=live_stack
    )
    for check_id in ("rules/metrics-exist", "rules/loaded-live"):
        assert results[check_id].status is Status.PASSED, (check_id, results[check_id].reason)
    by_rule = results["rules/metrics-exist"].data["metrics_by_rule"]
    assert by_rule["APIDown"] == ["up"]
    assert set(by_rule["LLMErrorRateHigh"]) == {"llm_errors_total", "llm_request_latency_seconds_count"}
    assert by_rule["APIHighErrorRate"] == ["http_requests_total"]  # F9.10 removed it: the metric did not exist
    assert results["rules/loaded-live"].data["health"] == dict.fromkeys(
        ["APIDown", "APIHighErrorRate", "LLMHighLatency", "LLMErrorRateHigh", "CircuitBreakerOpen", "LLMProviderDown"],
        "ok",
    )


@pytest.mark.stack
def test_rule_on_a_metric_the_api_does_not_export_fails(project_copy: Path, live_stack) -> None:
    """A rule on a misspelt metric (http_request_total), caught the way the seed's hand-made parecer should have
    caught APIHighErrorRate before the API exported http_requests_total."""
    line = append(project_copy, API_RULES, MISSPELT_RULE)
    metric_line = line + 2  # the first line of the `expr: |` block naming the metric
    results = rules_checks(project_copy, ["rules/promtool-check", "rules/metrics-exist"], stack=live_stack)
    result = results["rules/metrics-exist"]
    assert result.status is Status.FAILED
    (finding,) = errors(result)
    assert (finding.location.file, finding.location.line) == (API_RULES, metric_line)
    assert finding.summary.startswith(
        "rule APIHighErrorRateTypo: metric http_request_total is not exported by api (GET http://127.0.0.1:"
    )
    assert "and Prometheus holds no series since the stack started" in finding.summary


@pytest.mark.stack
def test_a_rule_whose_metric_is_missing_is_not_drilled(project_copy: Path, live_stack) -> None:
    """A rule that can never fire is not drilled: minutes of waiting would prove nothing more."""
    append(project_copy, API_RULES, MISSPELT_RULE)
    results = run_checks(
        project_copy, 2, ["rules/promtool-check", "rules/metrics-exist", "rules/alert-drill"], stack=live_stack
    )
    assert results["rules/metrics-exist"].status is Status.FAILED
    drill = results["rules/alert-drill"]
    assert (drill.status, drill.reason) == (Status.ERRORED, "prerequisite rules/metrics-exist did not pass (failed)")


@pytest.mark.stack
def test_loaded_live_fails_when_the_running_rules_differ(project_copy: Path, live_stack) -> None:
    """The stack runs the project's rules; a copy whose APIDown waits 2m is not what Prometheus evaluates."""
    edit(project_copy, API_RULES, "for: 1m", "for: 2m")
    result = rules_checks(project_copy, ["rules/promtool-check", "rules/loaded-live"], stack=live_stack)
    result = result["rules/loaded-live"]
    assert result.status is Status.FAILED
    assert f"{API_RULES}:" in result.reason
    assert "rule APIDown: running `for` is 60s, the file says 120s" in result.reason


# --- the alert drill ----------------------------------------------------------------------------------------------


def test_drill_phase_that_breaks_the_parameter_schema_is_a_spec_error(project_copy: Path) -> None:
    """A fault is exactly one primitive, traffic has a floor: the spec loader says where, before anything runs."""
    fault = edit(project_copy, "sprint/F9.10.yaml", "fault: {stop: api}", "fault: {stop: api, start: api}")
    every = edit(project_copy, "sprint/F9.10.yaml", "traffic: {every_s: 1,", "traffic: {every_s: 0,")
    with pytest.raises(InputError) as raised:
        open_spec(project_copy, "F9.10")
    assert [str(p) for p in raised.value.problems] == [
        f"sprint/F9.10.yaml:{every}: $.stages[2].checks[7].with.phases[0].traffic.every_s: 0 is less than the "
        "minimum of 0.2",
        f"sprint/F9.10.yaml:{fault}: $.stages[2].checks[7].with.phases[1].fault: {{'stop': 'api', 'start': 'api'}} "
        "has too many properties",
    ]


@pytest.mark.stack
def test_drill_skipped_with_no_drill(project_copy: Path, local_stack) -> None:
    f9_10_drill_on_todays_rules(project_copy)
    results = run_checks(
        project_copy,
        2,
        [
            "rules/promtool-check",
            "rules/loaded-live",
            "rules/metrics-exist",
            "rules/alertmanager-config",
            "rules/routing",
            "rules/alert-drill",
        ],
        stack=local_stack,
        options=RunOptions(backend="local", no_drill=True),
    )
    result = results["rules/alert-drill"]
    assert result.status is Status.SKIPPED
    assert result.reason == "--no-drill: the alert drill was not run, so the criteria it proves cannot pass"


DRILL_CHECKS = [
    "rules/promtool-check",
    "rules/loaded-live",
    "rules/metrics-exist",
    "rules/alertmanager-config",
    "rules/routing",
    "rules/alert-drill",
]


@pytest.mark.slow
@pytest.mark.drill
@pytest.mark.stack
def test_alert_drill_fires_and_resolves(project_copy: Path, live_stack, capsys: pytest.CaptureFixture[str]) -> None:
    """Once per backend, the spec's two default phases, each on its own copy of the stack, at the same time:
    LLMProviderDown and CircuitBreakerOpen fire from a failing provider, APIDown from a stopped API; each reaches
    Alertmanager and console-log, then resolves. Real `for` durations: about two minutes. The main stack is not
    touched, and every alerting rule is covered (the two `on_request` phases by their unit tests)."""
    f9_10_drill_on_todays_rules(project_copy)
    started = time.monotonic()
    results = run_checks(project_copy, 2, DRILL_CHECKS, stack=live_stack)
    result = results["rules/alert-drill"]
    assert result.status is Status.PASSED, (result.reason, result.data.get("timeline"))
    alerts = result.data["alerts"]
    for alert in ("LLMProviderDown", "CircuitBreakerOpen", "APIDown"):
        timings = alerts[alert]
        for key in (
            "pending_prometheus_s",
            "fire_prometheus_s",
            "fire_alertmanager_s",
            "fire_receiver_s",
            "resolve_prometheus_s",
            "resolve_alertmanager_s",
            "resolve_receiver_s",
        ):
            assert timings.get(key) is not None, (alert, key, timings)
        # The order an alert travels: pending, firing, Alertmanager, the receiver.
        assert timings["pending_prometheus_s"] <= timings["fire_prometheus_s"] <= timings["fire_alertmanager_s"]
    # Real durations: nothing fires before its `for` has elapsed.
    assert alerts["CircuitBreakerOpen"]["fire_prometheus_s"] >= 60
    assert alerts["LLMProviderDown"]["fire_prometheus_s"] >= 30
    assert alerts["APIDown"]["fire_prometheus_s"] >= 60
    # Per phase, with wall-clock times (what the timeline is drawn from), each on its own copy of the stack.
    phases = {p["name"]: p for p in result.data["phases"]}
    assert list(phases) == ["provider_failure", "api_down"]
    assert result.data["phases_on_request"] == ["high_latency", "error_rate"]
    for phase in phases.values():
        assert phase["status"] == "passed", phase
        assert phase["fault_at"] < phase["restored_at"] < phase["finished_at"], phase
        assert phase["checks"]["target_scraped_up"]["at"] is not None, phase
        # compose starts what Alertmanager depends_on (the integrations stand-in); the local backend only what the
        # drill routes to.
        drill_services = ["alertmanager", "api", "console-log", "prometheus"]
        if live_stack.name == "compose":
            drill_services.insert(3, "integrations-standin")
        assert phase["copy"]["services"] == drill_services, phase["copy"]
    assert phases["provider_failure"]["copy"]["name"] == "drill-provider-failure"
    # Side by side: each phase's fault was injected before the other phase finished.
    first, second = phases["provider_failure"], phases["api_down"]
    assert first["fault_at"] < second["finished_at"] and second["fault_at"] < first["finished_at"], phases
    longest = result.data["longest_phase_s"]
    assert longest == max(p["duration_s"] for p in phases.values())
    assert time.monotonic() - started < sum(p["duration_s"] for p in phases.values()) + 60
    provider = phases["provider_failure"]
    assert provider["events"]["LLMProviderDown"]["fire_receiver"]["at"] > provider["fault_at"]
    assert provider["traffic"]["during_fault"]["statuses"].get("503", 0) >= 3, provider["traffic"]
    # Progress lines (the stack's own, here the session fixture's) say which copy they come from.
    printed = capsys.readouterr().out.splitlines()
    assert any(line.startswith("[drill-api-down] drill: api_down: fault injected: stop api") for line in printed)
    # Coverage: every rule by its unit test; the three drilled ones by the drill too, with their times.
    coverage = {row["alert"]: row for row in result.data["coverage"]}
    assert set(coverage) == {
        "APIDown",
        "APIHighErrorRate",  # F9.11 restored it; its unit test is its own file
        "LLMHighLatency",
        "LLMErrorRateHigh",
        "CircuitBreakerOpen",
        "LLMProviderDown",
    }
    for alert, row in coverage.items():
        own_tests = "stack/prometheus/tests/api_http_test.yml" if alert == "APIHighErrorRate" else RULE_TESTS
        assert row["unit_tests"] == [own_tests], row
        drilled = alert in ("APIDown", "CircuitBreakerOpen", "LLMProviderDown")
        assert row["covered_by"] == (["unit_test", "drill"] if drilled else ["unit_test"]), row
    assert coverage["LLMHighLatency"]["drill"] == {
        "phase": "high_latency",
        "status": "on request",
        "fire_prometheus_s": None,
        "fire_receiver_s": None,
        "resolve_receiver_s": None,
    }
    assert coverage["APIDown"]["drill"]["resolve_receiver_s"] is not None
    # The main stack was never the drill's: its API still runs, its provider untouched.
    assert live_stack.services()["api"].running
    assert requests.get(live_stack.url("api") + "/admin/provider", timeout=5).json()["fail"] is False

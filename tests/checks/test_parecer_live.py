"""The parecer's judgements (checks/parecer.py), each with a failing and a passing rule, on a real Prometheus that
scrapes a real exposition (prometheus_client, served on 127.0.0.1): recorded series through their rules' inputs,
absent(), `or vector()`, `unless`, label-level existence, "never existed" vs "disappeared recently", rate() of a
gauge, a counter compared raw. Judged through `sealgate lint`'s library entry, the code EIXO 2 and EIXO 5 run."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from parecer_fixtures import Exporter, prom_query, scraping_prometheus, wait_until
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sealgate.lint import LintFinding, LintOptions, lint


@dataclass
class Live:
    exporter: Exporter
    prometheus: str
    registry: CollectorRegistry


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    registry = CollectorRegistry()
    requests_total = Counter("app_requests_total", "Requests", ["code", "method"], registry=registry)
    requests_total.labels("200", "GET").inc(5)
    requests_total.labels("500", "GET").inc()
    Gauge("app_queue_length", "Queued jobs", registry=registry).set(3)
    Histogram("app_latency_seconds", "Latency", ["route"], registry=registry).labels("/").observe(0.2)
    gone = Counter("app_gone_total", "A metric the code stops exporting", registry=registry)
    gone.inc()
    exporter = Exporter(registry)
    try:
        with scraping_prometheus(tmp_path_factory.mktemp("prometheus"), exporter) as url:
            wait_until("app_gone_total scraped", lambda: prom_query(url, "app_gone_total"))
            registry.unregister(gone)  # the next scrape marks it stale: it disappeared a moment ago
            wait_until("app_gone_total gone stale", lambda: not prom_query(url, "app_gone_total"))
            yield Live(exporter, url, registry)
    finally:
        exporter.close()


def run(
    tmp_path: Path, rules: str, live: Live, *, metrics: bool = True, prometheus: bool = True, **options
) -> list[LintFinding]:
    (tmp_path / "rules.yml").write_text(textwrap.dedent(rules))
    report = lint(
        LintOptions(
            root=tmp_path,
            rules=["rules.yml"],
            metrics=[live.exporter.url] if metrics else [],
            prometheus=live.prometheus if prometheus else None,
            **options,
        )
    )
    return [f for f in report.findings if f.check == "rules/metrics-exist"]


def rule(expr: str, name: str = "A", kind: str = "alert") -> str:
    return f"""\
    groups:
      - name: g
        rules:
          - {kind}: {name}
            expr: {expr}
    """


def kinds(findings: list[LintFinding]) -> list[tuple[str, str]]:
    return [(f.kind, f.severity) for f in findings]


# --- recorded series count as existing, judged through their rule's inputs ----------------------------------------

RECORDED = """\
groups:
  - name: recorded
    rules:
      - record: job:app_requests:rate1m
        expr: sum by (job, code) (rate({input}[1m]))
      - alert: ErrorsHigh
        expr: job:app_requests:rate1m{{code="500"}} > 1
"""


def test_recorded_series_exists_through_its_inputs(tmp_path: Path, live: Live) -> None:
    # Prometheus never evaluated this rule (it does not load it): the series exists because its inputs do, and its
    # `code` label is one the recording keeps (`by (job, code)`).
    assert run(tmp_path, RECORDED.format(input="app_requests_total"), live) == []


def test_recorded_series_whose_input_is_missing_is_a_finding_on_its_reader(tmp_path: Path, live: Live) -> None:
    findings = run(tmp_path, RECORDED.format(input="app_request_total"), live)
    by_kind = {f.kind: f for f in findings}
    assert set(by_kind) == {"metric-missing", "recorded-input-missing"}, findings
    assert by_kind["metric-missing"].line == 5  # the recording rule's own expression names the typo
    reader = by_kind["recorded-input-missing"]
    assert reader.line == 7 and reader.severity == "error"
    assert reader.message == (
        "rule ErrorsHigh: job:app_requests:rate1m is recorded by the rule at rules.yml:4, which reads metrics that "
        "do not exist: app_request_total"
    )


def test_label_a_recording_drops_is_missing_on_its_reader(tmp_path: Path, live: Live) -> None:
    text = RECORDED.format(input="app_requests_total").replace("by (job, code)", "by (job)")
    (finding,) = run(tmp_path, text, live)
    assert (finding.kind, finding.line) == ("label-missing", 7)
    assert "never carries label 'code' in its recording rule (rules.yml:4) (its labels: job)" in finding.message


# --- absent(), `or vector()`, `unless`: judged by what they mean ----------------------------------------------


def test_absent_of_an_existing_metric_is_what_absent_is_for(tmp_path: Path, live: Live) -> None:
    assert run(tmp_path, rule('absent(app_queue_length{job="app"})'), live) == []


def test_absent_of_a_metric_that_exists_nowhere_is_always_true(tmp_path: Path, live: Live) -> None:
    (finding,) = run(tmp_path, rule("absent(app_queue_lenght)"), live)
    assert kinds([finding]) == [("absent-always-true", "warning")]
    assert finding.message.startswith("rule A: absent() of app_queue_lenght is always true: metric app_queue_lenght")


def test_absent_of_a_metric_that_disappeared_is_not_a_finding(tmp_path: Path, live: Live) -> None:
    # Exported nowhere now, held by Prometheus a moment ago: exactly what absent() watches for.
    assert run(tmp_path, rule("absent(app_gone_total)"), live, metrics=False) == []


def test_or_vector_fallback_copes_with_a_missing_metric_but_says_it_always_falls_back(
    tmp_path: Path, live: Live
) -> None:
    assert run(tmp_path, rule("(sum(rate(app_requests_total[5m])) or vector(0)) > 1"), live) == []
    (finding,) = run(tmp_path, rule("(sum(rate(app_retries_total[5m])) or vector(0)) > 1"), live)
    assert kinds([finding]) == [("fallback-always", "warning")]
    assert "app_retries_total matches nothing, so the query always falls back" in finding.message


def test_unless_right_side_may_be_missing_unless_it_is_compared(tmp_path: Path, live: Live) -> None:
    assert run(tmp_path, rule("app_queue_length > 5 unless on () app_maintenance_mode"), live) == []
    (finding,) = run(tmp_path, rule("app_queue_length > 5 unless on () app_maintenance_mode == 1"), live)
    assert kinds([finding]) == [("metric-missing", "error")]


# --- label-level existence ----------------------------------------------------------------------------------------


def test_label_the_metric_carries_passes_in_the_exposition_or_as_a_target_label(tmp_path: Path, live: Live) -> None:
    assert run(tmp_path, rule('sum(rate(app_requests_total{code="500", job="app"}[5m])) > 0'), live) == []


def test_label_the_metric_never_carries_is_a_finding(tmp_path: Path, live: Live) -> None:
    (finding,) = run(tmp_path, rule('sum(rate(app_requests_total{status="500"}[5m])) > 0'), live)
    assert (finding.kind, finding.severity, finding.line) == ("label-missing", "error", 5)
    assert f"metric app_requests_total never carries label 'status' in GET {live.exporter.url} and Prometheus" in (
        finding.message
    )
    assert "(its labels: code, instance, job, method)" in finding.message


def test_label_only_prometheus_adds_passes_when_prometheus_has_it(tmp_path: Path, live: Live) -> None:
    # Judged against Prometheus alone: `job` is there; `status` is not.
    assert run(tmp_path, rule('app_queue_length{job="app"} > 1'), live, metrics=False) == []
    (finding,) = run(tmp_path, rule('app_queue_length{status="x"} > 1'), live, metrics=False)
    assert finding.kind == "label-missing"


def test_label_matcher_that_also_matches_its_absence_is_not_judged(tmp_path: Path, live: Live) -> None:
    assert run(tmp_path, rule('app_queue_length{status=""} > 1 or app_queue_length{status!~"x"} > 2'), live) == []


# --- never existed vs disappeared recently --------------------------------------------------------------------


def test_metric_prometheus_never_held_is_an_error(tmp_path: Path, live: Live) -> None:
    (finding,) = run(tmp_path, rule("app_never_total > 0"), live, metrics=False)
    assert kinds([finding]) == [("metric-missing", "error")]
    assert (
        finding.message
        == f"rule A: Prometheus ({live.prometheus}) holds no series of app_never_total (none in the last 7d)"
    )


def test_metric_gone_for_less_than_the_minimum_age_is_a_warning(tmp_path: Path, live: Live) -> None:
    (finding,) = run(tmp_path, rule("rate(app_gone_total[5m]) > 0"), live, metrics=False, min_age_s=3600)
    assert kinds([finding]) == [("metric-disappeared", "warning")]
    assert "disappeared from Prometheus" in finding.message and "less than the minimum age (1h)" in finding.message


def test_metric_gone_for_longer_than_the_minimum_age_is_an_error(tmp_path: Path, live: Live) -> None:
    (finding,) = run(tmp_path, rule("rate(app_gone_total[5m]) > 0"), live, metrics=False, min_age_s=0)
    assert kinds([finding]) == [("metric-disappeared", "error")]
    assert "(last sample" in finding.message


def test_metric_present_now_passes_against_prometheus_alone(tmp_path: Path, live: Live) -> None:
    assert run(tmp_path, rule("rate(app_requests_total[5m]) > 0"), live, metrics=False) == []


# --- types: rate() of a gauge, a counter compared raw ------------------------------------------------------------


@pytest.mark.parametrize("source", ["exposition", "prometheus-metadata"])
def test_rate_of_a_gauge_is_a_warning(tmp_path: Path, live: Live, source: str) -> None:
    use_metrics = source == "exposition"
    assert run(tmp_path, rule("rate(app_requests_total[5m]) > 1"), live, metrics=use_metrics) == []
    (finding,) = run(tmp_path, rule("rate(app_queue_length[5m]) > 1"), live, metrics=use_metrics)
    assert kinds([finding]) == [("rate-on-gauge", "warning")]
    assert "rate() of app_queue_length, a gauge according to" in finding.message


@pytest.mark.parametrize("source", ["exposition", "prometheus-metadata"])
def test_counter_compared_without_rate_is_a_warning(tmp_path: Path, live: Live, source: str) -> None:
    use_metrics = source == "exposition"
    assert run(tmp_path, rule("increase(app_requests_total[5m]) > 100"), live, metrics=use_metrics) == []
    (finding,) = run(tmp_path, rule("sum(app_requests_total) > 100"), live, metrics=use_metrics)
    assert kinds([finding]) == [("counter-compared", "warning")]
    assert "app_requests_total is a counter according to" in finding.message

"""F9.11's EIXO 3 dashboard checks on the live stack: the parecer over several targets (`dashboard/queries-metrics`
with `targets`: the API and postgres_exporter), traffic that provokes what a panel shows (`dashboard/queries-answer`
with a `burst`, `expect_statuses`, `nonzero_panels`), and exporter-fed panels (`dashboard/panel-jobs`) — each passing
on the reference project and failing, for the right reason, on a broken copy. The same checks on another project are
in tests/checks/test_other_layout.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from checkrun import explain, run_checks
from conftest import PROJECT_ROOT, need_docker

from sealgate.analysis.promql import analyse
from sealgate.backends.http import get_json
from sealgate.checks.dashboard_sources import selector_text
from sealgate.model.results import Status

SPEC = "sprint/F9.11.yaml"
DASHBOARD = "stack/grafana/dashboards/llm_metrics.json"
EIXO = 3
LIVE = ["dashboard/queries-metrics", "dashboard/queries-answer", "dashboard/panel-jobs"]


@pytest.fixture
def stack(compose_stack: Any) -> Any:
    need_docker()
    return compose_stack


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert text.count(old) == 1, f"{relative}: anchor {old!r} not found exactly once"
    path.write_text(text.replace(old, new))


def set_panel_expr(root: Path, title: str, expr: str) -> None:
    path = root / DASHBOARD
    dashboard = json.loads(path.read_text())
    panel = next(p for p in dashboard["panels"] if p["title"] == title)
    panel["targets"] = [{**panel["targets"][0], "expr": expr}]
    path.write_text(json.dumps(dashboard, indent=2) + "\n")


def full_budget(stack: Any) -> None:
    """The API's rate limiter back to its whole budget: an earlier test's burst must not answer this one's steady
    traffic with 429s."""
    api = stack.url("api")
    deadline = time.monotonic() + 20
    view = get_json(f"{api}/admin/ratelimit")
    while view["remaining"] < view["limit"] and time.monotonic() < deadline:
        time.sleep(0.2)
        view = get_json(f"{api}/admin/ratelimit")
    assert view["remaining"] == view["limit"], f"the API's rate limiter never freed its budget: {view}"


def summaries(result: Any) -> list[str]:
    return [f.summary for f in result.findings]


# --- reference ------------------------------------------------------------------------------------------------------


@pytest.mark.stack
def test_new_panels_exist_answer_after_a_burst_and_are_fed_by_their_jobs(stack: Any) -> None:
    full_budget(stack)
    results = run_checks(PROJECT_ROOT, EIXO, LIVE, stack=stack, sprint="F9.11")
    for check_id in LIVE:
        assert results[check_id].status is Status.PASSED, f"{check_id}: {explain(results[check_id])}"
    answer = results["dashboard/queries-answer"].data
    assert answer["burst"].get("429", 0) > 0 and answer["traffic"]["200"] >= 20, answer["traffic"]
    # Both jobs feeding the panels were scraped after the traffic (rate() needs that second sample).
    assert set(answer["fresh_scrape_after_traffic_s"]) == {"techno-os-api", "postgres"}
    assert all(s > 0 for s in answer["fresh_scrape_after_traffic_s"].values()), answer
    values = {q["panel"]: q["values"] for q in answer["queries"] if q["panel"] == "API Rate Limiting (429/s)"}
    assert any(v > 0 for v in values["API Rate Limiting (429/s)"]), values
    jobs = {(q["panel"], q["ref"]): q["selectors"] for q in results["dashboard/panel-jobs"].data["queries"]}
    assert set(jobs[("PostgreSQL Transactions", "A")]['pg_stat_database_xact_commit{datname!~"template.*|"}']) == {
        "postgres"
    }
    assert set(jobs[("API Rate Limiting (429/s)", "A")]['http_requests_total{status="429"}']) == {"techno-os-api"}


# --- queries-metrics over several targets -------------------------------------------------------------------------


@pytest.mark.stack
def test_an_exporter_left_out_of_targets_fails_its_panel(project_copy: Path, stack: Any) -> None:
    edit(project_copy, SPEC, "targets: [api, postgres-exporter]", "targets: [api]")
    result = run_checks(project_copy, EIXO, ["dashboard/queries-metrics"], stack=stack, sprint="F9.11")[
        "dashboard/queries-metrics"
    ]
    assert result.status is Status.FAILED, explain(result)
    assert (
        "panel 'PostgreSQL Transactions' (A): pg_stat_database_xact_commit is not exported by api (/metrics)"
        in summaries(result)
    ), explain(result)
    assert all(f.location.json_path.startswith("$.panels[4]") for f in result.findings), explain(result)


@pytest.mark.stack
def test_targets_naming_a_service_the_description_lacks_is_an_error_at_its_spec_line(
    project_copy: Path, stack: Any
) -> None:
    edit(project_copy, SPEC, "targets: [api, postgres-exporter]", "targets: [api, pg-exporter]")
    result = run_checks(project_copy, EIXO, ["dashboard/queries-metrics"], stack=stack, sprint="F9.11")[
        "dashboard/queries-metrics"
    ]
    assert result.status is Status.ERRORED, explain(result)
    line = next(n for n, text in enumerate((project_copy / SPEC).read_text().splitlines(), 1) if "pg-exporter" in text)
    assert result.reason.startswith(f"{SPEC}:{line}: with.targets[1]: no service 'pg-exporter'"), result.reason


# --- queries-answer: traffic that provokes what a panel shows --------------------------------------------------------


@pytest.mark.stack
def test_traffic_that_never_goes_over_the_limit_fails_expect_statuses(project_copy: Path, stack: Any) -> None:
    edit(project_copy, SPEC, "          burst: {requests: 200, concurrency: 8}\n", "")
    full_budget(stack)
    result = run_checks(project_copy, EIXO, ["dashboard/queries-answer"], stack=stack, sprint="F9.11")[
        "dashboard/queries-answer"
    ]
    assert result.status is Status.FAILED, explain(result)
    assert (
        "the traffic to api was never answered 429 (answers: 200 x20): the panels that show 429s are not proven by it"
        in summaries(result)
    ), explain(result)


@pytest.mark.stack
def test_a_panel_that_stays_at_zero_fails_nonzero_panels(project_copy: Path, stack: Any) -> None:
    # Data, but always 0: what a series created at 0 answers before anything happened.
    set_panel_expr(
        project_copy, "API Rate Limiting (429/s)", 'sum by (route) (rate(http_requests_total{status="429"}[1m])) * 0'
    )
    full_budget(stack)
    result = run_checks(project_copy, EIXO, ["dashboard/queries-answer"], stack=stack, sprint="F9.11")[
        "dashboard/queries-answer"
    ]
    assert result.status is Status.FAILED, explain(result)
    assert summaries(result) == [
        "panel 'API Rate Limiting (429/s)' (A) shows only 0 after the traffic: what it shows did not happen, or is "
        "not counted"
    ], explain(result)
    assert result.findings[0].location.json_path == "$.panels[5].targets[0].expr"


@pytest.mark.stack
def test_a_job_never_scraped_after_the_traffic_is_an_error_naming_it(project_copy: Path, stack: Any) -> None:
    edit(project_copy, SPEC, "scrape_jobs: [techno-os-api, postgres]", "scrape_jobs: [pg, techno-os-api]")
    edit(project_copy, SPEC, "          scrape_wait_s: 60\n", "          scrape_wait_s: 2\n")
    full_budget(stack)
    result = run_checks(project_copy, EIXO, ["dashboard/queries-answer"], stack=stack, sprint="F9.11")[
        "dashboard/queries-answer"
    ]
    assert result.status is Status.ERRORED, explain(result)
    assert "Prometheus scraped no sample of job pg within 2 s" in result.reason, result.reason


# --- panel-jobs -----------------------------------------------------------------------------------------------------


@pytest.mark.stack
def test_a_panel_attributed_to_the_wrong_job_fails(project_copy: Path, stack: Any) -> None:
    edit(project_copy, SPEC, "{title: PostgreSQL Transactions, job: postgres, exclusive: true}",
         "{title: PostgreSQL Transactions, job: techno-os-api}")  # fmt: skip
    result = run_checks(project_copy, EIXO, ["dashboard/panel-jobs"], stack=stack, sprint="F9.11")[
        "dashboard/panel-jobs"
    ]
    assert result.status is Status.FAILED, explain(result)
    assert summaries(result) == [
        "panel 'PostgreSQL Transactions' (A): pg_stat_database_xact_commit{datname!~\"template.*|\"} has no series "
        "scraped by job 'techno-os-api' (it has series of postgres)",
        "panel 'PostgreSQL Transactions' (B): pg_stat_database_xact_rollback{datname!~\"template.*|\"} has no series "
        "scraped by job 'techno-os-api' (it has series of postgres)",
    ], explain(result)
    assert result.findings[0].location.json_path == "$.panels[4].targets[0].expr"


@pytest.mark.stack
def test_a_panel_mixing_two_jobs_fails_exclusive_and_a_job_without_targets_fails(
    project_copy: Path, stack: Any
) -> None:
    set_panel_expr(project_copy, "API Rate Limiting (429/s)", "sum by (job) (up)")  # both jobs' `up`
    edit(project_copy, SPEC, "{title: PostgreSQL Transactions, job: postgres, exclusive: true}",
         "{title: PostgreSQL Transactions, job: pg}")  # fmt: skip
    result = run_checks(project_copy, EIXO, ["dashboard/panel-jobs"], stack=stack, sprint="F9.11")[
        "dashboard/panel-jobs"
    ]
    assert result.status is Status.FAILED, explain(result)
    found = summaries(result)
    assert "panel 'PostgreSQL Transactions': Prometheus scrapes no target of job 'pg'" in found, explain(result)
    assert (
        "panel 'API Rate Limiting (429/s)' (A): up also matches series of postgres, not only job 'techno-os-api': "
        "the panel mixes sources (add a job matcher)" in found
    ), explain(result)


@pytest.mark.stack
def test_a_panel_the_dashboard_lacks_is_a_finding_not_a_pass(project_copy: Path, stack: Any) -> None:
    edit(project_copy, SPEC, "{title: API Rate Limiting (429/s), job: techno-os-api, exclusive: true}",
         "{title: Rate Limiting, job: techno-os-api}")  # fmt: skip
    result = run_checks(project_copy, EIXO, ["dashboard/panel-jobs"], stack=stack, sprint="F9.11")[
        "dashboard/panel-jobs"
    ]
    assert result.status is Status.FAILED, explain(result)
    assert "no panel titled 'Rate Limiting' has a query" in summaries(result)


@pytest.mark.parametrize(
    ("expr", "selectors"),
    [
        ('rate(pg_x{db="a\\"b", le=~"1|2"}[5m])', ['pg_x{db="a\\"b", le=~"1|2"}']),
        ('sum({__name__=~"pg_.+", job="postgres"})', ['{__name__=~"pg_.+", job="postgres"}']),
        ("up", ["up"]),
    ],
    ids=["quoted-values", "name-pattern", "bare"],
)
def test_selectors_are_sent_as_valid_promql(expr: str, selectors: list[str]) -> None:
    sent = [selector_text(use) for use in analyse(expr).uses]
    assert sent == selectors
    for text in sent:
        analyse(f"count by (job) ({text})")  # parses

"""dashboard/*: provisioning and dashboard JSON judged with locations, panel queries against the live Prometheus, and
the Grafana client — run as the current sprint places them (F9.11's EIXO 3: the dashboard as it is now, with the
PostgreSQL and rate-limiting panels; F9.10's EIXO 5 judged the 4-panel dashboard it sealed).

No Grafana can run on these machines, so `GrafanaStandIn` below — a small `http.server` on 127.0.0.1 — stands in
for Grafana by speaking the four endpoints the client uses. It is not Grafana: it proves the client and the check's
comparison logic; the live check against a real Grafana runs wherever one answers (and is skipped here, with the
reason, never passed).
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from checkrun import explain, run_checks
from conftest import PROJECT_ROOT, commit_all, need_docker
from other_layout import make_other_layout, set_check
from test_dashboard_sources import full_budget

from sealgate.analysis.grafana import GrafanaClient, GrafanaError, comparable, differences
from sealgate.kernel.errors import InputError
from sealgate.model.results import Status
from sealgate.run.plan import open_spec

DASHBOARD = "stack/grafana/dashboards/llm_metrics.json"
STATIC = ["dashboard/provisioning", "dashboard/json-structure"]
SPRINT, EIXO = "F9.11", 3  # the sprint whose spec judges the dashboard as it is now
PANELS = [
    "LLM Request Latency",
    "LLM Token Usage",
    "LLM Error Rate",
    "Circuit Breaker State",
    "PostgreSQL Transactions",
    "API Rate Limiting (429/s)",
]


def load(root: Path) -> dict[str, Any]:
    return json.loads((root / DASHBOARD).read_text())


def save(root: Path, dashboard: dict[str, Any]) -> None:
    (root / DASHBOARD).write_text(json.dumps(dashboard, indent=2) + "\n")


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert text.count(old) == 1, f"{relative}: anchor {old!r} not found exactly once"
    path.write_text(text.replace(old, new))


# --- static ------------------------------------------------------------------------------------------------------


def test_reference_provisioning_and_dashboard_pass() -> None:
    results = run_checks(PROJECT_ROOT, EIXO, STATIC, sprint=SPRINT)
    for check_id in STATIC:
        assert results[check_id].status is Status.PASSED, f"{check_id}: {explain(results[check_id])}"
    panels = results["dashboard/json-structure"].data["panels"]
    assert [p["title"] for p in panels] == PANELS


def test_a_panel_missing_fails_with_json_paths(project_copy: Path) -> None:
    dashboard = load(project_copy)
    del dashboard["panels"][3]
    save(project_copy, dashboard)
    result = run_checks(project_copy, EIXO, ["dashboard/json-structure"], sprint=SPRINT)["dashboard/json-structure"]
    assert result.status is Status.FAILED, explain(result)
    found = {(f.summary, f.location.json_path) for f in result.findings}
    assert ("5 panels, expected exactly 6", "$.panels") in found
    assert ("no panel titled 'Circuit Breaker State'", "$.panels") in found
    assert all(f.location.file == DASHBOARD for f in result.findings)


@pytest.mark.parametrize(
    ("mutate", "summary", "json_path"),
    [
        (
            lambda d: d["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"][1].update(value=10),
            "panel 'LLM Request Latency' has no threshold at 5 s (unit 's', steps [10])",
            "$.panels[0].fieldConfig.defaults.thresholds.steps",
        ),
        (
            lambda d: d["panels"][2]["fieldConfig"]["defaults"]["thresholds"]["steps"][1].update(value=5),
            "panel 'LLM Error Rate' has no threshold at 5 percent (unit 'percentunit', steps [5])",
            "$.panels[2].fieldConfig.defaults.thresholds.steps",
        ),
        (
            lambda d: d["panels"][3]["fieldConfig"]["defaults"]["mappings"][0]["options"]["1"].update(color="orange"),
            "panel 'Circuit Breaker State' colours OPEN 'orange', expected red",
            "$.panels[3].fieldConfig.defaults.mappings",
        ),
        (
            lambda d: d["panels"][3].update(type="gauge"),
            "panel 'Circuit Breaker State' is a 'gauge', expected 'stat'",
            "$.panels[3].type",
        ),
        (
            lambda d: d["panels"][1].update(datasource={"type": "loki", "uid": "logs"}),
            "panel 'LLM Token Usage' uses datasource {'type': 'loki', 'uid': 'logs'}, not the provisioned "
            "prometheus ['prometheus']",
            "$.panels[1].datasource",
        ),
        (lambda d: d.update(uid="llm-metrics"), "uid is 'llm-metrics', expected 'llm-metrics-f910'", "$.uid"),
    ],
    ids=["latency-threshold", "error-threshold", "mapping-colour", "panel-type", "datasource", "uid"],
)
def test_dashboard_mistakes_fail_at_their_json_path(
    project_copy: Path, mutate: Any, summary: str, json_path: str
) -> None:
    dashboard = load(project_copy)
    mutate(dashboard)
    save(project_copy, dashboard)
    result = run_checks(project_copy, EIXO, ["dashboard/json-structure"], sprint=SPRINT)["dashboard/json-structure"]
    assert result.status is Status.FAILED, explain(result)
    found = [f for f in result.findings if (f.summary, f.location.json_path) == (summary, json_path)]
    assert found, explain(result)
    # The finding carries the line its JSON path is written on (the report's file:line column, SARIF).
    written = (project_copy / DASHBOARD).read_text().splitlines()[found[0].location.line - 1]
    assert written.strip().startswith(f'"{json_path.rsplit(".", 1)[1]}":'), written


@pytest.mark.parametrize(
    ("relative", "old", "new", "summary"),
    [
        (
            "stack/grafana/provisioning/dashboards/default.yml",
            "updateIntervalSeconds: 10",
            "updateIntervalSeconds: 30",
            "provider 'default' updateIntervalSeconds is 30, expected 10",
        ),
        (
            "stack/grafana/provisioning/datasources/prometheus.yml",
            "url: http://prometheus:9090",
            "url: http://localhost:9090",
            "datasource 'Prometheus' url is 'http://localhost:9090', expected 'http://prometheus:9090'",
        ),
        (
            "stack/docker-compose.yml",
            "./grafana/dashboards:/var/lib/grafana/dashboards:ro",
            "./grafana/dashboards:/var/lib/grafana/other:ro",
            "service grafana mounts nothing at /var/lib/grafana/dashboards (where the dashboard provider reads)",
        ),
    ],
    ids=["provider-interval", "datasource-url", "compose-mount"],
)
def test_provisioning_mistakes_fail_with_the_file(
    project_copy: Path, relative: str, old: str, new: str, summary: str
) -> None:
    edit(project_copy, relative, old, new)
    result = run_checks(project_copy, EIXO, ["dashboard/provisioning"], sprint=SPRINT)["dashboard/provisioning"]
    assert result.status is Status.FAILED, explain(result)
    finding = next((f for f in result.findings if f.summary == summary), None)
    assert finding is not None, explain(result)
    assert finding.location.file == relative
    if relative.endswith((".yml",)) and "compose" not in relative:
        line = next(i for i, text in enumerate((project_copy / relative).read_text().splitlines(), 1) if new in text)
        assert finding.location.line == line


# --- live: the queries against the real Prometheus ------------------------------------------------------------------


@pytest.fixture
def stack(compose_stack: Any) -> Any:
    need_docker()
    return compose_stack


@pytest.mark.stack
def test_reference_queries_exist_and_answer_and_grafana_is_skipped(stack: Any) -> None:
    full_budget(stack)
    ids = ["dashboard/queries-metrics", "dashboard/queries-answer", "dashboard/grafana-live"]
    results = run_checks(PROJECT_ROOT, EIXO, ids, stack=stack, sprint=SPRINT)
    for check_id in ids[:2]:
        assert results[check_id].status is Status.PASSED, f"{check_id}: {explain(results[check_id])}"
    answered = results["dashboard/queries-answer"].data["queries"]
    assert {q["panel"] for q in answered} == set(PANELS)
    assert all(q["series"] > 0 for q in answered), answered
    grafana = results["dashboard/grafana-live"]
    # No Grafana image here: skipped with the backend's reason, never passed.
    assert grafana.status is Status.SKIPPED, explain(grafana)
    assert "no Grafana answers on the compose backend" in grafana.reason


@pytest.mark.stack
def test_panel_on_a_missing_metric_fails_queries_metrics(project_copy: Path, stack: Any) -> None:
    edit(project_copy, DASHBOARD, "rate(llm_tokens_total[1m])", "rate(llm_token_usage_total[1m])")
    result = run_checks(project_copy, EIXO, ["dashboard/queries-metrics"], stack=stack, sprint=SPRINT)[
        "dashboard/queries-metrics"
    ]
    assert result.status is Status.FAILED, explain(result)
    summaries = {(f.summary, f.location.json_path) for f in result.findings}
    path = "$.panels[1].targets[0].expr"
    assert (
        "panel 'LLM Token Usage' (A): llm_token_usage_total is not exported by api (/metrics), postgres-exporter "
        "(/metrics)",
        path,
    ) in summaries
    assert any(
        s.startswith("panel 'LLM Token Usage' (A): Prometheus holds no llm_token_usage_total") for s, _ in summaries
    )


@pytest.mark.stack
def test_panel_that_returns_nothing_fails_queries_answer_with_its_title(project_copy: Path, stack: Any) -> None:
    # The metric exists (queries-metrics passes); this selection of it never has data. (A value no series carries,
    # `provider="none"`, is queries-metrics' own finding now; a negative matcher is never judged statically.)
    dashboard = load(project_copy)
    target = dashboard["panels"][1]["targets"][0]
    target["expr"] = target["expr"].replace("llm_tokens_total[1m]", 'llm_tokens_total{provider!="sim"}[1m]')
    save(project_copy, dashboard)
    full_budget(stack)
    results = run_checks(
        project_copy, EIXO, ["dashboard/queries-metrics", "dashboard/queries-answer"], stack=stack, sprint=SPRINT
    )
    assert results["dashboard/queries-metrics"].status is Status.PASSED, explain(results["dashboard/queries-metrics"])
    answer = results["dashboard/queries-answer"]
    assert answer.status is Status.FAILED, explain(answer)
    written = (project_copy / DASHBOARD).read_text().splitlines()
    line = 1 + next(i for i, text in enumerate(written) if 'provider!=\\"sim\\"' in text)
    assert answer.reason.startswith(
        f"{DASHBOARD}:{line} $.panels[1].targets[0].expr: panel 'LLM Token Usage' (A) returns no data"
    )
    assert len(answer.findings) == 1, explain(answer)


# --- the Grafana client, against a stand-in ----------------------------------------------------------------------


class GrafanaStandIn(ThreadingHTTPServer):
    """Stands in for Grafana (none can run here): answers /api/health, /api/datasources/name/<n>,
    /api/datasources/uid/<uid>/health and /api/dashboards/uid/<uid> the way Grafana 11 documents them, from state a
    test sets. Basic auth is required, like Grafana's API."""

    def __init__(self, dashboard: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _StandInHandler)
        self.auth = "Basic YWRtaW46czNjcmV0"  # admin:s3cret
        self.dashboard = copy.deepcopy(dashboard)
        self.dashboard.update(id=7, version=3)  # what Grafana adds when it stores a provisioned dashboard
        self.provisioned = True
        self.datasource_ok = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _StandInHandler(BaseHTTPRequestHandler):
    server: GrafanaStandIn

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/api/health":
            self._send(200, {"commit": "stand-in", "database": "ok", "version": "11.3.1"})
            return
        if self.headers.get("Authorization") != self.server.auth:
            self._send(401, {"message": "Unauthorized"})
            return
        if self.path == "/api/datasources/name/Prometheus":
            self._send(
                200,
                {
                    "id": 1,
                    "uid": "prometheus",
                    "name": "Prometheus",
                    "type": "prometheus",
                    "url": "http://prometheus:9090",
                    "isDefault": True,
                },
            )
        elif self.path == "/api/datasources/uid/prometheus/health":
            if self.server.datasource_ok:
                self._send(200, {"status": "OK", "message": "Successfully queried the Prometheus API."})
            else:
                self._send(400, {"status": "ERROR", "message": 'Post "http://prometheus:9090": no such host'})
        elif self.path == f"/api/dashboards/uid/{self.server.dashboard['uid']}":
            self._send(
                200,
                {
                    "dashboard": self.server.dashboard,
                    "meta": {
                        "provisioned": self.server.provisioned,
                        "version": 3,
                        "provisionedExternalId": "llm_metrics.json",
                    },
                },
            )
        else:
            self._send(404, {"message": "Not found"})


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    server = GrafanaStandIn(load(PROJECT_ROOT))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_client_reads_health_datasource_and_dashboard(grafana: GrafanaStandIn) -> None:
    client = GrafanaClient(grafana.url, user="admin", password="s3cret")
    assert client.health()["database"] == "ok"
    datasource = client.datasource_by_name("Prometheus")
    assert datasource["uid"] == "prometheus"
    assert client.datasource_health("prometheus") == (
        200,
        {"status": "OK", "message": "Successfully queried the Prometheus API."},
    )
    status, served = client.dashboard("llm-metrics-f910")
    assert status == 200 and served["meta"]["provisioned"] is True
    # What Grafana adds (id, version) is not drift; a changed threshold is, at its path.
    assert differences(comparable(load(PROJECT_ROOT)), comparable(served["dashboard"])) == []
    grafana.dashboard["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] = 6
    _status, served = client.dashboard("llm-metrics-f910")
    assert differences(comparable(load(PROJECT_ROOT)), comparable(served["dashboard"])) == [
        "$.panels[0].fieldConfig.defaults.thresholds.steps[1].value: 6 != 5"
    ]


def test_client_errors_are_named(grafana: GrafanaStandIn) -> None:
    wrong = GrafanaClient(grafana.url, user="admin", password="wrong")
    with pytest.raises(GrafanaError, match=r"datasource 'Prometheus': GET answered 401"):
        wrong.datasource_by_name("Prometheus")
    assert GrafanaClient(grafana.url, password="s3cret").dashboard("nope")[0] == 404
    with pytest.raises(GrafanaError, match=r"GET /api/health: "):
        GrafanaClient("http://127.0.0.1:9", timeout=2).health()


@pytest.mark.stack
@pytest.mark.parametrize(
    ("change", "status", "expected"),
    [
        (lambda g: None, Status.PASSED, ""),
        (
            lambda g: setattr(g, "provisioned", False),
            Status.FAILED,
            "dashboard 'llm-metrics-f910' is in Grafana but not provisioned from a file",
        ),
        (lambda g: setattr(g, "datasource_ok", False), Status.FAILED, "datasource 'Prometheus' is not healthy: 400"),
        (
            lambda g: g.dashboard["panels"].pop(),
            Status.FAILED,
            f"{DASHBOARD}: the dashboard Grafana serves differs from {DASHBOARD}: $.panels: 5 items, the file has 6",
        ),
    ],
    ids=["equal", "not-provisioned", "datasource-down", "drifted"],
)
def test_grafana_live_check_against_the_stand_in(
    grafana: GrafanaStandIn, stack: Any, monkeypatch: pytest.MonkeyPatch, change: Any, status: Status, expected: str
) -> None:
    # SEALGATE_GRAFANA_URL names a Grafana outside the stack (here: the stand-in) — the check's documented input.
    monkeypatch.setenv("SEALGATE_GRAFANA_URL", grafana.url)
    monkeypatch.setenv("SEALGATE_GRAFANA_PASSWORD", "s3cret")
    change(grafana)
    result = run_checks(PROJECT_ROOT, EIXO, ["dashboard/grafana-live"], stack=stack, sprint=SPRINT)[
        "dashboard/grafana-live"
    ]
    assert result.status is status, explain(result)
    assert result.reason.startswith(expected), explain(result)


# --- another layout: files at other paths, a Grafana service of another name ---------------------------------------


def test_static_checks_pass_on_another_layout(tmp_path: Path) -> None:
    root = make_other_layout(tmp_path / "other")
    results = run_checks(root, 2, STATIC, sprint="OTHER")
    for check_id in STATIC:
        assert results[check_id].status is Status.PASSED, f"{check_id}: {explain(results[check_id])}"
    mounts = {m["target"]: m["source"] for m in results["dashboard/provisioning"].data["grafana_mounts"]}
    assert mounts["/var/lib/grafana/dashboards"] == "grafana/dashboards"


def test_provisioning_on_another_layout_names_its_grafana_service(tmp_path: Path) -> None:
    root = make_other_layout(tmp_path / "other")
    # Mounted, but not where Grafana reads provisioning (a mount of ./grafana at /etc/grafana would deliver it there).
    edit(
        root,
        "docker-compose.yml",
        "./grafana/provisioning:/etc/grafana/provisioning:ro",
        "./grafana/provisioning:/etc/grafana-provisioning:ro",
    )
    commit_all(root, "provisioning mounted elsewhere")
    result = run_checks(root, 2, ["dashboard/provisioning"], sprint="OTHER")["dashboard/provisioning"]
    assert result.status is Status.FAILED, explain(result)
    (finding,) = result.findings
    assert finding.summary == "service dash does not mount grafana/provisioning at /etc/grafana/provisioning"
    assert finding.location.file == "docker-compose.yml"
    assert (
        finding.location.line
        == next(
            i
            for i, line in enumerate((root / "docker-compose.yml").read_text().splitlines(), 1)
            if "dash_data:" in line
        )
        - 1
    )  # the service's `volumes:` key


def test_a_dashboard_check_without_its_files_is_a_spec_error(tmp_path: Path) -> None:
    root = make_other_layout(tmp_path / "other")
    set_check(
        root,
        "dashboard/json-structure",
        **{"with": {"uid": "x", "tags": [], "panels": [{"title": "t", "type": "stat"}]}},
    )
    with pytest.raises(InputError) as raised:
        open_spec(root, "OTHER")
    problems = [str(p) for p in raised.value.problems]
    assert any(p.endswith("$.stages[2].checks[1].with: 'dashboard' is a required property") for p in problems), problems
    assert any(p.endswith("$.stages[2].checks[1].with: 'datasources' is a required property") for p in problems), (
        problems
    )
    assert all(p.startswith("sprint/OTHER.yaml:") for p in problems), problems

"""The library checks on another project (tests/otherproject.py): other layout, service names, scrape job,
variables, receiver output and backup script than F9.10, brought up for real on the local backend. What passes on
F9.10 passes here from the spec's parameters and the stack description alone; a parameter that does not fit the
described stack is one clear line at its spec line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checkrun import explain, run_checks
from conftest import commit_all, need, need_tool
from otherproject import SPEC, make_shop_project, write_spec

from sealgate import engine
from sealgate.backends.description import load_description
from sealgate.backends.local import LocalBackend
from sealgate.backends.provision import find_binary
from sealgate.model.results import Status

RULES_LIVE = [
    "rules/promtool-check",
    "rules/metrics-exist",
    "rules/loaded-live",
    "rules/alertmanager-config",
    "rules/routing",
]
BACKUP = ["backup/script-static", "backup/run-live", "backup/retention", "backup/fail-closed", "backup/restore-drill"]
SETTINGS = [
    "env_config/defaults",
    "env_config/overrides",
    "env_config/behaviour",
    "env_config/bad-values",
    "env_config/env-example",
]


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shop_project(tmp_path_factory.mktemp("other") / "shop")


@pytest.fixture(scope="module")
def shop_stack(shop: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The shop stack as local processes (real Prometheus and Alertmanager), for this module's tests."""
    need_tool("promtool", "amtool", "curl")
    for name in ("prometheus", "alertmanager"):
        need(find_binary(name) is not None, f"{name} not installed (bash .ci/setup-system.sh installs it)")
    backend = LocalBackend(
        shop,
        tmp_path_factory.mktemp("shop-run"),
        progress=lambda line: None,
        description=load_description(shop, "deploy/stack.yaml"),
        allow_download=False,
    )
    try:
        backend.up(timeout=120)
        yield backend
    finally:
        backend.down(remove_volumes=True)


def passed(results: dict[str, Any], ids: list[str]) -> None:
    for check_id in ids:
        assert results[check_id].status is Status.PASSED, f"{check_id}: {explain(results[check_id])}"


# --- rules: defaults from the description --------------------------------------------------------------------------


@pytest.mark.stack
def test_rules_live_checks_pass_from_the_description(shop: Path, shop_stack: Any) -> None:
    """No target, config, rule files or receivers given: the described Prometheus' configuration and rule_files,
    the main target and its metrics path, the Alertmanager configuration and the receiver come from the stack."""
    results = run_checks(shop, 0, RULES_LIVE, stack=shop_stack, sprint="S1")
    passed(results, RULES_LIVE)
    metrics = results["rules/metrics-exist"].data
    assert metrics["metrics_url"].endswith("/metrics") and metrics["metrics_by_rule"]["ShopGone"] == ["up"]
    assert set(results["rules/loaded-live"].data["health"]) == {"ShopUnhealthy", "ShopGone"}
    assert results["rules/alertmanager-config"].data["receivers"] == ["fallback", "page"]


# --- rules/alert-drill ---------------------------------------------------------------------------------------------


@pytest.mark.stack
def test_alert_drill_runs_the_specs_phases_on_another_stack(shop: Path, shop_stack: Any) -> None:
    """A POST fault with traffic and a stopped service, observed in a receiver with its own line format."""
    results = run_checks(shop, 0, [*RULES_LIVE, "rules/alert-drill"], stack=shop_stack, sprint="S1")
    drill = results["rules/alert-drill"]
    assert drill.status is Status.PASSED, (explain(drill), drill.data.get("timeline"))
    assert drill.data["observed"]["receiver"] == "sink"
    assert drill.data["observed"]["target_job"] == "shop-metrics"
    phases = {p["name"]: p for p in drill.data["phases"]}
    assert [p["status"] for p in phases.values()] == ["passed", "passed"], phases
    assert phases["unhealthy"]["fault"] == 'POST shop /break {"broken": true}'
    assert phases["gone"]["restore"] == "start shop"
    traffic = phases["unhealthy"]["traffic"]
    assert traffic["during_fault"]["statuses"].get("503", 0) >= 1, traffic
    # After the restore the shop recovers for its cooldown: refused, then accepted again.
    assert {"503", "200"} <= set(traffic["after_restore"]["statuses"]), traffic
    for alert in ("ShopUnhealthy", "ShopGone"):
        times = drill.data["alerts"][alert]
        assert all(v is not None for v in times.values()), times
        assert times["fire_prometheus_s"] >= 2  # its `for`, really waited
    assert drill.data["time_to_fire"].startswith("ShopUnhealthy ")
    assert any(w["check"] == "rules/alert-drill" for w in _waits(shop)), "drill waits recorded"
    assert shop_stack.services()["shop"].running


def _waits(root: Path) -> list[dict[str, Any]]:
    evidence = json.loads((root / "artifacts" / "s1" / "eixo_0.json").read_text())
    return list(evidence["predicate"]["waits"])


@pytest.mark.stack
@pytest.mark.parametrize(
    ("sprint", "old", "new", "needle", "expected"),
    [
        (
            "BADSERVICE",
            "fault: {stop: shop}",
            "fault: {stop: shoop}",
            "fault: {stop: shoop}",
            "with.phases[1].fault.stop: no service 'shoop' in deploy/stack.yaml (described: sink, am, shop, prom)",
        ),
        (
            "BADTWICE",
            "alerts: [ShopGone]",
            "alerts: [ShopGone, ShopUnhealthy]",
            "alerts: [ShopGone, ShopUnhealthy]",
            "with.phases[1].alerts[1]: alert ShopUnhealthy is already drilled by phase 'unhealthy'",
        ),
        (
            "BADTRAFFIC",
            "traffic: {every_s: 0.5, max_requests: 20}",
            "traffic: {service: sink}",
            "traffic: {service: sink}",
            "with.phases[0].traffic: service sink has no `traffic:` request in deploy/stack.yaml (describe the "
            "request that makes it do real work)",
        ),
    ],
    ids=["unknown-service", "alert-in-two-phases", "traffic-without-request"],
)
def test_drill_parameter_that_does_not_fit_the_stack_is_one_line_at_its_spec_line(
    shop: Path, shop_stack: Any, sprint: str, old: str, new: str, needle: str, expected: str
) -> None:
    write_spec(shop, sprint, SPEC.replace(old, new, 1))
    try:
        results = run_checks(shop, 0, [*RULES_LIVE, "rules/alert-drill"], stack=shop_stack, sprint=sprint)
    finally:
        (shop / "sprint" / f"{sprint}.yaml").unlink()
    drill = results["rules/alert-drill"]
    assert drill.status is Status.ERRORED, explain(drill)
    assert drill.reason == f"sprint/{sprint}.yaml:{_line(SPEC.replace(old, new, 1), needle)}: {expected}"


def _line(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.stack
def test_drill_of_an_alert_prometheus_does_not_run_fails_at_once(shop: Path, shop_stack: Any) -> None:
    write_spec(shop, "BADALERT", SPEC.replace("alerts: [ShopGone]", "alerts: [ShopVanished]", 1))
    try:
        results = run_checks(shop, 0, [*RULES_LIVE, "rules/alert-drill"], stack=shop_stack, sprint="BADALERT")
    finally:
        (shop / "sprint" / "BADALERT.yaml").unlink()
    drill = results["rules/alert-drill"]
    assert drill.status is Status.FAILED, explain(drill)
    assert drill.reason.startswith("alert ShopVanished is not loaded by the running Prometheus (http://127.0.0.1:")


@pytest.mark.stack
def test_a_fault_that_does_not_fire_its_alert_fails_its_phase_naming_what_was_not_seen(
    shop: Path, shop_stack: Any
) -> None:
    """The fault changes nothing (the shop is told it is *not* broken): the phase waits the alert's `for` plus the
    drill's slack, then fails with one finding per step not seen; the other phase still passes."""
    spec = SPEC.replace("body: {broken: true}}}", "body: {broken: false}}}", 1)
    write_spec(shop, "NOFIRE", spec)
    try:
        results = run_checks(shop, 0, [*RULES_LIVE, "rules/alert-drill"], stack=shop_stack, sprint="NOFIRE")
    finally:
        (shop / "sprint" / "NOFIRE.yaml").unlink()
    drill = results["rules/alert-drill"]
    assert drill.status is Status.FAILED, explain(drill)
    assert [p["status"] for p in drill.data["phases"]] == ["failed", "passed"], drill.data["phases"]
    unseen = [f.summary for f in drill.findings]
    fault = 'of the fault (unhealthy: POST shop /break {"broken": false})'
    assert any(
        m.startswith("ShopUnhealthy firing in Prometheus: not seen within ") and m.endswith(fault) for m in unseen
    ), unseen
    assert not any("ShopGone" in m for m in unseen), unseen


@pytest.mark.stack
def test_an_alert_over_the_budget_its_spec_states_fails_its_phase_naming_both_numbers(
    shop: Path, shop_stack: Any
) -> None:
    """The spec's own alerting SLO: ShopGone must reach the receiver within 0.5 s of its fault, which no alert with a
    `for` can. The phase fails naming the alert, the measured time and the budget; the other phase, with no stated
    budget, passes. Every drilled alert's computed bound stands beside it in the evidence."""
    spec = SPEC.replace(
        "            - name: gone\n",
        "            - name: gone\n",
        1,
    ).replace(
        "              fault: {stop: shop}\n              restore: {start: shop}\n",
        "              fault: {stop: shop}\n              restore: {start: shop}\n"
        "          budgets:\n            ShopGone: {max_fire_s: 0.5}\n",
        1,
    )
    write_spec(shop, "BUDGET", spec)
    try:
        results = run_checks(shop, 0, [*RULES_LIVE, "rules/alert-drill"], stack=shop_stack, sprint="BUDGET")
    finally:
        (shop / "sprint" / "BUDGET.yaml").unlink()
    drill = results["rules/alert-drill"]
    assert drill.status is Status.FAILED, explain(drill)
    assert {p["name"]: p["status"] for p in drill.data["phases"]} == {"unhealthy": "passed", "gone": "failed"}
    over, uncovered = [f for f in drill.findings if f.severity.value == "error"]
    # A phase over budget covers nothing: the alert is then covered by none of the ways, said at its rule.
    assert uncovered.summary.startswith("alert ShopGone is covered by none of:"), uncovered.summary
    assert "a passed drill phase (phase gone: failed)" in uncovered.summary
    budgets = {row["alert"]: row for row in drill.data["budgets"]}
    delivered = budgets["ShopGone"]["fire_receiver_s"]
    assert over.rule == "ShopGone"
    assert over.summary == (
        f"ShopGone: delivered firing {delivered:g}s after the fault, over its budget max_fire_s 0.5s "
        f"(sprint/BUDGET.yaml:{_line(spec, 'ShopGone: {max_fire_s')})"
    )
    assert budgets["ShopGone"]["over_budget"] == [over.summary]
    intervals = drill.data["intervals"]
    slack = 2 * intervals["scrape_s"] + 2 * intervals["evaluation_s"] + 30
    for alert, row in budgets.items():  # the bound the drill waits, beside what it measured
        assert row["fire_bound_s"] == round(
            drill.data["rule_for_s"][alert] + slack + drill.data["group_wait_s"][alert], 1
        )
        assert row["fire_receiver_s"] is not None and row["fire_receiver_s"] <= row["fire_bound_s"]
    assert budgets["ShopUnhealthy"]["max_fire_s"] is None and budgets["ShopUnhealthy"]["over_budget"] == []


# --- alert coverage ----------------------------------------------------------------------------------------------

# Two more alerts on the shop: no phase drills them. ShopIdle gets a promtool unit test in COVPT only; ShopRefusing
# only ever a waiver.
MORE_RULES = """\
      - alert: ShopIdle
        expr: rate(shop_orders_total[1m]) == 0
        for: 10m
        labels: {severity: page}
        annotations: {summary: no orders, description: the shop sold nothing for ten minutes}
      - alert: ShopRefusing
        expr: rate(shop_refused_orders_total[1m]) > 1
        for: 10m
        labels: {severity: page}
        annotations: {summary: orders refused, description: the shop refuses more than one order a second}
"""
SHOP_TESTS = """\
rule_files: [../rules/shop.rules.yml]
evaluation_interval: 1m
tests:
  - name: ShopIdle fires after ten minutes without an order
    interval: 1m
    input_series:
      - series: 'shop_orders_total{job="shop-metrics", instance="shop:8080"}'
        values: '5x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: ShopIdle
        exp_alerts:
          - exp_labels: {severity: page, job: shop-metrics, instance: "shop:8080"}
            exp_annotations: {summary: no orders, description: the shop sold nothing for ten minutes}
"""
WAIVER = """\
waivers:
  - alert: ShopRefusing
    justification: the load test of the shop drills it, not this seal
    approver: Shop Team
    expires: "2099-12-31"
"""


@pytest.fixture(scope="module")
def covered_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """The shop with the two more alerts, its unit tests, the sprints COV (en: ShopIdle covered by nothing) and
    COVPT (pt-BR: ShopIdle unit-tested), both waiving ShopRefusing; and its stack, which loads the four alerts."""
    need_tool("promtool", "amtool", "curl")
    for name in ("prometheus", "alertmanager"):
        need(find_binary(name) is not None, f"{name} not installed (bash .ci/setup-system.sh installs it)")
    root = make_shop_project(tmp_path_factory.mktemp("covered") / "shop")
    rules = root / "monitoring/rules/shop.rules.yml"
    rules.write_text(rules.read_text() + MORE_RULES)
    (root / "monitoring/tests").mkdir()
    (root / "monitoring/tests/shop_test.yml").write_text(SHOP_TESTS)
    write_spec(root, "COV", SPEC + WAIVER)
    unit_tested = SPEC.replace(
        "      - id: rules/metrics-exist\n",
        "      - id: rules/promtool-test\n        with: {tests: [monitoring/tests/*.yml]}\n      - id: rules/metrics-exist\n",
        1,
    )
    write_spec(root, "COVPT", unit_tested.replace("language: en", "language: pt-BR", 1) + WAIVER)
    commit_all(root, "two more alerts")
    backend = LocalBackend(
        root,
        tmp_path_factory.mktemp("covered-run"),
        progress=lambda line: None,
        description=load_description(root, "deploy/stack.yaml"),
        allow_download=False,
    )
    try:
        backend.up()
        yield root, backend
    finally:
        backend.down(remove_volumes=True)


def _report(root: Path, sprint: str) -> str:
    assert engine.report(root, sprint, out=lambda line: None) == 0
    return (root / "reports" / f"SEAL_{sprint}.md").read_text()


@pytest.mark.stack
def test_an_alert_no_unit_test_drill_or_waiver_covers_is_reported_by_name(covered_shop: tuple[Path, Any]) -> None:
    root, stack = covered_shop
    results = run_checks(root, 0, [*RULES_LIVE, "rules/alert-drill"], stack=stack, sprint="COV")
    drill = results["rules/alert-drill"]
    assert drill.status is Status.FAILED, explain(drill)
    (finding,) = [f for f in drill.findings if f.severity.value == "error"]
    idle = _line((root / "monitoring/rules/shop.rules.yml").read_text(), "- alert: ShopIdle")
    assert (finding.location.file, finding.location.line) == ("monitoring/rules/shop.rules.yml", idle)
    assert finding.summary == (
        "alert ShopIdle is covered by none of: a promtool unit test (the spec names no rule tests); a drill phase "
        "(no phase names it); an `alert: ShopIdle` waiver"
    )
    coverage = {row["alert"]: row["covered_by"] for row in drill.data["coverage"]}
    assert coverage == {"ShopUnhealthy": ["drill"], "ShopGone": ["drill"], "ShopIdle": [], "ShopRefusing": ["waiver"]}
    assert [(w["kind"], w["target"]) for w in drill.waivers] == [("alert", "ShopRefusing")]
    # The SEAL says it: the coverage table, the uncovered rule by name, and the timeline.
    report = _report(root, "COV")
    assert f"| `ShopIdle` | `monitoring/rules/shop.rules.yml:{idle}` | — | — | — | — | ❌ by nothing |" in report
    assert "| `ShopRefusing` |" in report and "⚠️ sprint/COV.yaml:" in report
    assert "4 alerting rules, 1 covered by nothing." in report
    gantt = report.split("```mermaid\ngantt\n", 1)[1].split("```", 1)[0]
    assert "section ShopUnhealthy (unhealthy)" in gantt and "section ShopGone (gone)" in gantt
    assert "fault injected → pending" in gantt and "resolved → resolution at the receiver" in gantt


@pytest.mark.stack
def test_coverage_by_unit_test_drill_and_waiver_in_the_portuguese_seal(covered_shop: tuple[Path, Any]) -> None:
    root, stack = covered_shop
    ids = ["rules/promtool-check", "rules/promtool-test", *RULES_LIVE[1:], "rules/alert-drill"]
    results = run_checks(root, 0, ids, stack=stack, sprint="COVPT")
    passed(results, ids)
    drill = results["rules/alert-drill"]
    coverage = {row["alert"]: row for row in drill.data["coverage"]}
    assert coverage["ShopIdle"]["unit_tests"] == ["monitoring/tests/shop_test.yml"]
    assert coverage["ShopIdle"]["covered_by"] == ["unit_test"]
    assert coverage["ShopRefusing"]["covered_by"] == ["waiver"]
    report = _report(root, "COVPT")
    assert "Cobertura de alertas (toda regra de alerta dos arquivos de regras)" in report
    assert "| `ShopIdle` | `monitoring/rules/shop.rules.yml:" in report
    assert "| ✅ `monitoring/tests/shop_test.yml` | — | — | — | ✅ teste unitário |" in report
    assert "✅ unhealthy: disparou" in report and "| ✅ drill |" in report
    assert "4 regras de alerta, 0 sem cobertura." in report
    assert "falha injetada → pendente" in report and "Linha do tempo (segundos desde a primeira falha)" in report
    # A passed check that leaned on a waiver is waived, never passed.
    assert "`rules/alert-drill`" in report and "alert ShopRefusing waived" in report


# --- backup ----------------------------------------------------------------------------------------------------------


@pytest.mark.stack
def test_backup_checks_run_another_projects_script_from_the_description(shop: Path, shop_stack: Any) -> None:
    """Script, arguments and volumes from the description's `backup:`; the restore drill restores the Prometheus
    volume (there is no database volume, so nothing is seeded) and opens what the other volume holds."""
    need_tool("shellcheck")
    results = run_checks(shop, 1, BACKUP, stack=shop_stack, sprint="S1")
    passed(results, BACKUP)
    assert results["backup/run-live"].data["methods"] == {
        "shop_data": "directory-copy-empty",
        "prom_data": "tsdb-snapshot",
    }
    missing = results["backup/fail-closed"].data["scenarios"][0]
    assert missing["how"] == "a data directory with shop/ but no prom/", missing
    assert "prom_data" in missing["message"][-1] and missing["destination_changed"] == [], missing
    drill = results["backup/restore-drill"].data["drill"]
    assert drill["prom"]["answers"] == drill["prom"]["live"], drill
    assert "database" not in drill and drill["shop"]["status"] == "skipped", drill


@pytest.mark.stack
def test_backup_volume_the_description_does_not_know_is_an_error_at_its_spec_line(shop: Path, shop_stack: Any) -> None:
    text = SPEC.replace(
        "      - id: backup/script-static\n",
        "      - id: backup/script-static\n        with: {volumes: [shop_data, cart_data]}\n",
        1,
    )
    write_spec(shop, "BADVOL", text)
    try:
        result = run_checks(shop, 1, ["backup/script-static"], stack=shop_stack, sprint="BADVOL")[
            "backup/script-static"
        ]
    finally:
        (shop / "sprint" / "BADVOL.yaml").unlink()
    assert result.status is Status.ERRORED, explain(result)
    assert result.reason == (
        f"sprint/BADVOL.yaml:{_line(text, 'with: {volumes: [shop_data, cart_data]}')}: with.volumes[1]: volume "
        "'cart_data' is not in backup.volumes of deploy/stack.yaml (described: shop_data, prom_data)"
    )


# --- env_config ------------------------------------------------------------------------------------------------------


def test_settings_checks_start_another_service_with_other_variables(shop: Path) -> None:
    """Its command from the compose file (custom listen flags), its variables, defaults and settings path from the
    spec; the behaviour scenario waits out its cooldown."""
    results = run_checks(shop, 2, SETTINGS, sprint="S1")
    passed(results, SETTINGS)
    behaviour = results["env_config/behaviour"].data
    # The service starts its 2 s cooldown when it handles `mend`, a moment before the client sees the answer: the
    # check allows 50 ms for that (env_config's `not_before_s`), and so does this test.
    assert 1.95 <= behaviour["recovered_after_s"] < 4.0
    states = [step["settings"]["state"] for step in behaviour["timeline"] if "settings" in step]
    assert states == ["broken", "recovering", "ok"], behaviour["timeline"]
    assert results["env_config/defaults"].data["service_runs"][0]["argv"] == [
        "python3", "-m", "shop", "--bind-host", "127.0.0.1", "--bind-port",
        results["env_config/defaults"].data["service_runs"][0]["argv"][-1],
    ]  # fmt: skip
    outcomes = results["env_config/bad-values"].data["outcomes"]
    assert len(outcomes) == 6 and all(o["exit_code"] == 3 and o["message"] for o in outcomes), outcomes
    assert set(results["env_config/env-example"].data["variables_in_code"]) == {"SHOP_RETRIES", "SHOP_COOLDOWN_S"}


@pytest.mark.stack
def test_live_settings_of_another_running_service(shop: Path, shop_stack: Any) -> None:
    result = run_checks(shop, 2, ["env_config/live-settings"], stack=shop_stack, sprint="S1")[
        "env_config/live-settings"
    ]
    assert result.status is Status.PASSED, explain(result)
    assert result.data["settings"]["retries"] == 2 and result.data["environment"] == {}


def test_cooldown_ignored_fails_the_behaviour_naming_the_step(tmp_path: Path) -> None:
    root = make_shop_project(tmp_path / "shop")
    main = root / "services/shop/__main__.py"
    main.write_text(
        main.read_text().replace(
            'STATE["recover_at"] = time.monotonic() + COOLDOWN', 'STATE["recover_at"] = time.monotonic() + 1'
        )
    )
    commit_all(root, "cooldown ignored")
    result = run_checks(root, 2, ["env_config/behaviour"], sprint="S1")["env_config/behaviour"]
    assert result.status is Status.FAILED, explain(result)
    assert result.reason.startswith("step 'recovered': state 'ok' ")
    assert result.reason.endswith("after 'mend', before 2s (with SHOP_COOLDOWN_S=2)")


def test_settings_parameter_that_does_not_fit_is_one_line_at_its_spec_line(shop: Path) -> None:
    text = SPEC.replace(
        "defaults: {retries: 2, cooldown_s: 1}\n      - id: env_config/overrides",
        "defaults: {retries: 2, cooldwn_s: 1}\n      - id: env_config/overrides",
        1,
    )
    text = text.replace('with: {<<: *shop, values: ["x", "0", ""]}', 'with: {<<: *shop, service: prom, values: ["x"]}')
    write_spec(shop, "BADSET", text)
    try:
        results = run_checks(shop, 2, ["env_config/defaults", "env_config/bad-values"], sprint="BADSET")
    finally:
        (shop / "sprint" / "BADSET.yaml").unlink()
    defaults = results["env_config/defaults"]
    assert defaults.status is Status.ERRORED, explain(defaults)
    assert defaults.reason == (
        f"sprint/BADSET.yaml:{_line(text, 'defaults: {retries: 2, cooldwn_s: 1}')}: with.defaults.cooldwn_s: "
        "'cooldwn_s' is not a setting of `variables` (settings: retries, cooldown_s)"
    )
    bad = results["env_config/bad-values"]
    assert bad.status is Status.ERRORED, explain(bad)
    assert bad.reason.endswith(
        "with.service: service prom runs as 'prometheus' locally; this check starts a Python service itself"
    )


# --- exporter-fed panels: dashboard/panel-jobs on another project's dashboard, job and names ------------------------

BOARD = {
    "title": "Shop",
    "panels": [
        {
            "type": "timeseries",
            "title": "Orders per second",
            "datasource": {"type": "prometheus"},
            "targets": [{"refId": "A", "expr": "sum(rate(shop_orders_total[1m]))"}],
        }
    ],
}
PANELS_SPEC = """\
sealgate: 1
id: {id}
title: Shop panels
language: en
first_in_chain: true
tag: {id}-SEALED
stack: deploy/stack.yaml
objective: The shop's panels draw from the shop's own scrape job.
stages:
  - number: 4
    name: panels
    title: Panels
    checks:
      - id: dashboard/panel-jobs
        with: {{dashboard: dashboards/shop.json, panels: [{{title: Orders per second, job: {job}, exclusive: true}}]}}
criteria:
  - {{id: P1, title: Panels, stages: [4]}}
"""


@pytest.mark.stack
@pytest.mark.parametrize("job", ["shop-metrics", "orders"])
def test_panel_jobs_on_another_projects_dashboard_and_job(shop: Path, shop_stack: Any, job: str) -> None:
    sprint = "PANELS" if job == "shop-metrics" else "PANELS2"
    (shop / "dashboards").mkdir(exist_ok=True)
    (shop / "dashboards" / "shop.json").write_text(json.dumps(BOARD, indent=2))
    (shop / "sprint" / f"{sprint}.yaml").write_text(PANELS_SPEC.format(id=sprint, job=job))
    try:
        result = run_checks(shop, 4, ["dashboard/panel-jobs"], stack=shop_stack, sprint=sprint)["dashboard/panel-jobs"]
    finally:
        (shop / "sprint" / f"{sprint}.yaml").unlink()
    if job == "shop-metrics":
        assert result.status is Status.PASSED, explain(result)
        assert result.data["queries"][0]["selectors"] == {"shop_orders_total": {"shop-metrics": 1}}
    else:
        assert result.status is Status.FAILED, explain(result)
        assert [f.summary for f in result.findings] == [
            "panel 'Orders per second': Prometheus scrapes no target of job 'orders'",
            "panel 'Orders per second' (A): shop_orders_total has no series scraped by job 'orders' (it has series of "
            "shop-metrics)",
        ]

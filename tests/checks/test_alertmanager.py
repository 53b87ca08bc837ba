"""rules/alertmanager-config on Alertmanager configurations as teams write them: Slack-only, PagerDuty + e-mail,
kube-prometheus' template with its "null" receivers, prometheus-operator's generated one — each in a small project of
its own (a Prometheus that loads the rule files, an Alertmanager that mounts the configuration, the secrets its
integrations read), judged with the real amtool.

Trimmed real configurations are in alertmanager_fixtures/ (source, commit and licence in each file's header). The
allow-list of F9.10/F9.11 ("console mode", `webhook_hosts`/`integrations`) is tested on the reference project in
test_rules.py and test_delivery.py; here only what naming those parameters turns on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from checkrun import explain, run_checks
from conftest import commit_all, init_repo, need_tool

from sealgate.model.results import CheckResult, Severity, Status

FIXTURES = Path(__file__).resolve().parent / "alertmanager_fixtures"
CHECK = "rules/alertmanager-config"
AM = "monitoring/alertmanager.yml"
RULES = "monitoring/rules/app.yml"

# The Alertmanager reads every secret its integrations need from a compose secret (never from the repository).
COMPOSE = """\
services:
  prom:
    image: prom/prometheus:v2.51.0
    command: ["--config.file=/etc/prometheus/prometheus.yml"]
    volumes:
      - ./monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro
      - ./monitoring/rules:/etc/prometheus/rules:ro
  am:
    image: prom/alertmanager:v0.27.0
    command: ["--config.file=/etc/alertmanager/alertmanager.yml"]
    volumes: ["./monitoring/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"]
    secrets: [slack_webhook_url, pagerduty_routing_key, smtp_password, pagerduty_team_x, pagerduty_team_y,
              pagerduty_team_db]
secrets:
  slack_webhook_url: {environment: SLACK_WEBHOOK_URL}
  pagerduty_routing_key: {environment: PAGERDUTY_ROUTING_KEY}
  smtp_password: {environment: SMTP_PASSWORD}
  pagerduty_team_x: {environment: PAGERDUTY_TEAM_X}
  pagerduty_team_y: {environment: PAGERDUTY_TEAM_Y}
  pagerduty_team_db: {environment: PAGERDUTY_TEAM_DB}
"""
DESCRIPTION = """\
sealgate_stack: 1
compose: {file: docker-compose.yml}
services:
  prom: {role: prometheus, port: 9090, ready: /-/ready}
  am: {role: alertmanager, port: 9093, ready: /-/ready}
"""
PROMETHEUS = """\
rule_files: [rules/*.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: ['am:9093']}]
"""
APP_RULES = """\
groups:
  - name: app
    rules:
      - alert: AppDown
        expr: up{job="app"} == 0
        for: 1m
        labels: {severity: critical}
        annotations: {summary: the app is down}
      - alert: AppSlow
        expr: histogram_quantile(0.99, sum by (le) (rate(app_latency_seconds_bucket[5m]))) > 2
        for: 5m
        labels: {severity: warning}
        annotations: {summary: the app is slow}
"""
SPEC = """\
sealgate: 1
id: AM
title: Alerting as the team writes it
language: en
first_in_chain: true
tag: AM-SEALED
objective: Every alert the rules emit reaches someone.
stages:
  - number: 0
    name: rules
    title: Alerting
    checks:
      - id: rules/alertmanager-config
{with_}
      - id: rules/routing
criteria:
  - {{id: A1, title: Alerting, stages: [0]}}
"""

# A team's Slack-only configuration: one receiver, its webhook URL read from the compose secret.
SLACK_ONLY = """\
route:
  receiver: slack
  group_by: [alertname]
receivers:
  - name: slack
    slack_configs:
      - api_url_file: /run/secrets/slack_webhook_url
        channel: '#alerts'
        send_resolved: true
"""
# Critical alerts fall through to the root route, whose receiver has no integration: they page nobody.
BLACKHOLE = """\
route:
  receiver: blackhole
  routes:
    - matchers: ['severity="warning"']
      receiver: slack
receivers:
  - name: blackhole
  - name: slack
    slack_configs:
      - api_url_file: /run/secrets/slack_webhook_url
        channel: '#alerts'
"""


def make_project(root: Path, alertmanager: str, with_: str = "", rules: dict[str, str] | None = None) -> Path:
    """A git repository with the files above, `alertmanager` as the Alertmanager configuration and `with_` (YAML
    lines) as the check's parameters."""
    init_repo(root)
    files = {
        "docker-compose.yml": COMPOSE,
        "stack.yaml": DESCRIPTION,
        "monitoring/prometheus.yml": PROMETHEUS,
        AM: alertmanager,
        "sprint/AM.yaml": SPEC.format(with_=_indented(with_)),
        ".gitignore": "artifacts/\n.sealgate/\n",
        **(rules if rules is not None else {RULES: APP_RULES}),
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    commit_all(root, "alerting")
    return root


def _indented(with_: str) -> str:
    if not with_:
        return ""
    return "        with:\n" + "".join(f"          {line}\n" for line in with_.strip().splitlines())


def judge(root: Path) -> CheckResult:
    need_tool("amtool")
    return run_checks(root, 0, [CHECK], sprint="AM")[CHECK]


def errors(result: CheckResult) -> list[str]:
    return [
        f"{f.location.file}:{f.location.line}: {f.summary}" for f in result.findings if f.severity is Severity.ERROR
    ]


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def dropped(receiver: str, line: int, takes: str) -> str:
    """The finding about a receiver with no integration that alerts reach, at its line of the configuration."""
    return (
        f"{AM}:{line}: receiver {receiver} has no integration, so the alerts that reach it are dropped: {takes}. Give "
        "it an integration, or name it in `with.sinks` if they must go nowhere"
    )


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def kube_prometheus_rules() -> dict[str, str]:
    """The app's rules and kube-prometheus' general rules (TargetDown; Watchdog and InfoInhibitor at severity none)."""
    return {RULES: APP_RULES, "monitoring/rules/general.yml": fixture("kube-prometheus.general.rules.yml")}


def kube_prometheus_filled() -> str:
    """kube-prometheus' template as a team fills it in: Default posts to Slack, Critical pages PagerDuty; Watchdog
    and "null" stay without an integration."""
    config = yaml.safe_load(fixture("kube-prometheus.alertmanager.yml"))
    integrations = {
        "Default": {"slack_configs": [{"api_url_file": "/run/secrets/slack_webhook_url", "channel": "#alerts"}]},
        "Critical": {"pagerduty_configs": [{"routing_key_file": "/run/secrets/pagerduty_routing_key"}]},
    }
    for receiver in config["receivers"]:
        receiver.update(integrations.get(receiver["name"], {}))
    return yaml.safe_dump(config, sort_keys=False)


# --- integrations pass with the check's defaults ----------------------------------------------------------------------


def test_slack_only_config_passes_with_no_parameters(tmp_path: Path) -> None:
    result = judge(make_project(tmp_path / "p", SLACK_ONLY))
    assert result.status is Status.PASSED, explain(result)
    assert result.data["allowed"] == "any destination"
    assert result.data["integrations"] == {"slack": ["slack_configs"]}
    assert result.data["secret_files"] == {"/run/secrets/slack_webhook_url": "compose secret slack_webhook_url"}
    assert result.data["receivers_without_integration"] == {}


def test_pagerduty_and_email_config_passes(tmp_path: Path) -> None:
    """Alertmanager's own example (trimmed): e-mail and PagerDuty receivers under nested routes, `continue` and
    inhibition, every secret read from a file."""
    result = judge(make_project(tmp_path / "p", fixture("alertmanager-simple.yml")))
    assert result.status is Status.PASSED, explain(result)
    assert result.data["integrations"] == {
        "team-X-mails": ["email_configs"],
        "team-X-pager": ["email_configs", "pagerduty_configs"],
        "team-Y-mails": ["email_configs"],
        "team-Y-pager": ["pagerduty_configs"],
        "team-DB-pager": ["pagerduty_configs"],
    }
    assert set(result.data["secret_files"]) == {
        "/run/secrets/smtp_password",
        "/run/secrets/pagerduty_team_x",
        "/run/secrets/pagerduty_team_y",
        "/run/secrets/pagerduty_team_db",
    }


def test_inline_secret_in_a_slack_only_config_is_still_a_finding(tmp_path: Path) -> None:
    config = SLACK_ONLY.replace("api_url_file: /run/secrets/slack_webhook_url", "api_url: http://127.0.0.1:9/hook")
    result = judge(make_project(tmp_path / "p", config))
    assert result.status is Status.FAILED, explain(result)
    assert errors(result) == [
        f"{AM}:{line_of(config, 'api_url:')}: $.receivers[0].slack_configs[0].api_url holds a secret in the "
        "configuration (committed with it): read it from a file with `api_url_file`"
    ]


# --- receivers that deliver nowhere -----------------------------------------------------------------------------------


def test_receiver_without_integration_reached_by_the_root_route_for_critical_alerts_fails(tmp_path: Path) -> None:
    result = judge(make_project(tmp_path / "p", BLACKHOLE))
    assert result.status is Status.FAILED, explain(result)
    assert errors(result) == [
        dropped(
            "blackhole",
            line_of(BLACKHOLE, "- name: blackhole"),
            "the root route $.route (line 1) takes severity=critical alerts and the rules' alert AppDown",
        )
    ]
    assert result.data["receivers_without_integration"] == {
        "blackhole": {"sink": False, "reached_by": {"$.route": {"severities": ["critical"], "alerts": ["AppDown"]}}}
    }


def test_the_same_receiver_named_as_a_sink_passes(tmp_path: Path) -> None:
    result = judge(make_project(tmp_path / "p", BLACKHOLE, "sinks: [blackhole]"))
    assert result.status is Status.PASSED, explain(result)
    assert result.data["receivers_without_integration"] == {"blackhole": {"sink": True, "reached_by": {}}}


def test_kube_prometheus_null_receivers_for_watchdog_pass_by_default(tmp_path: Path) -> None:
    """Watchdog and InfoInhibitor are emitted at severity none and routed by name to receivers with no integration:
    intended sinks. Every severity that pages (critical, warning) reaches Slack or PagerDuty."""
    result = judge(make_project(tmp_path / "p", kube_prometheus_filled(), rules=kube_prometheus_rules()))
    assert result.status is Status.PASSED, explain(result)
    assert result.data["receivers_without_integration"] == {
        "Watchdog": {"sink": False, "reached_by": {}},
        "null": {"sink": False, "reached_by": {}},
    }


def test_kube_prometheus_template_as_shipped_drops_every_paging_alert(tmp_path: Path) -> None:
    """The template unfilled: Default (warnings, the root route's) and Critical deliver nowhere and are named with
    the routes that reach them; Watchdog and "null" still are not."""
    config = fixture("kube-prometheus.alertmanager.yml")
    result = judge(make_project(tmp_path / "p", config, rules=kube_prometheus_rules()))
    assert result.status is Status.FAILED, explain(result)
    default, critical = line_of(config, '- "name": "Default"'), line_of(config, '- "name": "Critical"')
    root, critical_route = line_of(config, '"route":'), line_of(config, '- "severity = critical"\n    "receiver"') - 1
    assert errors(result) == [
        dropped(
            "Default",
            default,
            f"the root route $.route (line {root}) takes severity=warning alerts and the rules' alerts AppSlow, "
            "TargetDown",
        ),
        dropped(
            "Critical",
            critical,
            f"route $.route.routes[2] (line {critical_route}) takes severity=critical alerts and the rules' alert "
            "AppDown",
        ),
    ]


def test_kube_prometheus_warnings_falling_to_the_root_receiver_are_routed_not_failed(tmp_path: Path) -> None:
    """rules/routing on the filled template: warnings reach Default (Slack) through the root route, as kube-prometheus
    intends. That is said, as information at each rule's line; it fails nothing."""
    root = make_project(tmp_path / "p", kube_prometheus_filled(), rules=kube_prometheus_rules())
    need_tool("amtool")
    result = run_checks(root, 0, [CHECK, "rules/routing"], sprint="AM")["rules/routing"]
    assert result.status is Status.PASSED, explain(result)
    assert result.data["rules_routed"]["AppDown"] == "Critical"
    assert result.data["rules_routed"]["Watchdog"] == "Watchdog"
    infos = {f.summary for f in result.findings if f.severity is Severity.INFO}
    assert "alert AppSlow (severity=warning) is handled by no route: it only reaches the default receiver Default" in (
        infos
    )


def test_a_watchdog_rule_at_a_paging_severity_makes_its_null_receiver_a_finding(tmp_path: Path) -> None:
    """The same routes, but this project's Watchdog is `severity: critical`: the route matching its name now takes
    an alert that pages, and its receiver drops it."""
    rules = kube_prometheus_rules()
    rules["monitoring/rules/general.yml"] = rules["monitoring/rules/general.yml"].replace(
        "expr: vector(1)\n    labels:\n      severity: none", "expr: vector(1)\n    labels:\n      severity: critical"
    )
    config = kube_prometheus_filled()
    result = judge(make_project(tmp_path / "p", config, rules=rules))
    assert result.status is Status.FAILED, explain(result)
    assert errors(result) == [
        dropped(
            "Watchdog",
            line_of(config, "- name: Watchdog"),
            f"route $.route.routes[0] (line {line_of(config, '- matchers:')}) takes the rules' alert Watchdog",
        )
    ]


def test_operator_generated_null_root_receiver_is_a_finding_until_named_a_sink(tmp_path: Path) -> None:
    """prometheus-operator's configuration sends what no namespace route takes to "null". The rules' alerts carry no
    namespace label here, so they all end there: a finding by default; `sinks: [null]` (YAML null, the receiver
    named "null") says it is meant."""
    config = fixture("prometheus-operator.slack.yml")
    result = judge(make_project(tmp_path / "p", config))
    assert result.status is Status.FAILED, explain(result)
    root = line_of(config, "route:\n  receiver")
    assert errors(result) == [
        dropped(
            "null",
            line_of(config, '- name: "null"'),
            f"the root route $.route (line {root}) takes severity=critical and severity=warning alerts and the rules' "
            "alerts AppDown, AppSlow",
        )
    ]
    assert result.data["integrations"] == {"mynamespace/myamc/test": ["slack_configs"]}

    named = judge(make_project(tmp_path / "q", config, "sinks: [null]"))
    assert named.status is Status.PASSED, explain(named)
    assert named.data["receivers_without_integration"] == {"null": {"sink": True, "reached_by": {}}}


def test_sink_that_names_no_receiver_is_an_error_at_its_spec_line(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", BLACKHOLE, "sinks: [blackhol]")
    result = judge(root)
    assert result.status is Status.ERRORED, explain(result)
    spec_line = line_of((root / "sprint/AM.yaml").read_text(), "sinks: [blackhol]")
    assert result.reason == (
        f"sprint/AM.yaml:{spec_line}: with.sinks[0]: no receiver 'blackhol' in {AM} (receivers: blackhole, slack)"
    )


def test_a_sink_that_delivers_is_a_warning_only(tmp_path: Path) -> None:
    result = judge(make_project(tmp_path / "p", SLACK_ONLY, "sinks: [slack]"))
    assert result.status is Status.PASSED, explain(result)
    assert [f.summary for f in result.findings] == [
        "with.sinks[0]: receiver slack delivers through slack_configs: it is no sink (remove it from sinks)"
    ]


def test_rule_files_that_cannot_be_found_say_why_and_what_to_do(tmp_path: Path) -> None:
    """Only a receiver with no integration needs the rules; without a described Prometheus the check cannot tell
    which alerts reach it, and says so (errored: it could not judge), naming both ways out."""
    root = make_project(tmp_path / "p", BLACKHOLE)
    (root / "stack.yaml").write_text(
        DESCRIPTION.replace("  prom: {role: prometheus, port: 9090, ready: /-/ready}\n", "")
    )
    commit_all(root, "no Prometheus described")
    result = judge(root)
    assert result.status is Status.ERRORED, explain(result)
    assert result.reason.startswith(
        "receiver blackhole has no integration; to tell whether alerts the rules emit reach it, this check reads the "
        "rule files, and: "
    )
    assert "role 'prometheus'" in result.reason and result.reason.endswith("(or name the receiver in `with.sinks`)")
    # Given the rule files, it judges.
    spec = root / "sprint/AM.yaml"
    spec.write_text(SPEC.format(with_=_indented(f"rules: [{RULES}]")))
    commit_all(root, "rules named")
    assert judge(root).status is Status.FAILED


# --- the allow-list: only when the spec names it ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("with_", "expected"),
    [
        ("integrations: [slack_configs]", []),
        ("webhook_hosts: []\nintegrations: [slack_configs]", []),
        (
            "integrations: [pagerduty_configs]",
            ["receiver slack uses slack_configs: only pagerduty_configs are allowed (no webhook)"],
        ),
        (
            "webhook_hosts: [hooks]",
            ["receiver slack uses slack_configs: only webhooks to hooks (no external integration) are allowed"],
        ),
    ],
    ids=["slack-allowed", "no-webhook-slack-allowed", "slack-not-allowed", "console-mode"],
)
def test_naming_webhook_hosts_or_integrations_restricts(tmp_path: Path, with_: str, expected: list[str]) -> None:
    result = judge(make_project(tmp_path / "p", SLACK_ONLY, with_))
    assert [f.summary for f in result.findings if f.severity is Severity.ERROR] == expected, explain(result)
    assert result.status is (Status.FAILED if expected else Status.PASSED)


def test_webhook_outside_the_allowed_hosts_fails_when_no_webhook_is_allowed(tmp_path: Path) -> None:
    config = SLACK_ONLY + "  - name: relay\n    webhook_configs:\n      - url: http://relay.example.org/alerts\n"
    result = judge(make_project(tmp_path / "p", config, "webhook_hosts: []\nintegrations: [slack_configs]"))
    assert errors(result) == [
        f"{AM}:{line_of(config, 'url: http://relay')}: receiver relay posts to http://relay.example.org/alerts, but "
        "no webhook is allowed"
    ]
    # Without the allow-list the same webhook is one more destination.
    assert judge(make_project(tmp_path / "q", config)).status is Status.PASSED

"""rules/receiver-delivery, and rules/alertmanager-config with integrations allowed: on this project's stack (F9.11:
critical alerts to Slack and PagerDuty through integrations-standin, warnings to the console), with the real
Alertmanager and the real stand-in as local processes (only the services the check talks to: no Prometheus needed,
the check posts its alerts to Alertmanager itself).

Passing: the repository's configuration. Failing, each for its own reason: the PagerDuty integration sent to the
console, a warning routed to on-call, a Slack message the service refuses (no_text), a secret written inline, a
secret file no compose secret provides."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from checkrun import explain, run_checks
from conftest import commit_all, need, need_tool, reference_description
from stack_fixtures import new_run_dir

from sealgate.backends.local import LocalBackend
from sealgate.backends.provision import find_binary
from sealgate.checks.delivery import names_alert, pagerduty_problems, slack_problems
from sealgate.model.results import CheckResult, Severity, Status

AM_CONFIG = "stack/prometheus/alertmanager.yml"
SPEC = "sprint/F9.11.yaml"
CHECKS = ["rules/alertmanager-config", "rules/receiver-delivery"]


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


def quick(root: Path, within_s: int = 8) -> None:
    """The copy's spec waits `within_s` for deliveries (a missing one is the point of a failing test)."""
    marker = "receiver: integrations-standin  # stands in"
    edit(root, SPEC, marker, f"within_s: {within_s}\n          {marker}")


Start = Callable[[], LocalBackend]


@pytest.fixture
def am_stack(project_copy: Path) -> Iterator[tuple[Path, Start]]:
    """Alertmanager, console-log and integrations-standin of the project copy, started by the test (after its edits)."""
    need(find_binary("alertmanager") is not None, "alertmanager not installed (bash .ci/setup-system.sh installs it)")
    need_tool("amtool")
    run_dir = new_run_dir("sealgate-delivery-")
    holder: dict[str, LocalBackend] = {}

    def start() -> LocalBackend:
        commit_all(project_copy, "edits of the test")
        backend = LocalBackend(
            project_copy,
            run_dir,
            progress=lambda line: None,
            description=reference_description(project_copy),
            allow_download=False,
            only=["console-log", "integrations-standin", "alertmanager"],
        )
        holder["backend"] = backend
        backend.up(timeout=60)
        return backend

    try:
        yield project_copy, start
    finally:
        if "backend" in holder:
            holder["backend"].down(remove_volumes=True)
        shutil.rmtree(run_dir, ignore_errors=True)


def run(root: Path, backend: LocalBackend) -> dict[str, CheckResult]:
    return run_checks(root, 2, CHECKS, stack=backend, sprint="F9.11")


@pytest.mark.stack
def test_critical_reaches_slack_and_pagerduty_and_warning_neither(am_stack: tuple[Path, Start]) -> None:
    root, start = am_stack
    backend = start()
    results = run(root, backend)
    config = results["rules/alertmanager-config"]
    assert config.status is Status.PASSED, explain(config)
    assert config.data["integrations"] == {"oncall-critical": ["pagerduty_configs", "slack_configs"]}
    assert config.data["secret_files"] == {
        "/run/secrets/slack_webhook_url": "compose secret slack_webhook_url",
        "/run/secrets/pagerduty_routing_key": "compose secret pagerduty_routing_key",
    }
    result = results["rules/receiver-delivery"]
    assert result.status is Status.PASSED, explain(result)
    alerts = result.data["alerts"]
    for name in ("CircuitBreakerOpen", "APIDown"):
        assert alerts[name]["routed_to"] == ["oncall-critical"]
        seen = alerts[name]["deliveries"]
        pagerduty = [d for d in seen if d["api"] == "pagerduty"]
        assert [d["event_action"] for d in pagerduty] == ["trigger", "resolve"]
        assert pagerduty[0]["dedup"] == pagerduty[1]["dedup"]
        assert any(d["api"] == "slack" and d["status"] == 200 for d in seen)
    for name in ("LLMHighLatency", "LLMErrorRateHigh"):
        assert alerts[name]["routed_to"] == ["console-log-warning"] and alerts[name]["deliveries"] == []


@pytest.mark.stack
def test_pagerduty_sent_to_the_console_fails(am_stack: tuple[Path, Start]) -> None:
    root, start = am_stack
    quick(root)
    # The PagerDuty integration dropped from the on-call receiver: critical alerts page nobody.
    config = yaml.safe_load((root / AM_CONFIG).read_text())
    oncall = next(r for r in config["receivers"] if r["name"] == "oncall-critical")
    del oncall["pagerduty_configs"]
    (root / AM_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    results = run(root, start())
    assert results["rules/alertmanager-config"].status is Status.PASSED
    result = results["rules/receiver-delivery"]
    assert result.status is Status.FAILED
    summaries = [f.summary for f in result.findings if f.severity is Severity.ERROR]
    assert summaries == [
        "CircuitBreakerOpen: no PagerDuty trigger event about it reached integrations-standin within 8s",
        "APIDown: no PagerDuty trigger event about it reached integrations-standin within 8s",
    ]


@pytest.mark.stack
def test_warning_routed_to_oncall_fails(am_stack: tuple[Path, Start]) -> None:
    root, start = am_stack
    quick(root)
    edit(root, AM_CONFIG, "      receiver: console-log-warning", "      receiver: oncall-critical")
    result = run(root, start())["rules/receiver-delivery"]
    assert result.status is Status.FAILED
    summaries = [f.summary for f in result.findings if f.severity is Severity.ERROR]
    assert len(summaries) == 2, summaries
    for name in ("LLMHighLatency", "LLMErrorRateHigh"):
        assert any(
            s.startswith(f"{name} (alertname={name} severity=warning) must reach no slack/pagerduty receiver, but ")
            and s.endswith("Alertmanager routed it to oncall-critical")
            for s in summaries
        ), summaries


@pytest.mark.stack
def test_malformed_slack_message_is_refused_and_fails(am_stack: tuple[Path, Start]) -> None:
    """A Slack template that renders nothing: the stand-in refuses it as Slack would (400 no_text)."""
    root, start = am_stack
    quick(root)
    config = yaml.safe_load((root / AM_CONFIG).read_text())
    slack = next(r for r in config["receivers"] if r["name"] == "oncall-critical")["slack_configs"][0]
    slack.update(title="", text="", fallback="")
    (root / AM_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    result = run(root, start())["rules/receiver-delivery"]
    assert result.status is Status.FAILED
    summaries = [f.summary for f in result.findings if f.severity is Severity.ERROR]
    assert any(
        s.startswith("integrations-standin refused a slack request (HTTP 400) while the check ran") for s in summaries
    ), summaries
    assert "CircuitBreakerOpen: no Slack message about it reached integrations-standin within 8s" in summaries
    # PagerDuty was not touched: no finding about it.
    assert not any("PagerDuty" in s for s in summaries)


# --- rules/alertmanager-config: integrations and their secrets (static) ----------------------------------------------


def test_inline_secret_fails_naming_the_file_field(project_copy: Path) -> None:
    need_tool("amtool")
    edit(
        project_copy,
        AM_CONFIG,
        "      - routing_key_file: /run/secrets/pagerduty_routing_key",
        "      - routing_key: 0123456789abcdef0123456789abcdef",
    )
    result = run_checks(project_copy, 2, ["rules/alertmanager-config"], sprint="F9.11")["rules/alertmanager-config"]
    assert result.status is Status.FAILED
    (finding,) = [f for f in result.findings if f.severity is Severity.ERROR]
    assert finding.summary == (
        "$.receivers[1].pagerduty_configs[0].routing_key holds a secret in the configuration (committed with it): "
        "read it from a file with `routing_key_file`"
    )
    assert finding.location.file == AM_CONFIG and finding.location.line is not None


def test_secret_file_no_compose_secret_provides_fails(project_copy: Path) -> None:
    need_tool("amtool")
    edit(project_copy, AM_CONFIG, "api_url_file: /run/secrets/slack_webhook_url", "api_url_file: /etc/slack-url")
    result = run_checks(project_copy, 2, ["rules/alertmanager-config"], sprint="F9.11")["rules/alertmanager-config"]
    assert result.status is Status.FAILED
    (finding,) = [f for f in result.findings if f.severity is Severity.ERROR]
    assert finding.summary == (
        "$.receivers[1].slack_configs[0].api_url_file: /etc/slack-url is given to service alertmanager by no "
        "compose secret or bind mount in stack/docker-compose.yml, so Alertmanager cannot read it"
    )


def test_integration_not_allowed_fails(project_copy: Path) -> None:
    need_tool("amtool")
    edit(project_copy, SPEC, "integrations: [slack_configs, pagerduty_configs]", "integrations: [slack_configs]")
    result = run_checks(project_copy, 2, ["rules/alertmanager-config"], sprint="F9.11")["rules/alertmanager-config"]
    assert result.status is Status.FAILED
    (finding,) = [f for f in result.findings if f.severity is Severity.ERROR]
    assert finding.summary == (
        "receiver oncall-critical uses pagerduty_configs: only webhooks to console-log and slack_configs are allowed"
    )


# --- the formats, as the check judges them ---------------------------------------------------------------------------


def test_formats_and_alert_names() -> None:
    assert slack_problems({"attachments": [{"fallback": "x"}]}) == []
    assert slack_problems({"text": ""}) == ["no text, blocks or attachment text/fallback (no_text)"]
    assert slack_problems(["x"]) == ["not a JSON object (invalid_payload)"]
    trigger = {
        "routing_key": "<redacted: 32 characters>",
        "event_action": "trigger",
        "payload": {"summary": "[FIRING] APIDown", "source": "am", "severity": "critical"},
    }
    assert pagerduty_problems(trigger) == []
    assert pagerduty_problems({**trigger, "event_action": "resolve"}) == ["a resolve without dedup_key"]
    assert pagerduty_problems({**trigger, "payload": {"summary": "", "source": "am", "severity": "page"}}) == [
        "payload.summary is empty",
        "payload.severity 'page' is not one of ('critical', 'error', 'warning', 'info')",
    ]
    assert names_alert(trigger, "APIDown") and not names_alert(trigger, "API")
    assert not names_alert({"routing_key": "APIDown"}, "APIDown")  # the routing key is not the message

"""The Prometheus and Alertmanager configuration, judged by the real tools (promtool, amtool, a real Alertmanager
delivering to a real console-log) and against the metrics the real API exports."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import need, need_tool
from prometheus_client.parser import text_string_to_metric_families
from stack_content_support import STACK, free_port, http, http_json, python_service, read_lines, stop, wait_http

pytestmark = pytest.mark.stack

PROM = STACK / "prometheus"
ALERTS = PROM / "alerts"
EXPECTED_RULES = {
    # alert: (group, for, severity)
    "LLMHighLatency": ("llm", "2m", "warning"),
    "LLMErrorRateHigh": ("llm", "5m", "warning"),
    "CircuitBreakerOpen": ("llm", "1m", "critical"),
    "LLMProviderDown": ("llm", "30s", "critical"),
    "APIDown": ("api", "1m", "critical"),
    "APIHighErrorRate": ("api", "5m", "warning"),  # removed by F9.10 (no http_requests_total), restored by F9.11
}


def run(*argv: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)


def rules() -> dict[str, tuple[str, dict[str, Any]]]:
    found = {}
    for path in sorted(ALERTS.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found[rule["alert"]] = (group["name"], rule)
    return found


def test_rules_declared_as_the_seed_says() -> None:
    found = rules()
    assert sorted(found) == sorted(EXPECTED_RULES)
    for alert, (group, duration, severity) in EXPECTED_RULES.items():
        rule_group, rule = found[alert]
        assert (rule_group, rule["for"], rule["labels"]["severity"]) == (group, duration, severity), alert
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], alert
    assert found["APIDown"][1]["expr"].strip() == 'up{job="techno-os-api"} == 0'
    # As the seed wrote it (§2.3), whitespace aside.
    assert " ".join(found["APIHighErrorRate"][1]["expr"].split()) == (
        'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05'
    )


def test_promtool_check_rules() -> None:
    need_tool("promtool")
    result = run("promtool", "check", "rules", ALERTS / "llm.yml", ALERTS / "api.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout and "SUCCESS: 2 rules found" in result.stdout


def test_promtool_test_rules() -> None:
    need_tool("promtool")
    files = sorted((PROM / "tests").glob("*.yml"))
    result = run("promtool", "test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files) == 2
    # Each rule is tested both firing and silent.
    tests = [case for path in files for case in yaml.safe_load(path.read_text())["tests"]]
    firing, silent = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing == silent == set(EXPECTED_RULES)


def test_prometheus_config_is_the_seeds_and_checks(tmp_path: Path) -> None:
    need_tool("promtool")
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    assert config == {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": ["/etc/prometheus/alerts/*.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]},
        "scrape_configs": [
            {
                "job_name": "techno-os-api",
                "static_configs": [{"targets": ["api:8000"]}],
                "metrics_path": "/metrics",
            },
            {  # F9.11: PostgreSQL's metrics for the dashboard's database panel
                "job_name": "postgres",
                "static_configs": [{"targets": ["postgres-exporter:9187"]}],
                "metrics_path": "/metrics",
            },
        ],
    }
    # promtool on the host cannot see the container path of rule_files: check a copy pointing at the repo's rules.
    config["rule_files"] = [str(ALERTS / "*.yml")]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = run("promtool", "check", "config", copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout and "SUCCESS: 2 rules found" in result.stdout


def test_rules_only_use_metrics_the_api_exports() -> None:
    need(importlib.util.find_spec("prometheus_client") is not None, "prometheus_client missing (project dependency)")
    used = set()
    for _, rule in rules().values():
        used |= set(re.findall(r"\b(llm_[a-z_]+)", rule["expr"]))
    assert used, "the llm rules read no llm_* metric?"
    with python_service("app") as api:
        assert api.port, api.first_lines
        _, raw = http(api.base + "/metrics")
    exported = {s.name for f in text_string_to_metric_families(raw.decode()) for s in f.samples}
    assert used <= exported, f"not exported by the API: {sorted(used - exported)}"


# --- Alertmanager ---------------------------------------------------------------------------------------------


def test_alertmanager_config_pages_critical_and_keeps_warnings_on_the_console() -> None:
    """F9.11: critical -> oncall-critical (console copy, Slack, PagerDuty, their secrets from files); every other
    receiver is console-only, as in F9.10."""
    need_tool("amtool")
    config = yaml.safe_load((PROM / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            assert re.fullmatch(r"http://console-log:\d+/alerts", hook["url"]), hook
            assert hook["send_resolved"] is True
        if receiver["name"] != "oncall-critical":
            assert receiver["name"].startswith("console-log")
            assert set(receiver) == {"name", "webhook_configs"}, receiver  # no email/slack/pagerduty/...
            continue
        assert set(receiver) == {"name", "webhook_configs", "slack_configs", "pagerduty_configs"}
        (slack,) = receiver["slack_configs"]
        (pagerduty,) = receiver["pagerduty_configs"]
        assert slack["api_url_file"] == "/run/secrets/slack_webhook_url" and "api_url" not in slack
        assert pagerduty["routing_key_file"] == "/run/secrets/pagerduty_routing_key" and "routing_key" not in pagerduty
        assert slack["send_resolved"] is True and pagerduty["send_resolved"] is True
    result = run("amtool", "check-config", PROM / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=CircuitBreakerOpen"], "oncall-critical"),
        (["severity=warning", "alertname=LLMHighLatency"], "console-log-warning"),
        (["severity=info"], "console-log"),
    ],
)
def test_amtool_routes(labels: list[str], receiver: str) -> None:
    need_tool("amtool")
    config = f"--config.file={PROM / 'alertmanager.yml'}"
    ok = run("amtool", "config", "routes", "test", config, f"--verify.receivers={receiver}", *labels)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = run("amtool", "config", "routes", "test", config, "--verify.receivers=nobody", *labels)
    assert wrong.returncode == 1  # the verification really compares


@contextlib.contextmanager
def alertmanager(tmp: Path, sink_port: int) -> Iterator[str]:
    """A real Alertmanager with the repository's config, webhooks rewritten to a local console-log."""
    text = (PROM / "alertmanager.yml").read_text()
    config = tmp / "alertmanager.yml"
    config.write_text(re.sub(r"http://console-log:\d+/", f"http://127.0.0.1:{sink_port}/", text))
    port = free_port()
    log = (tmp / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus-alertmanager",
            f"--config.file={config}",
            f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", 20, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        log.close()


def test_alert_reaches_console_log_through_real_alertmanager(tmp_path: Path) -> None:
    need_tool("prometheus-alertmanager")
    with python_service("console_log", listen_on="stderr") as sink, alertmanager(tmp_path, sink.port or 0) as am:
        assert sink.port, sink.first_lines
        alerts = [
            {
                "labels": {"alertname": "CircuitBreakerOpen", "severity": "critical", "instance": "api:8000"},
                "annotations": {"summary": "breaker open", "description": "drill"},
            },
            {
                "labels": {"alertname": "LLMHighLatency", "severity": "warning", "provider": "sim", "model": "sim-1"},
                "annotations": {"summary": "slow", "description": "drill"},
            },
        ]
        assert http_json(am + "/api/v2/alerts", alerts)[0] == 200
        # group_wait is 1s: both notifications arrive within seconds, one flushed line per alert.
        lines = read_lines(sink.proc.stdout, 2, timeout=20)
    assert any(
        line.startswith("console-log: FIRING alertname=CircuitBreakerOpen severity=critical receiver=oncall-critical")
        for line in lines
    ), lines
    assert any(
        line.startswith("console-log: FIRING alertname=LLMHighLatency severity=warning receiver=console-log-warning")
        for line in lines
    ), lines

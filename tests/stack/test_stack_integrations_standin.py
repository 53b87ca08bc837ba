"""integrations-standin (stack/integrations_standin): the stand-in for Slack's incoming webhooks and PagerDuty's Events
API v2, run for real as a process on 127.0.0.1 (port chosen by the kernel). It answers like the real services —
valid requests accepted, malformed ones refused with their errors — and records what it received, secrets masked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import PROJECT_ROOT

KEY = "0123456789abcdef0123456789abcdef"  # a 32-character routing key (a test value)
WEBHOOK = "/services/T0TEST/B0TEST/tokenpart42"
TRIGGER = {
    "routing_key": KEY,
    "event_action": "trigger",
    "dedup_key": "group-1",
    "payload": {
        "summary": "[FIRING] CircuitBreakerOpen: breaker open",
        "source": "alertmanager",
        "severity": "critical",
    },
}


@pytest.fixture(scope="module")
def standin() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "integrations_standin", "--host", "127.0.0.1", "--port", "0"],
        cwd=PROJECT_ROOT / "stack",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", first)
    assert match, first
    try:
        yield match.group(1), proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def deliveries(base: str) -> list[dict[str, Any]]:
    return requests.get(f"{base}/deliveries", timeout=5).json()["deliveries"]


def last(base: str) -> dict[str, Any]:
    return deliveries(base)[-1]


# --- Slack ------------------------------------------------------------------------------------------------------------


def test_slack_message_is_accepted_and_recorded_without_the_webhook_token(standin: tuple[str, Any]) -> None:
    base, _proc = standin
    message = {"channel": "#oncall", "attachments": [{"title": "[FIRING] APIDown", "fallback": "APIDown firing"}]}
    answer = requests.post(base + WEBHOOK, json=message, timeout=5)
    assert (answer.status_code, answer.text) == (200, "ok")
    entry = last(base)
    assert entry["api"] == "slack" and entry["status"] == 200 and entry["accepted"] is True
    assert entry["payload"] == message
    assert entry["path"] == "/services/<redacted>" and "tokenpart42" not in json.dumps(deliveries(base))


def test_slack_form_encoded_payload_is_read_as_slack_reads_it(standin: tuple[str, Any]) -> None:
    base, _proc = standin
    answer = requests.post(base + WEBHOOK, data={"payload": json.dumps({"text": "hello"})}, timeout=5)
    assert (answer.status_code, answer.text) == (200, "ok")
    assert last(base)["payload"] == {"text": "hello"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "invalid_payload"),
        (b'["a", "list"]', "invalid_payload"),
        (b'{"text": 42}', "invalid_payload"),
        (b'{"channel": "#oncall"}', "no_text"),
        (b'{"text": "   "}', "no_text"),
        (b'{"attachments": [{"title": "x", "fallback": "", "text": ""}]}', "no_text"),
        (json.dumps({"text": "x", "attachments": [{"text": "a"}] * 101}).encode(), "too_many_attachments"),
    ],
)
def test_malformed_slack_payload_is_refused_like_slack(standin: tuple[str, Any], body: bytes, error: str) -> None:
    base, _proc = standin
    answer = requests.post(base + WEBHOOK, data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert (answer.status_code, answer.text) == (400, error)
    entry = last(base)
    assert (entry["status"], entry["accepted"], entry["error"]) == (400, False, error)


def test_a_path_that_is_no_webhook_is_no_service(standin: tuple[str, Any]) -> None:
    base, _proc = standin
    answer = requests.post(base + "/services/only-one-part", json={"text": "x"}, timeout=5)
    assert (answer.status_code, answer.text) == (404, "no_service")


# --- PagerDuty -------------------------------------------------------------------------------------------------------


def test_pagerduty_trigger_then_resolve_keep_the_dedup_key(standin: tuple[str, Any]) -> None:
    base, _proc = standin
    answer = requests.post(f"{base}/v2/enqueue", json=TRIGGER, timeout=5)
    assert answer.status_code == 202
    assert answer.json() == {"status": "success", "message": "Event processed", "dedup_key": "group-1"}
    resolve = {"routing_key": KEY, "event_action": "resolve", "dedup_key": "group-1"}
    assert requests.post(f"{base}/v2/enqueue", json=resolve, timeout=5).json()["dedup_key"] == "group-1"
    trigger, resolved = deliveries(base)[-2:]
    assert (trigger["payload"]["event_action"], resolved["payload"]["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolved["dedup_key"] == "group-1"
    # The routing key is a secret: recorded by its length only.
    assert trigger["payload"]["routing_key"] == "<redacted: 32 characters>"
    assert KEY not in json.dumps(deliveries(base))


def test_pagerduty_trigger_without_dedup_key_gets_one(standin: tuple[str, Any]) -> None:
    base, _proc = standin
    event = {k: v for k, v in TRIGGER.items() if k != "dedup_key"}
    answer = requests.post(f"{base}/v2/enqueue", json=event, timeout=5)
    assert answer.status_code == 202 and re.fullmatch(r"[0-9a-f]{32}", answer.json()["dedup_key"])
    assert last(base)["dedup_key"] == answer.json()["dedup_key"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"routing_key": None}, "routing_key is required"),
        ({"routing_key": "short"}, "routing_key must be a 32-character integration key"),
        ({"event_action": "page"}, "event_action must be one of trigger, acknowledge, resolve"),
        ({"payload": None}, "payload is required for a trigger event"),
        ({"payload": {"source": "am", "severity": "critical"}}, "payload.summary is required"),
        ({"payload": {"summary": "s", "severity": "critical"}}, "payload.source is required"),
        ({"payload": {"summary": "s", "source": "am", "severity": "fatal"}}, "payload.severity must be one of"),
        ({"event_action": "resolve", "dedup_key": None}, "dedup_key is required to resolve an incident"),
    ],
)
def test_malformed_pagerduty_event_is_refused_like_pagerduty(
    standin: tuple[str, Any], change: dict[str, Any], error: str
) -> None:
    base, _proc = standin
    event = {k: v for k, v in {**TRIGGER, **change}.items() if v is not None}
    answer = requests.post(f"{base}/v2/enqueue", json=event, timeout=5)
    assert answer.status_code == 400
    body = answer.json()
    assert (body["status"], body["message"]) == ("invalid event", "Event object is invalid")
    assert any(e.startswith(error) for e in body["errors"]), body
    entry = last(base)
    assert entry["accepted"] is False and entry["errors"] == body["errors"]


def test_pagerduty_body_that_is_not_json_is_an_invalid_event(standin: tuple[str, Any]) -> None:
    base, _proc = standin
    answer = requests.post(f"{base}/v2/enqueue", data=b"{oops", timeout=5)
    assert answer.status_code == 400 and answer.json()["errors"] == ["the body is not valid JSON"]


# --- its output --------------------------------------------------------------------------------------------------------


def test_each_request_is_one_stdout_line_without_secrets(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "integrations_standin", "--host", "127.0.0.1", "--port", "0"],
        cwd=PROJECT_ROOT / "stack",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    base = re.search(r"(http://127\.0\.0\.1:\d+)", proc.stderr.readline()).group(1)  # type: ignore[union-attr]
    try:
        requests.post(f"{base}/v2/enqueue", json=TRIGGER, timeout=5)
        requests.post(base + WEBHOOK, json={"channel": "#x"}, timeout=5)
        time.sleep(0.2)
    finally:
        proc.terminate()
        out, _err = proc.communicate(timeout=10)
    lines = out.splitlines()
    assert lines[0].startswith("integrations-standin: pagerduty 202 trigger dedup_key=group-1 ")
    assert "CircuitBreakerOpen" in lines[0] and "FIRING" in lines[0]
    assert lines[1] == "integrations-standin: slack 400 no_text"
    assert KEY not in out and "tokenpart42" not in out
    assert proc.returncode == 0  # SIGTERM: a clean exit

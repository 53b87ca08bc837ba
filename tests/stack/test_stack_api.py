"""techno-os-api and console-log started as real processes on 127.0.0.1: metrics, breaker configuration through the
environment (defaults, overrides, refused values), breaker behaviour, the provider drill endpoint, SIGTERM."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import need
from prometheus_client.parser import text_string_to_metric_families
from stack_content_support import STACK, clean_env, collect, http, http_json, python_service, stop

pytestmark = pytest.mark.stack


@pytest.fixture(autouse=True)
def _prometheus_client_installed() -> None:
    need(importlib.util.find_spec("prometheus_client") is not None, "prometheus_client missing (project dependency)")


def samples(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, raw = http(base + "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(raw.decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return metrics[(name, frozenset(labels.items()))]


def complete(base: str, **body: str) -> tuple[int, dict]:
    return http_json(base + "/v1/complete", {"prompt": "hello sealgate", "provider": "sim", "model": "sim-1", **body})


def breaker(base: str) -> dict:
    status, view = http_json(base + "/admin/breaker")
    assert status == 200
    return view


def test_metrics_exposed_and_counted() -> None:
    with python_service("app") as api:
        assert api.port, api.first_lines
        status, health = http_json(api.base + "/healthz")
        assert (status, health) == (200, {"status": "ok", "breaker": "closed"})

        before = samples(api.base)
        # Every series the alert rules read exists at 0 before the first request (so increase() sees the first one).
        for error_type in ("circuit_open", "provider_unavailable"):
            assert value(before, "llm_errors_total", provider="sim", error_type=error_type) == 0
        assert value(before, "llm_request_latency_seconds_count", provider="sim", model="sim-1") == 0
        assert value(before, "llm_tokens_total", provider="sim", model="sim-1", type="prompt") == 0
        assert value(before, "llm_circuit_breaker_state") == 0
        buckets = {dict(labels)["le"] for (name, labels) in before if name == "llm_request_latency_seconds_bucket"}
        assert {"5.0", "10.0", "+Inf"} <= buckets  # LLMHighLatency's 5 s threshold falls inside the buckets

        status, body = complete(api.base, prompt="one two three")
        assert status == 200, body
        assert body["tokens"] == {"prompt": 3, "completion": 7}

        after = samples(api.base)
        assert value(after, "llm_request_latency_seconds_count", provider="sim", model="sim-1") == 1
        assert value(after, "llm_tokens_total", provider="sim", model="sim-1", type="prompt") == 3
        assert value(after, "llm_tokens_total", provider="sim", model="sim-1", type="completion") == 7

        # Client input never becomes a label value.
        status, body = complete(api.base, model="gpt-unknown")
        assert status == 400 and "unknown model" in body["error"]
        assert not any(dict(labels).get("model") == "gpt-unknown" for (_, labels) in samples(api.base))
        assert http_json(api.base + "/v1/complete", {"provider": "sim"})[0] == 400  # no prompt


def test_breaker_defaults_when_unset() -> None:
    with python_service("app") as api:
        assert api.port, api.first_lines
        assert breaker(api.base) == {
            "threshold": 3,
            "timeout_s": 60,
            "state": "closed",
            "source": {"threshold": "default", "timeout_s": "default"},
        }
        assert "threshold=3 [default] timeout_s=60 [default]" in api.first_lines[-1]


def test_breaker_overrides_when_set() -> None:
    with python_service("app", {"VERITTA_CB_THRESHOLD": "5", "VERITTA_CB_TIMEOUT": " 7 "}) as api:
        assert api.port, api.first_lines
        assert breaker(api.base) == {
            "threshold": 5,
            "timeout_s": 7,
            "state": "closed",
            "source": {"threshold": "env", "timeout_s": "env"},
        }
    with python_service("app", {"VERITTA_CB_TIMEOUT": "1"}) as api:
        view = breaker(api.base)
        assert (view["threshold"], view["timeout_s"], view["source"]) == (
            3,
            1,
            {"threshold": "default", "timeout_s": "env"},
        )


@pytest.mark.parametrize(
    ("variable", "bad"),
    [
        ("VERITTA_CB_THRESHOLD", "abc"),
        ("VERITTA_CB_THRESHOLD", "0"),
        ("VERITTA_CB_THRESHOLD", ""),
        ("VERITTA_CB_THRESHOLD", "2.5"),
        ("VERITTA_CB_TIMEOUT", "-1"),
        ("VERITTA_CB_TIMEOUT", ""),
        ("VERITTA_CB_TIMEOUT", "abc"),
        ("VERITTA_CB_TIMEOUT", "0"),
    ],
)
def test_bad_breaker_value_stops_the_service(variable: str, bad: str) -> None:
    assert_refused_at_start(variable, bad)


def assert_refused_at_start(variable: str, bad: str) -> None:
    """The API started with `variable=bad` exits 2 before listening, with one line naming the variable."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", "0"],
        cwd=STACK,
        env=clean_env({variable: bad}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        code, out, err = collect(proc, timeout=15)
    finally:
        stop(proc)
    assert code == 2
    assert "listening" not in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # one clear line, no traceback
    assert f"{variable}={bad!r}" in lines[0] and "positive integer" in lines[0], lines[0]


@pytest.fixture
def fast_breaker() -> Iterator[str]:
    with python_service("app", {"VERITTA_CB_THRESHOLD": "2", "VERITTA_CB_TIMEOUT": "1"}) as api:
        assert api.port, api.first_lines
        yield api.base


def wait_state(base: str, wanted: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if breaker(base)["state"] == wanted:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"breaker not {wanted} within {timeout}s: {breaker(base)}")


def test_breaker_opens_half_opens_and_closes(fast_breaker: str) -> None:
    base = fast_breaker
    assert http_json(base + "/admin/provider", {"fail": True})[0] == 200

    assert complete(base)[1]["error_type"] == "provider_unavailable"
    assert breaker(base)["state"] == "closed"  # 1 failure < threshold 2
    status, body = complete(base)
    assert (status, body["error_type"]) == (503, "provider_unavailable")
    assert breaker(base)["state"] == "open"
    opened = time.monotonic()
    status, body = complete(base)
    assert (status, body["error_type"]) == (503, "circuit_open")  # rejected without calling the provider
    assert value(samples(base), "llm_circuit_breaker_state") == 1

    # After the timeout: half_open; a failing trial opens it again.
    wait_state(base, "half_open", 3)
    assert time.monotonic() - opened >= 0.95
    assert value(samples(base), "llm_circuit_breaker_state") == 2
    assert complete(base)[1]["error_type"] == "provider_unavailable"
    assert breaker(base)["state"] == "open"

    # A successful trial closes it.
    assert http_json(base + "/admin/provider", {"fail": False})[0] == 200
    wait_state(base, "half_open", 3)
    status, body = complete(base)
    assert status == 200, body
    assert breaker(base)["state"] == "closed"

    metrics = samples(base)
    assert value(metrics, "llm_circuit_breaker_state") == 0
    assert value(metrics, "llm_errors_total", provider="sim", error_type="provider_unavailable") == 3
    assert value(metrics, "llm_errors_total", provider="sim", error_type="circuit_open") == 1
    assert value(metrics, "llm_request_latency_seconds_count", provider="sim", model="sim-1") == 5


def test_provider_endpoint_sets_latency_and_validates(fast_breaker: str) -> None:
    base = fast_breaker
    assert http_json(base + "/admin/provider") == (
        200,
        {"provider": "sim", "fail": False, "latency_s": 0.0, "error_rate": 0.0},
    )
    assert http_json(base + "/admin/provider", {"latency_s": 0.3}) == (
        200,
        {"provider": "sim", "fail": False, "latency_s": 0.3, "error_rate": 0.0},
    )
    started = time.monotonic()
    status, body = complete(base)
    assert status == 200 and body["latency_s"] >= 0.3 and time.monotonic() - started >= 0.3
    metrics = samples(base)
    le = {"provider": "sim", "model": "sim-1"}
    assert value(metrics, "llm_request_latency_seconds_bucket", le="0.25", **le) == 0
    assert value(metrics, "llm_request_latency_seconds_bucket", le="0.5", **le) == 1

    for bad in (
        {"fail": "yes"},
        {"latency_s": -1},
        {"latency_s": 1000},
        {"latency_s": True},
        {"colour": "red"},
        {"error_rate": 1.5},
        {"error_rate": "half"},
    ):
        status, body = http_json(base + "/admin/provider", bad)
        assert status == 400, (bad, body)
    assert http(base + "/admin/provider", method="POST")[0] == 200  # empty body: nothing changes
    status, raw = http(base + "/nope")
    assert status == 404 and json.loads(raw)["error"]


def test_error_rate_fails_that_fraction_of_calls_and_never_opens_the_breaker(fast_breaker: str) -> None:
    """LLMErrorRateHigh's drill fault: one call in five fails (the first, then every fifth), never two in a row, so
    the breaker (threshold 2 here) stays closed while the error ratio is 20%."""
    base = fast_breaker
    assert http_json(base + "/admin/provider", {"error_rate": 0.2})[1]["error_rate"] == 0.2
    outcomes = [complete(base)[0] for _ in range(10)]
    assert outcomes == [503, 200, 200, 200, 200, 503, 200, 200, 200, 200]
    assert breaker(base)["state"] == "closed"
    metrics = samples(base)
    assert value(metrics, "llm_errors_total", provider="sim", error_type="provider_unavailable") == 2
    assert value(metrics, "llm_request_latency_seconds_count", provider="sim", model="sim-1") == 10
    assert http_json(base + "/admin/provider", {"error_rate": 0})[1]["error_rate"] == 0.0
    assert {complete(base)[0] for _ in range(5)} == {200}


def test_sigterm_exits_cleanly() -> None:
    with python_service("app") as api:
        assert api.port
        code = stop(api.proc)
        remaining = api.proc.stdout.read() if api.proc.stdout else ""
    assert code == 0
    assert "stopped (SIGTERM)" in remaining


def test_console_log_prints_one_line_per_alert() -> None:
    payload = {
        "receiver": "console-log-critical",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "CircuitBreakerOpen", "severity": "critical", "instance": "api:8000"},
                "annotations": {"summary": "LLM circuit breaker not closed", "description": "two\nlines"},
                "startsAt": "2025-01-01T00:00:00Z",
            },
            {
                "status": "resolved",
                "labels": {"alertname": "APIDown", "severity": "critical"},
                "annotations": {"summary": "down"},
                "startsAt": "2025-01-01T00:00:00Z",
                "endsAt": "2025-01-01T00:05:00Z",
            },
        ],
    }
    with python_service("console_log", listen_on="stderr") as sink:
        assert sink.port, sink.first_lines
        assert http_json(sink.base + "/healthz") == (200, {"status": "ok"})
        assert http_json(sink.base + "/alerts", payload) == (200, {"printed": 2})
        assert http(sink.base + "/alerts", {"nope": 1})[0] == 400
        stop(sink.proc)
        out = sink.proc.stdout.read() if sink.proc.stdout else ""
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert re.match(
        r"^console-log: FIRING alertname=CircuitBreakerOpen severity=critical receiver=console-log-critical "
        r'instance=api:8000 summary="LLM circuit breaker not closed" description="two lines" '
        r"starts_at=2025-01-01T00:00:00Z$",
        lines[0],
    ), lines[0]
    assert lines[1].startswith("console-log: RESOLVED alertname=APIDown severity=critical ")
    assert lines[1].endswith("ends_at=2025-01-01T00:05:00Z")


def test_app_never_imports_sealgate() -> None:
    for path in (STACK / "app").rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+sealgate\b", text, re.M), path

"""techno-os-api's F9.11 additions, started as a real process on 127.0.0.1: the HTTP metrics (every request counted
by route template, method and status, timed in a histogram; bounded labels whatever the client sends) and the rate
limiter configured by VERITTA_RL_* (defaults, overrides, refused values, 429 with Retry-After, counted, operational
routes never limited). The sliding window itself is also judged with a fake clock (no sleeping)."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from http.client import HTTPConnection
from typing import Any

import pytest
from conftest import need
from stack_content_support import STACK, http, http_json, python_service
from test_stack_api import assert_refused_at_start, samples

pytestmark = pytest.mark.stack

ROUTES = {"/healthz", "/metrics", "/v1/complete", "/admin/breaker", "/admin/provider", "/admin/ratelimit"}
COMPLETION = {"prompt": "hello sealgate", "provider": "sim", "model": "sim-1"}


@pytest.fixture(autouse=True)
def _prometheus_client_installed() -> None:
    need(importlib.util.find_spec("prometheus_client") is not None, "prometheus_client missing (project dependency)")


def http_requests(metrics: dict, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (name, lbls), v in metrics.items() if name == "http_requests_total" and wanted <= lbls)


def label_values(metrics: dict, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (n, labels) in metrics if n == name and label in dict(labels)}


def ratelimit(base: str) -> dict[str, Any]:
    status, view = http_json(base + "/admin/ratelimit")
    assert status == 200, view
    return view


# --- HTTP metrics ---------------------------------------------------------------------------------------------------


def test_every_request_is_counted_by_route_template_method_and_status() -> None:
    with python_service("app") as api:
        assert api.port, api.first_lines
        before = samples(api.base)
        # What the alert rule and the 429 panel read exists at 0 before any request (rate() sees the first burst).
        for status in ("200", "429", "503"):
            assert http_requests(before, method="POST", route="/v1/complete", status=status) == 0

        assert http_json(api.base + "/v1/complete", COMPLETION)[0] == 200
        assert http_json(api.base + "/v1/complete", {"provider": "sim"})[0] == 400  # no prompt
        assert http_json(api.base + "/admin/provider", {"fail": True})[0] == 200
        assert http_json(api.base + "/v1/complete", COMPLETION)[0] == 503
        for path in ("/admin/breaker", "/admin/ratelimit", "/healthz"):
            assert http(api.base + path)[0] == 200
        # Paths a client chooses: never a label value.
        for n in range(5):
            assert http(f"{api.base}/scan/{n}/secret-{n}?q={n}")[0] == 404
        assert http(api.base + "/v1/complete", method="DELETE")[0] == 501  # a method the server has no handler for

        after = samples(api.base)
        assert http_requests(after, method="POST", route="/v1/complete", status="200") == 1
        assert http_requests(after, method="POST", route="/v1/complete", status="400") == 1
        assert http_requests(after, method="POST", route="/v1/complete", status="503") == 1
        assert http_requests(after, method="POST", route="/admin/provider", status="200") == 1
        assert http_requests(after, method="GET", route="/admin/ratelimit", status="200") == 1
        assert http_requests(after, method="GET", route="unmatched", status="404") == 5
        assert http_requests(after, method="other", route="/v1/complete", status="501") == 1
        assert label_values(after, "http_requests_total", "route") <= ROUTES | {"unmatched"}
        assert label_values(after, "http_requests_total", "method") <= {"GET", "HEAD", "POST", "other"}
        assert label_values(after, "http_requests_total", "status") <= {"200", "400", "404", "429", "501", "503"}
        # The /metrics reads themselves are counted too (the scrape before this one).
        assert http_requests(after, method="GET", route="/metrics", status="200") == 1


def test_the_duration_histogram_observes_each_counted_request() -> None:
    with python_service("app") as api:
        assert api.port, api.first_lines
        assert http_json(api.base + "/admin/provider", {"latency_s": 0.3})[0] == 200
        assert http_json(api.base + "/v1/complete", COMPLETION)[0] == 200
        assert http_json(api.base + "/v1/complete", COMPLETION)[0] == 200
        metrics = samples(api.base)
        key = frozenset({"method": "POST", "route": "/v1/complete"}.items())
        assert metrics[("http_request_duration_seconds_count", key)] == 2
        assert metrics[("http_request_duration_seconds_sum", key)] >= 0.6  # the simulated provider's latency
        buckets = {
            float(dict(labels)["le"]): value
            for (name, labels), value in metrics.items()
            if name == "http_request_duration_seconds_bucket" and dict(labels).get("route") == "/v1/complete"
        }
        assert buckets[0.25] == 0 and buckets[0.5] == 2 and buckets[float("inf")] == 2, buckets
        for (name, labels), count in metrics.items():
            if name == "http_request_duration_seconds_count" and dict(labels)["route"] != "/metrics":
                lbl = dict(labels)
                assert http_requests(metrics, method=lbl["method"], route=lbl["route"]) == count, lbl


# --- rate limiter: configuration ------------------------------------------------------------------------------------


def test_rate_limiter_defaults_when_unset() -> None:
    with python_service("app") as api:
        assert api.port, api.first_lines
        view = ratelimit(api.base)
        assert (view["limit"], view["window_s"], view["remaining"]) == (100, 10, 100)
        assert view["source"] == {"limit": "default", "window_s": "default"}
        assert "rate limit=100 [default] per window_s=10 [default]" in api.first_lines[-1]


def test_rate_limiter_overrides_when_set() -> None:
    with python_service("app", {"VERITTA_RL_LIMIT": " 7 ", "VERITTA_RL_WINDOW": "42"}) as api:
        view = ratelimit(api.base)
        assert (view["limit"], view["window_s"], view["source"]) == (7, 42, {"limit": "env", "window_s": "env"})
    with python_service("app", {"VERITTA_RL_WINDOW": "1"}) as api:
        view = ratelimit(api.base)
        assert (view["limit"], view["window_s"], view["source"]) == (100, 1, {"limit": "default", "window_s": "env"})


@pytest.mark.parametrize(
    ("variable", "bad"),
    [
        ("VERITTA_RL_LIMIT", "abc"),
        ("VERITTA_RL_LIMIT", "0"),
        ("VERITTA_RL_LIMIT", ""),
        ("VERITTA_RL_LIMIT", "2.5"),
        ("VERITTA_RL_WINDOW", "-1"),
        ("VERITTA_RL_WINDOW", ""),
        ("VERITTA_RL_WINDOW", "10s"),
    ],
)
def test_bad_rate_limit_value_stops_the_service(variable: str, bad: str) -> None:
    assert_refused_at_start(variable, bad)


# --- rate limiter: behaviour ----------------------------------------------------------------------------------------


@pytest.fixture
def limited_api() -> Iterator[str]:
    with python_service("app", {"VERITTA_RL_LIMIT": "3", "VERITTA_RL_WINDOW": "1"}) as api:
        assert api.port, api.first_lines
        yield api.base


def post_raw(base: str, body: bytes) -> tuple[int, dict[str, str], bytes, bool]:
    """One POST on a keep-alive connection; (status, headers, body, whether the server closed the connection)."""
    host, port = base.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/v1/complete", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = response.read()
        return response.status, dict(response.getheaders()), payload, response.will_close
    finally:
        connection.close()


def test_over_the_limit_answers_429_counted_and_the_window_frees_it(limited_api: str) -> None:
    base = limited_api
    assert [http_json(base + "/v1/complete", COMPLETION)[0] for _ in range(3)] == [200, 200, 200]
    assert ratelimit(base)["remaining"] == 0
    refused_at = time.monotonic()
    status, headers, payload, closed = post_raw(base, b'{"prompt": "one too many"}')
    assert status == 429, payload
    assert headers["Retry-After"] == "1"
    assert b'"limit": 3' in payload and b'"window_s": 1' in payload
    assert closed  # its body was never read: the connection is not reused for a next request
    # Operational routes are never limited.
    for path in ("/healthz", "/metrics", "/admin/breaker", "/admin/ratelimit"):
        assert http(base + path)[0] == 200, path
    assert http(base + "/no-such-path")[0] == 429  # a path the API does not serve is limited like any other

    metrics = samples(base)
    assert http_requests(metrics, method="POST", route="/v1/complete", status="429") == 1
    assert http_requests(metrics, method="GET", route="unmatched", status="429") == 1
    assert http_requests(metrics, method="POST", route="/v1/complete", status="200") == 3

    # One window after the first accepted request, the budget is back.
    while ratelimit(base)["remaining"] < 3:
        assert time.monotonic() - refused_at < 3, ratelimit(base)
        time.sleep(0.05)
    assert http_json(base + "/v1/complete", COMPLETION)[0] == 200


def test_the_sliding_window_with_a_fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(STACK))
    from app.ratelimit import RateLimitConfig, RateLimiter, retry_after_header

    now = [100.0]
    limiter = RateLimiter(RateLimitConfig(3, 10, "env", "env"), clock=lambda: now[0])
    decisions = []
    for at in (100.0, 104.0, 109.0, 109.5):
        now[0] = at
        decisions.append(limiter.acquire())
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after_s == pytest.approx(0.5)  # the request of t=100 leaves the window at t=110
    assert retry_after_header(0.5) == "1" and retry_after_header(2.01) == "3"
    now[0] = 110.0  # exactly one window later: the first slot is free (any WINDOW seconds hold at most LIMIT)
    assert limiter.acquire().allowed
    assert not limiter.acquire().allowed  # t=104 and t=109 are still in the window
    now[0] = 119.0
    view = limiter.view()
    assert (view["remaining"], view["limit"], view["window_s"]) == (2, 3, 10)  # t=109 left at 119: only t=110 is in


def test_config_from_the_environment_names_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(STACK))
    from app.ratelimit import RateLimitConfig, RateLimitConfigError

    assert RateLimitConfig.from_environ({}) == RateLimitConfig(100, 10, "default", "default")
    assert RateLimitConfig.from_environ({"VERITTA_RL_LIMIT": "5"}) == RateLimitConfig(5, 10, "env", "default")
    with pytest.raises(RateLimitConfigError, match=r"^VERITTA_RL_WINDOW='0' is invalid: expected a positive integer"):
        RateLimitConfig.from_environ({"VERITTA_RL_WINDOW": "0"})

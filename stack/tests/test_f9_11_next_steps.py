"""F9.11 acceptance suite: the HTTP metrics, the restored APIHighErrorRate, the rate limiter and postgres_exporter, run
against the **running** stack (addresses from SEALGATE_STACK_*, see conftest.py).

Every scenario works on either backend (containers or local processes): nothing here is about how the stack runs,
only about what it answers. The counters of a live stack only grow, so each scenario reads them before and after
its own requests and judges the difference.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from prometheus_client.parser import text_string_to_metric_families
from test_f9_10_observability import HTTP_TIMEOUT, get, get_json, running_api_environment, start_api

if TYPE_CHECKING:  # conftest is pytest's to import; importing it by name could pick another suite's conftest
    from conftest import Stack

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ROUTES = ("/healthz", "/metrics", "/v1/complete", "/admin/breaker", "/admin/provider", "/admin/ratelimit")
COMPLETION = {"prompt": "sealgate F9.11 suite", "provider": "sim", "model": "sim-1"}
LIMITER_ENV = ("VERITTA_RL_LIMIT", "VERITTA_RL_WINDOW")
LIMITER_DEFAULTS = {"limit": 100, "window_s": 10}
MAX_PROVABLE_LIMIT = 1000  # a burst above a limit this high is not live traffic a suite should send


# --- helpers -----------------------------------------------------------------------------------------------------


def samples(api: str) -> Samples:
    """Every sample of the API's /metrics: (name, labels) -> value."""
    text = get(f"{api}/metrics").text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests_by(metrics: Samples, **labels: str) -> float:
    """Sum of http_requests_total over the series matching `labels`."""
    wanted = set(labels.items())
    return sum(v for (name, lbls), v in metrics.items() if name == "http_requests_total" and wanted <= lbls)


def post_completion(api: str) -> requests.Response:
    try:
        return requests.post(f"{api}/v1/complete", json=COMPLETION, timeout=HTTP_TIMEOUT)
    except requests.RequestException as exc:
        raise AssertionError(f"POST {api}/v1/complete: {type(exc).__name__}: {exc}") from None


def wait_budget(api: str, timeout: float, needed: int | None = None) -> dict:
    """The limiter's view once `needed` requests (default: its whole limit) would be accepted: the requests of an
    earlier scenario (or check) may still be in the window, and a 429 there is not what a scenario is about."""
    deadline = time.monotonic() + timeout
    view = get_json(f"{api}/admin/ratelimit")
    while view["remaining"] < (needed or view["limit"]) and time.monotonic() < deadline:
        time.sleep(0.2)
        view = get_json(f"{api}/admin/ratelimit")
    assert view["remaining"] >= (needed or view["limit"]), f"the rate limiter never freed {needed or 'all'}: {view}"
    return view


def prometheus_query(stack: Stack, expr: str) -> list[dict]:
    body = get_json(f"{stack.url('prometheus')}/api/v1/query", params={"query": expr})
    assert body.get("status") == "success", f"query {expr}: {body}"
    return body["data"]["result"]


# --- scenarios ---------------------------------------------------------------------------------------------------


def test_http_requests_counted_for_every_route(stack: Stack) -> None:
    api = stack.url("api")
    wait_budget(api, timeout=15, needed=1)
    before = samples(api)
    for route in ROUTES:
        answer = post_completion(api) if route == "/v1/complete" else get(f"{api}{route}")
        assert answer.status_code == 200, f"{route}: HTTP {answer.status_code}: {answer.text[:200]}"
    after = samples(api)
    for route in ROUTES:
        method = "POST" if route == "/v1/complete" else "GET"
        grown = requests_by(after, method=method, route=route, status="200") - requests_by(
            before, method=method, route=route, status="200"
        )
        # Probes (healthchecks, scrapes) run meanwhile on the operational routes: at least our own request.
        assert grown >= 1, f"http_requests_total{{method={method},route={route},status=200}} did not count it"


def test_route_label_is_a_template(stack: Stack) -> None:
    api = stack.url("api")
    raw_paths = [f"/sealgate-scan/{uuid.uuid4().hex}" for _ in range(5)]
    wait_budget(api, timeout=15, needed=len(raw_paths))  # a path the API does not serve is rate limited too
    before = samples(api)
    for path in raw_paths:
        assert get(f"{api}{path}").status_code == 404, path
    after = samples(api)
    routes = {dict(labels).get("route") for (name, labels) in after if name == "http_requests_total"}
    leaked = [path for path in raw_paths if any(path in str(route) for route in routes)]
    assert not leaked, f"raw paths became route label values: {leaked}"
    assert routes <= {*ROUTES, "unmatched"}, f"route label values outside the route templates: {sorted(routes)}"
    grown = requests_by(after, route="unmatched", status="404") - requests_by(before, route="unmatched", status="404")
    assert grown == len(raw_paths), f"{len(raw_paths)} unknown paths counted {grown} times under route=unmatched"
    methods = {dict(labels).get("method") for (name, labels) in after if name == "http_requests_total"}
    assert methods <= {"GET", "HEAD", "POST", "other"}, f"method label values outside the known set: {methods}"


def test_request_duration_histogram_matches_the_counter(stack: Stack) -> None:
    api = stack.url("api")
    wait_budget(api, timeout=15, needed=1)
    assert post_completion(api).status_code == 200
    metrics = samples(api)
    counts = {
        (dict(labels)["method"], dict(labels)["route"]): value
        for (name, labels), value in metrics.items()
        if name == "http_request_duration_seconds_count"
    }
    assert ("POST", "/v1/complete") in counts, f"no duration histogram for POST /v1/complete: {sorted(counts)}"
    buckets = {
        dict(labels)["le"]
        for (name, labels) in metrics
        if name == "http_request_duration_seconds_bucket" and dict(labels).get("route") == "/v1/complete"
    }
    assert "+Inf" in buckets and len(buckets) > 5, f"buckets of /v1/complete: {sorted(buckets)}"
    # One observation per counted request. Only routes no probe hits meanwhile: a healthcheck answered between the
    # counter's increment and the histogram's would read as a difference of one.
    for (method, route), count in counts.items():
        if route in ("/healthz", "/metrics"):
            continue
        total = requests_by(metrics, method=method, route=route)
        assert total == count, f"{method} {route}: http_requests_total {total} but {count} observations"


def test_rate_limiter_answers_429_and_counts_it(stack: Stack) -> None:
    api = stack.url("api")
    view = wait_budget(api, timeout=30)
    limit, window = int(view["limit"]), int(view["window_s"])
    assert limit <= MAX_PROVABLE_LIMIT, f"the stack runs with a limit of {limit}: too high to prove with live traffic"
    before = samples(api)
    extra = 10
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _i: post_completion(api), range(limit + extra)))
    statuses = [a.status_code for a in answers]
    refused = [a for a in answers if a.status_code == 429]
    assert statuses.count(200) == limit, f"{statuses.count(200)} accepted of {len(statuses)}, limit {limit}"
    assert len(refused) == extra, f"{len(refused)} refused with 429, expected {extra} (statuses {set(statuses)})"
    body = refused[0].json()
    assert (body["limit"], body["window_s"]) == (limit, window), body
    assert 1 <= int(refused[0].headers["Retry-After"]) <= window, refused[0].headers
    # Operational routes stay open while the API is limited.
    assert get(f"{api}/healthz").status_code == 200
    after = samples(api)
    counted = requests_by(after, route="/v1/complete", status="429") - requests_by(
        before, route="/v1/complete", status="429"
    )
    assert counted == extra, f"http_requests_total counted {counted} 429s, the API answered {extra}"
    wait_budget(api, timeout=window + 5)  # leave the stack as it was found


def test_env_rate_limiter_config(stack: Stack, stack_dir: Path) -> None:
    # The running API reports what its own environment says (overridden or default).
    environ = running_api_environment(stack)
    running = get_json(f"{stack.url('api')}/admin/ratelimit")
    for key, variable in zip(("limit", "window_s"), LIMITER_ENV, strict=True):
        want = int(environ[variable]) if variable in environ else LIMITER_DEFAULTS[key]
        source = "env" if variable in environ else "default"
        assert (running[key], running["source"][key]) == (want, source), f"{variable}: the running API says {running}"

    # A fresh API with a tiny limit refuses the third request; one with a bad value refuses to start.
    base_env = {k: v for k, v in os.environ.items() if k not in LIMITER_ENV}
    proc, url = start_api(stack_dir, {**base_env, "VERITTA_RL_LIMIT": "2", "VERITTA_RL_WINDOW": "30"})
    try:
        statuses = [post_completion(url).status_code for _ in range(3)]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert statuses == [200, 200, 429], f"with VERITTA_RL_LIMIT=2 a fresh API answered {statuses}"


def test_api_high_error_rate_restored(stack: Stack) -> None:
    body = get_json(f"{stack.url('prometheus')}/api/v1/rules", params={"type": "alert"})
    rules = {rule["name"]: (group["name"], rule) for group in body["data"]["groups"] for rule in group["rules"]}
    assert "APIHighErrorRate" in rules, f"APIHighErrorRate is not loaded (rules: {sorted(rules)})"
    group, rule = rules["APIHighErrorRate"]
    assert group == "api", f"APIHighErrorRate is in group {group}"
    assert rule["labels"].get("severity") == "warning", rule["labels"]
    assert rule["duration"] == 300, f"for: {rule['duration']} s, expected 5m"
    assert rule.get("health") != "err", f"APIHighErrorRate fails to evaluate: {rule.get('lastError')}"
    assert 'http_requests_total{status=~"5.."}' in rule["query"].replace(" ", ""), rule["query"]
    # The metric it reads is scraped from the API, with the label it matches on.
    series = prometheus_query(stack, 'count by (job) (http_requests_total{status=~"2.."})')
    assert any(s["metric"].get("job") == "techno-os-api" for s in series), series


def test_postgres_exporter_scraped(stack: Stack) -> None:
    up = prometheus_query(stack, 'up{job="postgres"}')
    assert up and all(s["value"][1] == "1" for s in up), f"job postgres: {up}"
    pg_up = prometheus_query(stack, 'pg_up{job="postgres"}')
    assert pg_up and all(s["value"][1] == "1" for s in pg_up), f"postgres_exporter cannot reach PostgreSQL: {pg_up}"
    commits = prometheus_query(stack, 'pg_stat_database_xact_commit{job="postgres", datname!~"template.*|"}')
    assert commits, "no pg_stat_database_xact_commit of the stack's databases"

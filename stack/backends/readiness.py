"""Waiting for the governed stack to be usable: one implementation shared by every backend.

"Ready" means, in this order:
  1. every service of the backend is running and, where it has a healthcheck, healthy (the backend says how);
  2. Prometheus answers `/-/ready`, Alertmanager `/-/ready`, the API `/healthz`;
  3. Prometheus has discovered Alertmanager (an alert fired before that is re-sent only after the resend delay);
  4. a **fresh** scrape: `timestamp(up{job="techno-os-api"})` is newer than this start and `up` is 1. Persisted
     volumes / data dirs keep old samples, so `up == 1` alone can be true before anything was scraped this time.

Each wait prints `stack: waiting for <what> (<elapsed>s)` when it starts and every few seconds while it lasts, and
`stack: <what> (<elapsed>s)` when it is met; a timeout raises StackError naming the service, with its logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from sealgate.errors import Problem
from sealgate.stack.backends.base import StackError, StackTimings

API_JOB = "techno-os-api"  # the scrape job of the API in stack/prometheus/prometheus.yml
HTTP_TIMEOUT = 2.0  # one probe; a slow answer counts as "not yet", the loop tries again
POLL_INTERVAL = 0.25  # short: readiness of local processes is sub-second, and the loop is bounded by the deadline
PROGRESS_EVERY = 5.0  # a waiting line at most this often per step, so a long wait stays visible but not noisy
LOG_TAIL_IN_ERROR = 40  # lines of a failing service's log quoted in the error message

# A probe answers (met, detail): detail says what was seen, and ends up in the timeout message.
Probe = Callable[[], tuple[bool, str]]
# The backend's own view of its services: names of services that are dead for good (fail fast, do not wait for the
# timeout) with the reason, and a (met, detail) for "all running and healthy".
Liveness = Callable[[], tuple[dict[str, str], bool, str]]


def http_probe(url: str, expect_status: int = 200) -> Probe:
    def probe() -> tuple[bool, str]:
        try:
            response = requests.get(url, timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            return False, f"GET {url}: {type(exc).__name__}"
        if response.status_code != expect_status:
            return False, f"GET {url}: HTTP {response.status_code}"
        return True, f"GET {url}: HTTP {response.status_code}"

    return probe


def prom_query(prometheus_url: str, expr: str, timeout: float = HTTP_TIMEOUT) -> list[dict]:
    """Instant query; the result vector (possibly empty). Raises requests errors / ValueError on a bad answer."""
    response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=timeout)
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise ValueError(f"query {expr!r}: {body.get('error', body)}")
    return list(body["data"]["result"])


def fresh_scrape_probe(prometheus_url: str, started_at: float, job: str = API_JOB) -> Probe:
    """Met when Prometheus holds an `up` sample of `job` taken after `started_at` (wall clock) with value 1."""

    def probe() -> tuple[bool, str]:
        try:
            stamps = prom_query(prometheus_url, f'timestamp(up{{job="{job}"}})')
            values = prom_query(prometheus_url, f'up{{job="{job}"}}')
        except (requests.RequestException, ValueError, KeyError) as exc:
            return False, f"query failed: {exc}"
        if not stamps or not values:
            return False, f'no up{{job="{job}"}} sample yet'
        newest = max(float(s["value"][1]) for s in stamps)
        up = max(float(v["value"][1]) for v in values)
        if newest <= started_at:
            return False, f"newest up sample is {started_at - newest:.1f}s older than this start (persisted data)"
        if up != 1:
            return False, f"fresh sample says up={up:g} (Prometheus cannot scrape the API)"
        return True, f"up=1 sampled {newest - started_at:.1f}s after start"

    return probe


def alertmanager_discovered_probe(prometheus_url: str) -> Probe:
    def probe() -> tuple[bool, str]:
        try:
            response = requests.get(f"{prometheus_url}/api/v1/alertmanagers", timeout=HTTP_TIMEOUT)
            response.raise_for_status()
            active = response.json()["data"]["activeAlertmanagers"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            return False, f"query failed: {exc}"
        if not active:
            return False, "Prometheus has no active Alertmanager yet"
        return True, ", ".join(a.get("url", "?") for a in active)

    return probe


def pending_services(detail: str) -> str:
    """Service names out of a services probe's detail (`api: starting, prometheus: unhealthy`)."""
    names = [part.split(":", 1)[0].strip() for part in detail.split(", ") if ":" in part]
    return ", ".join(names) or "stack"


def tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class Waiter:
    """Bounded polling with progress lines; every wait of one `up()` shares one deadline."""

    progress: Callable[[str], None]
    deadline: float  # time.monotonic() value
    t0: float = field(default_factory=time.monotonic)  # when up() began: elapsed times are measured from here
    logs: Callable[[str], str] | None = None  # service -> recent output, quoted in errors
    liveness: Liveness | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def fail(self, service: str, what: str, hint: str = "") -> StackError:
        captured: dict[str, str] = {}
        problems: list[Problem | str] = [Problem(service, what, hint)]
        for name in dict.fromkeys(s.strip() for s in service.split(",")):
            if not name or self.logs is None:
                continue
            try:
                text = self.logs(name)
            except Exception as exc:  # logs are a courtesy in an error path: never mask the real error
                text = f"(could not read logs: {exc})"
            captured[name] = text
            quoted = tail(text, LOG_TAIL_IN_ERROR) or "(no output)"
            problems.append(f"--- last output of {name} ---\n{quoted}")
        return StackError(*problems, logs=captured)

    def check_liveness(self) -> tuple[bool, str]:
        if self.liveness is None:
            return True, ""
        dead, met, detail = self.liveness()
        if dead:
            names = ", ".join(sorted(dead))
            reasons = "; ".join(f"{k}: {v}" for k, v in sorted(dead.items()))
            raise self.fail(names, f"stopped while the stack was starting ({reasons})")
        return met, detail

    def until(self, what: str, service: str | Callable[[str], str], probe: Probe, hint: str = "") -> float:
        """Poll `probe` until met; return the elapsed time (since t0) when it was met. `service` names who is
        blamed on a timeout, or derives the names from the probe's last detail.

        A condition met at the first probe prints one line; a wait prints `waiting for` first, then every
        PROGRESS_EVERY seconds with what the probe currently sees.
        """
        last_line: float | None = None
        while True:
            self.check_liveness()
            met, detail = probe()
            if met:
                elapsed = self.elapsed()
                self.progress(f"stack: {what} ({elapsed:.1f}s)")
                return elapsed
            now = time.monotonic()
            if now >= self.deadline:
                blamed = service(detail) if callable(service) else service
                raise self.fail(blamed, f"{what}: not met after {self.elapsed():.1f}s: {detail}", hint)
            if last_line is None or now - last_line >= PROGRESS_EVERY:
                suffix = f": {detail}" if last_line is not None else ""
                self.progress(f"stack: waiting for {what} ({self.elapsed():.1f}s){suffix}")
                last_line = now
            time.sleep(min(POLL_INTERVAL, max(0.0, self.deadline - now)))


def wait_ready(
    waiter: Waiter,
    url: Callable[[str], str],
    started_at: float,
    timings: StackTimings,
    services_probe: Probe | None = None,
) -> None:
    """Run the readiness sequence above; fill timings.ready / fresh_scrape / extra (seconds since waiter.t0)."""
    if services_probe is not None:
        timings.extra["services_healthy"] = waiter.until(
            "services running and healthy", pending_services, services_probe
        )
    prometheus, alertmanager, api = url("prometheus"), url("alertmanager"), url("api")
    timings.extra["prometheus_ready"] = waiter.until(
        "prometheus ready", "prometheus", http_probe(f"{prometheus}/-/ready")
    )
    timings.extra["alertmanager_ready"] = waiter.until(
        "alertmanager ready", "alertmanager", http_probe(f"{alertmanager}/-/ready")
    )
    timings.extra["api_healthy"] = waiter.until("api healthy", "api", http_probe(f"{api}/healthz"))
    timings.extra["alertmanager_discovered"] = waiter.until(
        "alertmanager discovered by prometheus", "prometheus, alertmanager", alertmanager_discovered_probe(prometheus)
    )
    timings.ready = waiter.elapsed()
    timings.fresh_scrape = waiter.until(
        "fresh scrape of the api (up == 1)",
        "prometheus, api",
        fresh_scrape_probe(prometheus, started_at),
        hint="Prometheus scrapes every 15 s and its first scrape comes ~5 s after start",
    )

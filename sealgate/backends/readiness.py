"""Waiting for a described stack to be usable: one implementation shared by every backend.

"Ready" means, in this order:
  1. every service the backend runs is running and, where it has a healthcheck, healthy (the backend says how);
  2. every service the stack description gives a `ready:` path answers it with 200;
  3. Prometheus has discovered Alertmanager (an alert fired before that is re-sent only after the resend delay);
  4. a **fresh** scrape of every target: `timestamp(up{job="<its job>"})` is newer than this start and `up` is 1.
     Persisted volumes / data dirs keep old samples, so `up == 1` alone can be true before anything was scraped.

Each wait prints `stack: waiting for <what> (<elapsed>s)` when it starts and every few seconds while it lasts, and
`stack: <what> (<elapsed>s)` when it is met; a timeout raises StackError naming the service, with its logs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import requests

from sealgate.backends.base import StackTimings
from sealgate.backends.errors import StackError
from sealgate.backends.http import HttpAnswerError, Prometheus

if TYPE_CHECKING:
    from sealgate.backends.description import StackDescription
from sealgate.kernel.errors import Problem
from sealgate.kernel.poll import PollCancelled, poll

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


def fresh_scrape_probe(prometheus_url: str, started_at: float, job: str) -> Probe:
    """Met when Prometheus holds an `up` sample of `job` taken after `started_at` (wall clock) with value 1."""
    prometheus = Prometheus(prometheus_url, timeout=HTTP_TIMEOUT)

    def probe() -> tuple[bool, str]:
        try:
            newest = prometheus.newest_sample(job)
            values = prometheus.query(f'up{{job="{job}"}}') if newest else []
        except (StackError, HttpAnswerError, KeyError) as exc:
            return False, f"query failed: {exc}"
        if not newest or not values:
            return False, f'no up{{job="{job}"}} sample yet'
        up = max(float(v["value"][1]) for v in values)
        if newest <= started_at:
            return False, f"newest up sample is {started_at - newest:.1f}s older than this start (persisted data)"
        if up != 1:
            return False, f"fresh sample says up={up:g} (Prometheus cannot scrape the target)"
        return True, f"up=1 sampled {newest - started_at:.1f}s after start"

    return probe


def alertmanager_discovered_probe(prometheus_url: str) -> Probe:
    prometheus = Prometheus(prometheus_url, timeout=HTTP_TIMEOUT)

    def probe() -> tuple[bool, str]:
        try:
            active = prometheus.api("alertmanagers")["activeAlertmanagers"]
        except (StackError, HttpAnswerError, KeyError, TypeError) as exc:
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
    cancelled: threading.Event | None = None  # set by whoever stops the run: a wait ends at its next poll

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
        last_line: list[float] = []  # when the last waiting line was printed
        detail = ""

        def attempt() -> bool:
            nonlocal detail
            self.check_liveness()
            met, detail = probe()
            return met

        def waiting(_elapsed: float) -> None:
            now = time.monotonic()
            if not last_line or now - last_line[-1] >= PROGRESS_EVERY:
                suffix = f": {detail}" if last_line else ""
                self.progress(f"stack: waiting for {what} ({self.elapsed():.1f}s){suffix}")
                last_line.append(now)

        try:
            met, _ = poll(
                attempt,
                timeout=self.deadline - time.monotonic(),
                interval=POLL_INTERVAL,
                cancelled=self.cancelled,
                on_wait=waiting,
            )
        except PollCancelled:
            raise StackError(
                Problem(service if isinstance(service, str) else "stack", f"{what}: stopped (the run ends)")
            ) from None
        if not met:
            blamed = service(detail) if callable(service) else service
            raise self.fail(blamed, f"{what}: not met after {self.elapsed():.1f}s: {detail}", hint)
        elapsed = self.elapsed()
        self.progress(f"stack: {what} ({elapsed:.1f}s)")
        return elapsed


def wait_ready(
    waiter: Waiter,
    url: Callable[[str], str],
    started_at: float,
    timings: StackTimings,
    description: StackDescription,
    running: list[str],
    services_probe: Probe | None = None,
    reachable: list[str] | None = None,
) -> None:
    """Run the readiness sequence above for the services in `running` (names of the description's services this
    backend started); `reachable` are those this host can probe over HTTP (default: all of them — a container that
    publishes no port is judged by its own healthcheck through `services_probe`). Fill timings.ready /
    fresh_scrape / extra (seconds since waiter.t0)."""
    if services_probe is not None:
        timings.extra["services_healthy"] = waiter.until(
            "services running and healthy", pending_services, services_probe
        )
    for name in running if reachable is None else [n for n in running if n in reachable]:
        ready_path = description.services[name].ready
        if ready_path:
            timings.extra[f"{name}_ready"] = waiter.until(f"{name} ready", name, http_probe(url(name) + ready_path))
    roles = {description.services[name].role: name for name in running}
    prometheus, alertmanager = roles.get("prometheus"), roles.get("alertmanager")
    if prometheus and alertmanager:
        timings.extra["alertmanager_discovered"] = waiter.until(
            f"{alertmanager} discovered by {prometheus}",
            f"{prometheus}, {alertmanager}",
            alertmanager_discovered_probe(url(prometheus)),
        )
    timings.ready = waiter.elapsed()
    if prometheus is None:
        timings.fresh_scrape = timings.ready
        return
    for name in running:
        target = description.services[name]
        if target.role == "target" and target.job:
            timings.fresh_scrape = waiter.until(
                f"fresh scrape of {name} (up == 1)",
                f"{prometheus}, {name}",
                fresh_scrape_probe(url(prometheus), started_at, target.job),
                hint="Prometheus' first scrape comes ~5 s after its start, then one per scrape interval",
            )

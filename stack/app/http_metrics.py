"""The API's HTTP metrics (F9.11): every request, whatever its route or outcome (names and labels are a contract: see
stack/README.md; APIHighErrorRate and the dashboard's rate-limiting panel read them).

http_requests_total{method,route,status}            counter, one per answered request
http_request_duration_seconds{method,route}         histogram, the time from the request read to its answer sent

Labels are bounded whatever clients send: `route` is the route *template* the server matched (`/v1/complete`), or
`unmatched` for any path it does not serve — never the raw path, so a scan of random URLs cannot grow the series;
`method` is one of the methods the server knows (`other` for the rest); `status` is the three-digit code.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram

UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST"})
OTHER_METHOD = "other"
# From a cached answer (~1 ms) to a provider call at its slowest drill latency; le=0.5 and le=5 bracket what the API
# answers itself and what waits on the provider.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def method_label(method: str | None) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


class HTTPMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str | None, route: str, status: int, seconds: float) -> None:
        label = method_label(method)
        self.requests.labels(method=label, route=route, status=str(status)).inc()
        self.duration.labels(method=label, route=route).observe(seconds)

    def initialise(self, outcomes: Iterable[tuple[str, str, int]]) -> None:
        """Create the (method, route, status) series the alert rule and the panels read at 0, before any request.

        A counter series that appears with its first value already > 0 is invisible to rate()/increase() until its
        second increment: the first burst of 5xx (APIHighErrorRate) or of 429s (the rate-limiting panel) would not
        show. Statuses not listed appear with their first request, as usual.
        """
        for method, route, status in outcomes:
            self.requests.labels(method=method_label(method), route=route, status=str(status))
            self.duration.labels(method=method_label(method), route=route)

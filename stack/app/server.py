"""HTTP interface of techno-os-api (standard library server; one thread per request).

GET  /healthz          200 {"status":"ok","breaker":<state>}
GET  /metrics          Prometheus text exposition
POST /v1/complete      {"prompt":str,"provider":"sim","model":"sim-1"} -> 200 {..tokens..}
                       | 503 {"error":..,"error_type":"circuit_open"|"provider_unavailable"} | 400 bad request
GET  /admin/breaker    {"threshold":N,"timeout_s":N,"state":..,"source":{"threshold":"env|default",...}}
GET  /admin/provider   the simulated provider's behaviour
POST /admin/provider   {"fail":bool,"latency_s":float,"error_rate":float} (each optional) -> the new behaviour
GET  /admin/ratelimit  {"limit":N,"window_s":N,"remaining":N,"retry_after_s":s,"source":{"limit":"env|default",...}}

Every request is counted in http_requests_total{method,route,status} and timed in http_request_duration_seconds
(app/http_metrics.py), by the route template it matched. Every route but the operational ones (/healthz, /metrics,
/admin/*) passes the rate limiter first (app/ratelimit.py): over its limit the answer is 429 with Retry-After.
"""

from __future__ import annotations

import json
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from app import __version__
from app.http_metrics import UNMATCHED_ROUTE, HTTPMetrics
from app.llm.breaker_config import BreakerConfig
from app.llm.circuit_breaker import CircuitBreaker
from app.llm.client import LLMCallError, LLMClient
from app.llm.provider import MAX_LATENCY_S, SimulatedProvider
from app.metrics import LLMMetrics
from app.ratelimit import RateLimiter, retry_after_header
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

MAX_BODY_BYTES = 1 << 20
# Probed every few seconds by healthchecks and Prometheus: logging them would drown the lines a human needs.
QUIET_PATHS = frozenset({"/healthz", "/metrics"})
# The route templates the server answers (no path parameters here: each template is its path). A path not listed is
# counted under UNMATCHED_ROUTE: metric labels never carry a raw path a client chose.
ROUTES = frozenset({"/healthz", "/metrics", "/v1/complete", "/admin/breaker", "/admin/provider", "/admin/ratelimit"})
# Never rate limited: a throttled healthcheck or scrape would read as the API being down, and an operator must be
# able to look at (and fix) a limited API.
UNLIMITED_ROUTES = frozenset({"/healthz", "/metrics"})
UNLIMITED_PREFIX = "/admin/"
# Created at 0 at start (see HTTPMetrics.initialise): what APIHighErrorRate and the rate-limiting panel read.
INITIAL_OUTCOMES = (
    ("POST", "/v1/complete", 200),
    ("POST", "/v1/complete", 429),
    ("POST", "/v1/complete", 503),
    ("GET", "/healthz", 200),
    ("GET", "/metrics", 200),
)


def route_template(path: str) -> str:
    route = path.split("?", 1)[0]
    return route if route in ROUTES else UNMATCHED_ROUTE


def rate_limited(template: str) -> bool:
    """Whether requests to a route template pass the limiter (every path the server does not serve does)."""
    return template not in UNLIMITED_ROUTES and not template.startswith(UNLIMITED_PREFIX)


class BadRequest(Exception):
    pass


class App:
    """Everything a request handler needs; one instance per server."""

    def __init__(
        self,
        config: BreakerConfig,
        breaker: CircuitBreaker,
        providers: dict[str, SimulatedProvider],
        metrics: LLMMetrics,
        limiter: RateLimiter,
        http_metrics: HTTPMetrics,
    ) -> None:
        self.config = config
        self.breaker = breaker
        self.providers = providers
        self.metrics = metrics
        self.limiter = limiter
        self.http_metrics = http_metrics
        self.client = LLMClient(providers, breaker, metrics)

    def breaker_view(self) -> dict[str, Any]:
        return {
            "threshold": self.config.threshold,
            "timeout_s": self.config.timeout_s,
            "state": self.breaker.state.label,
            "source": {"threshold": self.config.threshold_source, "timeout_s": self.config.timeout_source},
        }

    def provider_view(self, name: str) -> dict[str, Any]:
        behaviour = self.providers[name].behaviour
        return {
            "provider": name,
            "fail": behaviour.fail,
            "latency_s": behaviour.latency_s,
            "error_rate": behaviour.error_rate,
        }


class Handler(BaseHTTPRequestHandler):
    server_version = f"techno-os-api/{__version__}"
    protocol_version = "HTTP/1.1"
    app: ClassVar[App]
    _status: int | None = None  # the status this request was answered with (None: not answered)
    _started: float = 0.0

    # -- plumbing -----------------------------------------------------------------------------------------------
    def handle_one_request(self) -> None:
        """One request of the connection, counted and timed once answered (an error answer included)."""
        self._status = None
        super().handle_one_request()
        if self._status is not None and self.command:
            route = route_template(self.path)
            self.app.http_metrics.observe(self.command, route, self._status, time.perf_counter() - self._started)

    def parse_request(self) -> bool:
        # The clock starts once the request line is read: the time a kept-alive connection idles is not the API's.
        self._started = time.perf_counter()
        return super().parse_request()

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = int(code)
        super().send_response(code, message)

    def log_message(self, format: str, *args: Any) -> None:
        if self.path.split("?", 1)[0] in QUIET_PATHS:
            return
        sys.stderr.write(f"techno-os-api: {self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload, sort_keys=True).encode() + b"\n", "application/json", headers)

    def _refused_by_limiter(self) -> bool:
        """Answer 429 when the request's route is limited and over its budget; True when it did."""
        if not rate_limited(route_template(self.path)):
            return False
        decision = self.app.limiter.acquire()
        if decision.allowed:
            return False
        config = self.app.limiter.config
        # The request body (if any) is left unread: close the connection rather than parse it as the next request.
        self.close_connection = True
        self._json(
            HTTPStatus.TOO_MANY_REQUESTS,
            {
                "error": f"rate limit exceeded: at most {config.limit} requests per {config.window_s} s",
                "limit": config.limit,
                "window_s": config.window_s,
                "retry_after_s": round(decision.retry_after_s, 3),
            },
            {"Retry-After": retry_after_header(decision.retry_after_s), "Connection": "close"},
        )
        return True

    def _read_json(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise BadRequest("invalid Content-Length") from exc
        if length < 0 or length > MAX_BODY_BYTES:
            raise BadRequest(f"body must be at most {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            data = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise BadRequest(f"body is not JSON: {exc.msg}") from exc
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        return data

    def _route(self) -> str:
        return self.path.split("?", 1)[0]

    # -- endpoints ----------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        route = self._route()
        if self._refused_by_limiter():
            return
        if route == "/healthz":
            self._json(HTTPStatus.OK, {"status": "ok", "breaker": self.app.breaker.state.label})
        elif route == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(self.app.metrics.registry), CONTENT_TYPE_LATEST)
        elif route == "/admin/breaker":
            self._json(HTTPStatus.OK, self.app.breaker_view())
        elif route == "/admin/provider":
            self._json(HTTPStatus.OK, self.app.provider_view("sim"))
        elif route == "/admin/ratelimit":
            self._json(HTTPStatus.OK, self.app.limiter.view())
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: GET {route}"})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        route = self._route()
        if self._refused_by_limiter():
            return
        try:
            if route == "/v1/complete":
                self._complete(self._read_json())
            elif route == "/admin/provider":
                self._configure_provider(self._read_json())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: POST {route}"})
        except BadRequest as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})

    def _complete(self, body: dict[str, Any]) -> None:
        prompt = body.get("prompt")
        provider = body.get("provider", "sim")
        model = body.get("model", "sim-1")
        if not isinstance(prompt, str) or not prompt:
            raise BadRequest("prompt must be a non-empty string")
        # Only known providers/models become label values: client input must not grow metric cardinality.
        if provider not in self.app.providers:
            raise BadRequest(f"unknown provider {provider!r}; known: {sorted(self.app.providers)}")
        models = self.app.providers[provider].models
        if model not in models:
            raise BadRequest(f"unknown model {model!r} for {provider}; known: {list(models)}")
        try:
            result = self.app.client.complete(provider, model, prompt)
        except LLMCallError as exc:
            self._json(
                HTTPStatus.SERVICE_UNAVAILABLE,
                {"error": str(exc), "error_type": exc.error_type, "provider": provider, "model": model},
            )
            return
        completion = result.completion
        self._json(
            HTTPStatus.OK,
            {
                "provider": provider,
                "model": model,
                "text": completion.text,
                "tokens": {"prompt": completion.prompt_tokens, "completion": completion.completion_tokens},
                "latency_s": round(result.latency_s, 6),
            },
        )

    def _configure_provider(self, body: dict[str, Any]) -> None:
        unknown = set(body) - {"fail", "latency_s", "error_rate", "provider"}
        if unknown:
            raise BadRequest(f"unknown field(s): {sorted(unknown)}")
        name = body.get("provider", "sim")
        if name not in self.app.providers:
            raise BadRequest(f"unknown provider {name!r}")
        fail = body.get("fail")
        if fail is not None and not isinstance(fail, bool):
            raise BadRequest("fail must be true or false")
        latency = body.get("latency_s")
        if latency is not None:
            if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= MAX_LATENCY_S:
                raise BadRequest(f"latency_s must be a number of seconds between 0 and {MAX_LATENCY_S:g}")
            latency = float(latency)
        error_rate = body.get("error_rate")
        if error_rate is not None:
            if isinstance(error_rate, bool) or not isinstance(error_rate, (int, float)) or not 0 <= error_rate <= 1:
                raise BadRequest("error_rate must be a fraction of calls between 0 and 1")
            error_rate = float(error_rate)
        self.app.providers[name].configure(fail=fail, latency_s=latency, error_rate=error_rate)
        sys.stderr.write(f"techno-os-api: provider {name} set to {self.app.provider_view(name)}\n")
        self._json(HTTPStatus.OK, self.app.provider_view(name))


def make_server(app: App, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # a slow simulated call must not hold up shutdown
    return server

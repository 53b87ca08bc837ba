"""HTTP interface of techno-os-api (standard library server; one thread per request).

GET  /healthz          200 {"status":"ok","breaker":<state>}
GET  /metrics          Prometheus text exposition
POST /v1/complete      {"prompt":str,"provider":"sim","model":"sim-1"} -> 200 {..tokens..}
                       | 503 {"error":..,"error_type":"circuit_open"|"provider_unavailable"} | 400 bad request
GET  /admin/breaker    {"threshold":N,"timeout_s":N,"state":..,"source":{"threshold":"env|default",...}}
GET  /admin/provider   the simulated provider's behaviour
POST /admin/provider   {"fail":bool,"latency_s":float} (both optional) -> the new behaviour
"""

from __future__ import annotations

import json
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from app import __version__
from app.llm.breaker_config import BreakerConfig
from app.llm.circuit_breaker import CircuitBreaker
from app.llm.client import LLMCallError, LLMClient
from app.llm.provider import MAX_LATENCY_S, SimulatedProvider
from app.metrics import LLMMetrics
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

MAX_BODY_BYTES = 1 << 20
# Probed every few seconds by healthchecks and Prometheus: logging them would drown the lines a human needs.
QUIET_PATHS = frozenset({"/healthz", "/metrics"})


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
    ) -> None:
        self.config = config
        self.breaker = breaker
        self.providers = providers
        self.metrics = metrics
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
        return {"provider": name, "fail": behaviour.fail, "latency_s": behaviour.latency_s}


class Handler(BaseHTTPRequestHandler):
    server_version = f"techno-os-api/{__version__}"
    protocol_version = "HTTP/1.1"
    app: ClassVar[App]

    # -- plumbing -----------------------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        if self.path.split("?", 1)[0] in QUIET_PATHS:
            return
        sys.stderr.write(f"techno-os-api: {self.address_string()} {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload, sort_keys=True).encode() + b"\n", "application/json")

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
        if route == "/healthz":
            self._json(HTTPStatus.OK, {"status": "ok", "breaker": self.app.breaker.state.label})
        elif route == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(self.app.metrics.registry), CONTENT_TYPE_LATEST)
        elif route == "/admin/breaker":
            self._json(HTTPStatus.OK, self.app.breaker_view())
        elif route == "/admin/provider":
            self._json(HTTPStatus.OK, self.app.provider_view("sim"))
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: GET {route}"})

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        route = self._route()
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
        unknown = set(body) - {"fail", "latency_s", "provider"}
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
        self.app.providers[name].configure(fail=fail, latency_s=latency)
        sys.stderr.write(f"techno-os-api: provider {name} set to {self.app.provider_view(name)}\n")
        self._json(HTTPStatus.OK, self.app.provider_view(name))


def make_server(app: App, host: str, port: int) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # a slow simulated call must not hold up shutdown
    return server

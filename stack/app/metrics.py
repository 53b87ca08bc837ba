"""The LLM metrics the F9.10 alert rules and dashboard read (names and labels are a contract: see stack/README.md).

llm_request_latency_seconds{provider,model}   histogram, one observation per /v1/complete call whatever its outcome
llm_errors_total{provider,error_type}          counter, one increment per failed call; error_type is one of
                                               ERROR_TYPES, so errors / requests is a ratio in [0, 1]
llm_tokens_total{provider,model,type}          counter, type is "prompt" or "completion"
llm_circuit_breaker_state                      gauge, 0 closed, 1 open, 2 half_open (read at scrape time)
"""

from __future__ import annotations

from app.llm.circuit_breaker import CircuitBreaker
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

ERROR_TYPES = ("circuit_open", "provider_unavailable")
TOKEN_TYPES = ("prompt", "completion")
# Fine around the 5 s LLMHighLatency threshold and well beyond it, so histogram_quantile can tell 4 s from 8 s.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 30.0, 60.0)


class LLMMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.latency = Histogram(
            "llm_request_latency_seconds",
            "Latency of LLM completion requests, whatever their outcome",
            ["provider", "model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "llm_errors_total",
            "Failed LLM completion requests by cause",
            ["provider", "error_type"],
            registry=registry,
        )
        self.tokens = Counter(
            "llm_tokens_total",
            "Tokens consumed by LLM completions",
            ["provider", "model", "type"],
            registry=registry,
        )
        self.breaker_state = Gauge(
            "llm_circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half_open",
            registry=registry,
        )

    def bind_breaker(self, breaker: CircuitBreaker) -> None:
        # Read at scrape time, so an open breaker whose timeout elapsed shows half_open without any traffic.
        self.breaker_state.set_function(lambda: breaker.state.code)

    def initialise(self, catalogue: dict[str, tuple[str, ...]]) -> None:
        """Create every label combination at 0 so the series exist before the first request.

        Without this a counter series appears with its first value already > 0 and increase()/rate() over it stay
        0 until the second increment: the first burst of provider failures would be invisible to the alert rules.
        """
        for provider, models in catalogue.items():
            for error_type in ERROR_TYPES:
                self.errors.labels(provider=provider, error_type=error_type)
            for model in models:
                self.latency.labels(provider=provider, model=model)
                for token_type in TOKEN_TYPES:
                    self.tokens.labels(provider=provider, model=model, type=token_type)

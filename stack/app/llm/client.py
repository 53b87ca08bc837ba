"""Calls a provider through the circuit breaker and records exactly one latency observation per call and at most
one error per call (so llm_errors_total / llm_request_latency_seconds_count is a true error ratio)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.llm.circuit_breaker import CircuitBreaker, CircuitOpenError
from app.llm.provider import Completion, ProviderUnavailable, SimulatedProvider
from app.metrics import LLMMetrics


class LLMCallError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class CallResult:
    completion: Completion
    latency_s: float


class LLMClient:
    def __init__(self, providers: dict[str, SimulatedProvider], breaker: CircuitBreaker, metrics: LLMMetrics) -> None:
        self.providers = providers
        self.breaker = breaker
        self.metrics = metrics

    def complete(self, provider_name: str, model: str, prompt: str) -> CallResult:
        provider = self.providers[provider_name]
        started = time.monotonic()
        error_type: str | None = None
        try:
            completion = self.breaker.call(lambda: provider.complete(prompt, model))
        except CircuitOpenError as exc:
            error_type = "circuit_open"
            raise LLMCallError(error_type, str(exc)) from exc
        except ProviderUnavailable as exc:
            error_type = "provider_unavailable"
            raise LLMCallError(error_type, str(exc)) from exc
        finally:
            latency_s = time.monotonic() - started
            self.metrics.latency.labels(provider=provider_name, model=model).observe(latency_s)
            if error_type is not None:
                self.metrics.errors.labels(provider=provider_name, error_type=error_type).inc()
        self.metrics.tokens.labels(provider=provider_name, model=model, type="prompt").inc(completion.prompt_tokens)
        self.metrics.tokens.labels(provider=provider_name, model=model, type="completion").inc(
            completion.completion_tokens
        )
        return CallResult(completion, latency_s)

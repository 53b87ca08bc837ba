"""The built-in simulated LLM provider. Its failure mode, error rate and latency are set at run time so drills can
make the F9.10 alerts fire (POST /admin/provider) without any real provider or network access."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

MAX_LATENCY_S = 60.0  # a drill never needs more; caps how long a request thread can be held


class ProviderUnavailable(Exception):
    """The provider could not serve the request (counted as error_type="provider_unavailable")."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class ProviderBehaviour:
    fail: bool
    latency_s: float
    # A fraction of calls that fail, spread evenly (the 1st, then one every 1/error_rate): at most one failure in a
    # row while error_rate <= 0.5, so the breaker (N consecutive failures) stays closed and only the error ratio
    # moves — LLMErrorRateHigh without LLMProviderDown.
    error_rate: float = 0.0


class SimulatedProvider:
    name = "sim"
    models = ("sim-1", "sim-2")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._behaviour = ProviderBehaviour(fail=False, latency_s=0.0)
        self._calls = 0  # calls since the error rate was last set

    @property
    def behaviour(self) -> ProviderBehaviour:
        with self._lock:
            return self._behaviour

    def configure(
        self, fail: bool | None = None, latency_s: float | None = None, error_rate: float | None = None
    ) -> ProviderBehaviour:
        with self._lock:
            current = self._behaviour
            if error_rate is not None:
                self._calls = 0
            self._behaviour = ProviderBehaviour(
                fail=current.fail if fail is None else fail,
                latency_s=current.latency_s if latency_s is None else latency_s,
                error_rate=current.error_rate if error_rate is None else error_rate,
            )
            return self._behaviour

    def _fails_now(self) -> bool:
        """Whether this call fails under the error rate: call n fails when ceil(n * rate) grows."""
        with self._lock:
            rate = self._behaviour.error_rate
            if rate <= 0:
                return False
            self._calls += 1
            return math.ceil(self._calls * rate - 1e-9) > math.ceil((self._calls - 1) * rate - 1e-9)

    def complete(self, prompt: str, model: str) -> Completion:
        behaviour = self.behaviour
        if behaviour.latency_s > 0:
            time.sleep(behaviour.latency_s)
        if behaviour.fail:
            raise ProviderUnavailable(f"simulated provider {self.name} is unavailable (set by /admin/provider)")
        if self._fails_now():
            raise ProviderUnavailable(
                f"simulated provider {self.name} failed this call (error rate {behaviour.error_rate:g}, set by "
                "/admin/provider)"
            )
        # Deterministic "tokens": one per whitespace-separated word of the prompt, an echo-sized completion.
        prompt_tokens = max(1, len(prompt.split()))
        completion_tokens = min(32, prompt_tokens + 4)
        return Completion(
            text=f"[{model}] ok: {prompt[:64]}", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )


PROVIDERS: dict[str, SimulatedProvider] = {SimulatedProvider.name: SimulatedProvider()}

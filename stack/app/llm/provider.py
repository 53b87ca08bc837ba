"""The built-in simulated LLM provider. Its failure mode and latency are set at run time so drills can make the
F9.10 alerts fire (POST /admin/provider) without any real provider or network access."""

from __future__ import annotations

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


class SimulatedProvider:
    name = "sim"
    models = ("sim-1", "sim-2")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._behaviour = ProviderBehaviour(fail=False, latency_s=0.0)

    @property
    def behaviour(self) -> ProviderBehaviour:
        with self._lock:
            return self._behaviour

    def configure(self, fail: bool | None = None, latency_s: float | None = None) -> ProviderBehaviour:
        with self._lock:
            current = self._behaviour
            self._behaviour = ProviderBehaviour(
                fail=current.fail if fail is None else fail,
                latency_s=current.latency_s if latency_s is None else latency_s,
            )
            return self._behaviour

    def complete(self, prompt: str, model: str) -> Completion:
        behaviour = self.behaviour
        if behaviour.latency_s > 0:
            time.sleep(behaviour.latency_s)
        if behaviour.fail:
            raise ProviderUnavailable(f"simulated provider {self.name} is unavailable (set by /admin/provider)")
        # Deterministic "tokens": one per whitespace-separated word of the prompt, an echo-sized completion.
        prompt_tokens = max(1, len(prompt.split()))
        completion_tokens = min(32, prompt_tokens + 4)
        return Completion(
            text=f"[{model}] ok: {prompt[:64]}", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )


PROVIDERS: dict[str, SimulatedProvider] = {SimulatedProvider.name: SimulatedProvider()}

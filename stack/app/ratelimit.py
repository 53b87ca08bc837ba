"""The API's rate limiter (F9.11), configured from the environment like the circuit breaker.

VERITTA_RL_LIMIT   requests accepted per window (positive integer, default 100)
VERITTA_RL_WINDOW  the window, in seconds (positive integer, default 10)

A sliding window: at most LIMIT requests are accepted in any WINDOW seconds; one more is answered 429 with a
`Retry-After` of the seconds until the oldest accepted request leaves the window. One budget for the whole API
instance, not one per client: what it protects is the LLM provider behind it (its cost and its own quota), which
every client shares. The operational routes (health, metrics, admin) are never limited — a throttled healthcheck or
scrape would read as the API being down.

An unset variable means the default; a set but invalid value (empty, not an integer, zero, negative) raises
RateLimitConfigError, so the service refuses to start (see app/__main__.py), naming the variable.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.llm.breaker_config import read_positive_int

DEFAULT_LIMIT = 100
DEFAULT_WINDOW_S = 10


class RateLimitConfigError(ValueError):
    """A VERITTA_RL_* variable holds a value the limiter cannot use; the message is one line for stderr."""


@dataclass(frozen=True)
class RateLimitConfig:
    limit: int
    window_s: int
    limit_source: str  # "env" or "default"
    window_source: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RateLimitConfig:
        environ = os.environ if environ is None else environ
        limit, limit_source = read_positive_int(
            environ, "VERITTA_RL_LIMIT", DEFAULT_LIMIT, "requests accepted per window", RateLimitConfigError
        )
        window, window_source = read_positive_int(
            environ, "VERITTA_RL_WINDOW", DEFAULT_WINDOW_S, "seconds of the rate-limit window", RateLimitConfigError
        )
        return cls(limit, window, limit_source, window_source)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int  # requests still accepted in the current window, after this one
    retry_after_s: float  # refused: seconds until one more is accepted; allowed: 0


class RateLimiter:
    """Sliding-window log: the times of the requests accepted within the last window (at most `limit` of them)."""

    def __init__(self, config: RateLimitConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._accepted: deque[float] = deque()
        self._lock = threading.Lock()

    def _forget_old(self, now: float) -> None:
        horizon = now - self.config.window_s
        while self._accepted and self._accepted[0] <= horizon:
            self._accepted.popleft()

    def acquire(self) -> Decision:
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            if len(self._accepted) < self.config.limit:
                self._accepted.append(now)
                return Decision(True, self.config.limit - len(self._accepted), 0.0)
            return Decision(False, 0, self._accepted[0] + self.config.window_s - now)

    def view(self) -> dict[str, Any]:
        """What GET /admin/ratelimit reports: the settings, where each came from, and the budget left now."""
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            remaining = self.config.limit - len(self._accepted)
            retry = 0.0 if remaining else self._accepted[0] + self.config.window_s - now
        return {
            "limit": self.config.limit,
            "window_s": self.config.window_s,
            "remaining": remaining,
            "retry_after_s": round(retry, 3),
            "source": {"limit": self.config.limit_source, "window_s": self.config.window_source},
        }


def retry_after_header(seconds: float) -> str:
    """`Retry-After` takes whole seconds: rounded up, so a client that obeys it is accepted."""
    return str(max(1, math.ceil(seconds)))

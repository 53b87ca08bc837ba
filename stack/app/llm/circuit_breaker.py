"""A thread-safe circuit breaker: closed -> open after N consecutive failures -> half_open after a timeout.

In half_open exactly one trial call is let through; its success closes the breaker, its failure opens it again
(and restarts the timeout). Every other call made while the breaker is open or a trial is in flight is rejected.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class BreakerState(enum.Enum):
    # The numeric codes are the values of the `llm_circuit_breaker_state` gauge (and the dashboard's mappings).
    CLOSED = ("closed", 0)
    OPEN = ("open", 1)
    HALF_OPEN = ("half_open", 2)

    @property
    def label(self) -> str:
        return self.value[0]

    @property
    def code(self) -> int:
        return self.value[1]


class CircuitOpenError(Exception):
    """The breaker rejected the call without calling the provider."""


class CircuitBreaker:
    def __init__(self, threshold: int, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if threshold < 1 or timeout_s <= 0:
            raise ValueError(f"threshold must be >= 1 and timeout_s > 0 (got {threshold}, {timeout_s})")
        self.threshold = threshold
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive failures while closed
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """Current state; an open breaker whose timeout has elapsed reports half_open (a trial would be allowed)."""
        with self._lock:
            return self._effective_state()

    def _effective_state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.timeout_s:
            return BreakerState.HALF_OPEN
        return self._state

    def _acquire(self) -> bool:
        """Admit a call (True when it is the half-open trial) or raise CircuitOpenError."""
        with self._lock:
            state = self._effective_state()
            if state is BreakerState.CLOSED:
                return False
            if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
                self._state = BreakerState.HALF_OPEN
                self._trial_in_flight = True
                return True
            raise CircuitOpenError(f"circuit breaker is {state.label}")

    def _record(self, success: bool, trial: bool) -> None:
        with self._lock:
            if trial:
                # Only the trial decides what happens after half_open.
                self._trial_in_flight = False
                if success:
                    self._close()
                else:
                    self._open()
                return
            # A call admitted while closed that finishes after the breaker changed state has no say any more.
            if self._state is not BreakerState.CLOSED:
                return
            if success:
                self._failures = 0
                return
            self._failures += 1
            if self._failures >= self.threshold:
                self._open()

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0

    def call(self, fn: Callable[[], T]) -> T:
        """Run fn through the breaker. Any exception from fn counts as a failure and is re-raised."""
        trial = self._acquire()
        try:
            result = fn()
        except BaseException:
            self._record(success=False, trial=trial)
            raise
        self._record(success=True, trial=trial)
        return result

"""The one bounded poll every wait in sealgate goes through: a stack's readiness, a restored server coming up, an
alert reaching Prometheus, a delivery reaching a receiver. Call a probe until its answer is truthy or the time is up,
sleeping between tries; a run being stopped ends the wait at its next try."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class PollCancelled(Exception):
    """The run was stopped while a poll waited."""


def poll(
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.25,
    sleep: Callable[[float], None] = time.sleep,
    cancelled: threading.Event | None = None,
    on_wait: Callable[[float], None] | None = None,
) -> tuple[T, float]:
    """Call `probe` until its answer is truthy or `timeout` seconds have passed; return (its last answer, seconds
    waited). A falsy answer at the deadline is returned as it is: the caller says what was not met, and where.

    `on_wait(elapsed)` is called after every unmet try (progress lines); `sleep` is the caller's own when it must end
    early (a check's ctx.sleep); `cancelled` set raises PollCancelled at the next try."""
    started = time.monotonic()
    deadline = started + max(0.0, timeout)
    while True:
        if cancelled is not None and cancelled.is_set():
            raise PollCancelled()
        answer = probe()
        now = time.monotonic()
        if answer or now >= deadline:
            return answer, now - started
        if on_wait is not None:
            on_wait(now - started)
        sleep(min(interval, max(0.0, deadline - now)))

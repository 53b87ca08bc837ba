"""Reads the circuit breaker's configuration from the environment.

An unset variable means the default. A set but invalid value (empty, not an integer, zero, negative) is an error:
the service must refuse to start rather than run with a breaker nobody configured (`int("")` crashing with a
traceback, or a silent fallback to the default, would both hide the operator's mistake).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# Digits only: "3.0", "1e3", "+3", "0x10" are refused rather than guessed at.
_POSITIVE_INT = re.compile(r"[0-9]+")


class BreakerConfigError(ValueError):
    """A VERITTA_CB_* variable holds a value the breaker cannot use; the message is one line for stderr."""


@dataclass(frozen=True)
class BreakerConfig:
    threshold: int
    timeout_s: int
    threshold_source: str  # "env" or "default"
    timeout_source: str


def read_positive_int(
    environ: Mapping[str, str],
    name: str,
    default: int,
    meaning: str,
    error: type[ValueError] = BreakerConfigError,
) -> tuple[int, str]:
    """(value, "env" | "default") of a positive integer variable; `error` (one stderr line) for a bad value. Shared
    by every VERITTA_* setting (the breaker's, the rate limiter's), so all refuse a bad value the same way."""
    if name not in environ:
        return default, "default"
    raw = environ[name]
    value = raw.strip()
    if not _POSITIVE_INT.fullmatch(value) or int(value) < 1:
        raise error(
            f"{name}={raw!r} is invalid: expected a positive integer ({meaning}), e.g. {name}={default}; "
            f"unset it to use the default {default}"
        )
    return int(value), "env"

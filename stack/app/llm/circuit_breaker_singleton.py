"""The process-wide circuit breaker, configured from the environment at import (F9.10 EIXO 4).

VERITTA_CB_THRESHOLD  consecutive provider failures that open the breaker (positive integer, default 3)
VERITTA_CB_TIMEOUT    seconds an open breaker waits before letting one trial call through (positive integer,
                      default 60)

An unset variable means the default; a set but invalid value raises BreakerConfigError here, at import, so the
service refuses to start (see app/llm/breaker_config.py).
"""

from __future__ import annotations

import os

from app.llm.breaker_config import BreakerConfig, BreakerConfigError, read_positive_int
from app.llm.circuit_breaker import CircuitBreaker

__all__ = [
    "CIRCUIT_BREAKER_THRESHOLD",
    "CIRCUIT_BREAKER_TIMEOUT",
    "CONFIG",
    "BreakerConfig",
    "BreakerConfigError",
    "circuit_breaker",
    "get_circuit_breaker",
]

DEFAULT_THRESHOLD = 3
DEFAULT_TIMEOUT_S = 60

# The names the seed's code used (F9.9-C constants, F9.10 env-driven).
CIRCUIT_BREAKER_THRESHOLD, _threshold_source = read_positive_int(
    os.environ, "VERITTA_CB_THRESHOLD", DEFAULT_THRESHOLD, "consecutive failures that open the breaker"
)
CIRCUIT_BREAKER_TIMEOUT, _timeout_source = read_positive_int(
    os.environ, "VERITTA_CB_TIMEOUT", DEFAULT_TIMEOUT_S, "seconds an open breaker waits before a trial call"
)
CONFIG = BreakerConfig(CIRCUIT_BREAKER_THRESHOLD, CIRCUIT_BREAKER_TIMEOUT, _threshold_source, _timeout_source)

circuit_breaker = CircuitBreaker(CIRCUIT_BREAKER_THRESHOLD, CIRCUIT_BREAKER_TIMEOUT)


def get_circuit_breaker() -> CircuitBreaker:
    return circuit_breaker

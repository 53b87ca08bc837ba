"""User-facing errors: each carries where (file:line or JSON path), what is wrong and what to do.

The CLI prints them as one line each and exits non-zero; they never surface as tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes are part of the contract with CI.
EXIT_OK = 0
EXIT_REFUSED = 1  # ran, but a stage/criterion did not pass or the seal was refused
EXIT_USAGE = 2  # bad input: spec, waiver, arguments
EXIT_WAIVER_EXPIRED = 3  # verify: sealed and intact, but a waiver it relied on has expired since (never silently fine)
EXIT_INTERRUPTED_INT = 130
EXIT_INTERRUPTED_TERM = 143


@dataclass(frozen=True)
class Problem:
    where: str  # "sprint/F9.10.yaml:12" or "artifacts/f9_10/eixo_2.json: $.predicate.checks[0]"
    what: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text} ({self.hint})" if self.hint else text


class SealgateError(Exception):
    """An error the user can fix; its message is complete without a traceback."""

    exit_code = EXIT_REFUSED

    def __init__(self, *problems: Problem | str) -> None:
        self.problems = [p if isinstance(p, Problem) else Problem("", p) for p in problems]
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(SealgateError):
    """Malformed spec, waiver, argument or configuration."""

    exit_code = EXIT_USAGE


class EvidenceError(SealgateError):
    """Evidence missing, stale, tampered with or invalid."""


class SealRefused(SealgateError):
    """The seal (tag) cannot be created; the message says why."""


class Interrupted(BaseException):
    """SIGTERM during a run: unwinds like KeyboardInterrupt so the stack is stopped and no tag is made."""

    exit_code = EXIT_INTERRUPTED_TERM

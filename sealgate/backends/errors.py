"""The stack's errors, a leaf module: every backend module, the stack description and the compose-file reader raise
them, and the runner and checks catch them, without importing one another for it."""

from __future__ import annotations

from sealgate.kernel.errors import Problem, SealgateError


class StackError(SealgateError):
    """The stack could not be brought up, inspected or stopped; the message says which service and why.

    `logs` maps a failing service to the tail of its output, captured when the error was raised (the container or
    process may be gone by the time anyone looks), so evidence can attach it.
    """

    def __init__(self, *problems: Problem | str, logs: dict[str, str] | None = None) -> None:
        self.logs: dict[str, str] = dict(logs or {})
        super().__init__(*problems)


class ServiceNotRunning(StackError):
    """A service of the stack is not running on this backend (e.g. Grafana where no Grafana can run).

    `optional`: the stack description marks it `optional: true` and the backend left it out because it cannot run
    here (no image, no local recipe, its program not installed) — a check that needs it is *skipped* with the reason,
    never errored and never passed (the runner decides so)."""

    def __init__(self, service: str, reason: str, *, optional: bool = False) -> None:
        self.service = service
        self.reason = reason
        self.optional = optional
        said = "optional, cannot run here" if optional else "not running"
        super().__init__(f"{service}: {said} ({reason})")


class StackUnavailable(Exception):
    """The stack could not be brought up; checks that need it are errored with this reason."""

"""The interface every stack backend implements; checks talk to the stack only through it.

A backend brings up the stack a project *describes* (its StackDescription: the compose file plus each service's
role, port and readiness probe); it names no service of its own.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sealgate.backends.errors import StackError
from sealgate.kernel.errors import Problem

if TYPE_CHECKING:
    from sealgate.backends.description import StackDescription


@dataclass
class ServiceState:
    name: str
    running: bool
    healthy: bool | None  # None: no healthcheck information
    container_id: str | None = None  # compose only
    image: str | None = None
    image_id: str | None = None
    pid: int | None = None  # local only
    detail: str = ""


@dataclass
class StackTimings:
    """Irreducible waits measured while bringing the stack up (seconds)."""

    up: float = 0.0  # the backend's start command returned
    ready: float = 0.0  # every service healthy / ready
    fresh_scrape: float = 0.0  # Prometheus holds an `up` sample of the API newer than this start
    extra: dict[str, float] = field(default_factory=dict)


class StackBackend(abc.ABC):
    name: ClassVar[str]
    containerized: ClassVar[bool]

    def __init__(
        self,
        root: Path,
        run_dir: Path,
        progress: Callable[[str], None] = print,
        *,
        description: StackDescription | None = None,
    ) -> None:
        """`description` defaults to the project's stack description at its default path."""
        from sealgate.backends.description import load_description

        self.root = root  # the project's repository
        self.cancelled = threading.Event()  # set by cancel(): a wait in up()/start_service() ends at its next poll
        self.description = description or load_description(root)
        if self.description.problems:
            raise StackError(
                *self.description.problems,
                f"{self.description.path} does not match its compose file: no stack is started",
            )
        self.run_dir = run_dir  # scratch directory for this run (data dirs, logs)
        self.progress = progress
        self.timings = StackTimings()
        self.started_at: float | None = None  # time.time() when up() began
        # How this backend was chosen (select_backend fills it; `auto` records why), for evidence.
        self.selection: dict[str, str] = {"requested": self.name, "chosen": self.name, "reason": "constructed directly"}

    def describe(self) -> dict[str, object]:
        """What evidence records about this backend (which images or binaries ran, from where); JSON-serialisable."""
        return {"backend": self.name, "containerized": self.containerized, "selection": dict(self.selection)}

    def stop_by_hand(self) -> str:
        """How a user stops what `down` could not (printed when `down` fails)."""
        return f"stop the {self.name} stack's services by hand"

    def cancel(self) -> None:
        """Make a start in progress (in another thread) give up at its next poll; down() still has to follow."""
        self.cancelled.set()

    @abc.abstractmethod
    def copy(self, name: str, run_dir: Path, services: list[str] | None = None) -> StackBackend:
        """An isolated copy of this stack (not started): its own project or processes, ports chosen by the kernel,
        its own volumes or data, the same files; `services` limits it to those (a drill needs no database). Copies
        are throwaway: stop them with down(remove_volumes=True)."""

    @abc.abstractmethod
    def up(self, timeout: float = 180) -> None:
        """Start every service and wait (with a progress line) for health, readiness and a fresh scrape."""

    @abc.abstractmethod
    def down(self, remove_volumes: bool = False) -> None:
        """Stop every service; keep data (volumes / data dirs) unless told otherwise."""

    @abc.abstractmethod
    def url(self, service: str) -> str:
        """Base URL reachable from this host (http://127.0.0.1:PORT); ServiceNotRunning when it does not run."""

    @abc.abstractmethod
    def services(self) -> dict[str, ServiceState]:
        """State of each service of the stack."""

    @abc.abstractmethod
    def logs(self, service: str, tail: int = 200) -> str:
        """Recent output of a service (where a receiver that prints its deliveries shows the alerts)."""

    @abc.abstractmethod
    def stop_service(self, service: str) -> None:
        """Stop one service (drills: stop the API to make APIDown fire)."""

    @abc.abstractmethod
    def start_service(self, service: str) -> None:
        """Start one stopped service again and wait until it answers."""

    @abc.abstractmethod
    def environment(self, service: str) -> dict[str, str]:
        """The environment variables `service` runs with (what a check of its configuration compares)."""

    def facts(self) -> dict[str, str]:
        """Values a project's own scripts get through `{placeholders}` (the stack description's `backup.args`):
        `backend`, `url:<service>`, `port:<service>` (its host port), `env:<service>:<VAR>`, plus the backend's own
        (compose: `project`, `compose_file`; local: `data_dir`). Only services that run here appear."""
        facts = {"backend": self.name}
        for name, state in self.services().items():
            if not state.running:
                continue
            try:
                url = self.url(name)
            except StackError:
                continue
            facts[f"url:{name}"] = url
            facts[f"port:{name}"] = url.rsplit(":", 1)[1].split("/", 1)[0]
            for key, value in self.environment(name).items():
                facts[f"env:{name}:{key}"] = value
        return facts

    def script_args(self, templates: dict[str, list[str]], where: str) -> list[str]:
        """A project script's arguments for this backend, filled from facts() (e.g. the backup script's)."""
        from sealgate.backends.description import render

        if self.name not in templates:
            raise StackError(Problem(where, f"no arguments for the {self.name} backend", f"add `{self.name}:` there"))
        return render(templates[self.name], self.facts(), where)

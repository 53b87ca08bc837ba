"""The interface every stack backend implements; checks talk to the stack only through it.

A backend brings up the stack a project *describes* (its StackDescription: the compose file plus each service's
role, port and readiness probe); it names no service of its own.
"""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sealgate.backends.errors import StackError
from sealgate.kernel.errors import Problem
from sealgate.kernel.fsutil import sha256_file

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


@dataclass(frozen=True)
class ToolVersion:
    """A program a backend runs for a service, and the version it reports (None, with `why`, when it says none)."""

    tool: str
    version: str | None
    why: str = ""

    def to_json(self) -> dict[str, str | None]:
        return {"tool": self.tool, "version": self.version, **({"why": self.why} if self.why else {})}


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
    # True when Prometheus scrapes other addresses than the compose file names (the local backend's 127.0.0.1:<port>):
    # the `instance` values a rule names cannot be judged against this stack.
    rewrites_scrape_addresses: ClassVar[bool] = False

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
        # What ran, gathered once per start (what_ran); drift lines already printed, shared with this stack's copies
        # so a drill's copies do not say them again.
        self._what_ran: dict[str, Any] | None = None
        self._what_ran_at: float | None = None
        self._what_ran_lock = threading.Lock()
        self.announced: set[str] = set()
        self._announce_lock = threading.Lock()  # copies start in parallel threads: one of them says a line

    def describe(self) -> dict[str, object]:
        """What evidence records about this backend (`run.stack`); JSON-serialisable. Every backend gives:

        - `backend`, `containerized`, `selection` (how it was chosen);
        - `compose_file`, `compose_file_sha256`: the compose file the stack was brought up from;
        - `images`: `{service: {"image": ref, "id": "sha256:…", "repo_digest": str | None}}` for every service that
          ran from an image (`repo_digest` is None for a local build, which has none); `{}` where nothing ran from one;
        - `versions`: `{service: version}` as the running software reports it — its API where it has one
          (Prometheus' buildinfo, Alertmanager's status, PostgreSQL's `server_version`), else the program's own
          `--version` (`version_sources` says which: `api` | `tool`); `versions_unknown`: `{service: why}`;
        - `version_drift`: one line per service whose version differs from the one its compose image tag pins.

        A backend adds its own facts (ports, project, binaries). The live facts are gathered once per start, when the
        stack is ready; before a start they are empty."""
        return {
            "backend": self.name,
            "containerized": self.containerized,
            "selection": dict(self.selection),
            **self.what_ran(),
        }

    # -- what ran: the facts evidence is bound to ------------------------------------------------------------------

    def what_ran(self) -> dict[str, Any]:
        """The compose file's digest, the images and versions that ran and the drift from the pins (see describe);
        gathered on the first call after each start, then kept: they do not change while the stack runs."""
        with self._what_ran_lock:
            if self.started_at is None:
                return self.what_ran_facts({}, {}, {}, {})
            if self._what_ran is None or self._what_ran_at != self.started_at:
                self._what_ran = self._gather_what_ran()
                self._what_ran_at = self.started_at
            return deepcopy(self._what_ran)

    def record_what_ran(self) -> None:
        """Gather what ran once the stack is ready (backends call it at the end of up()) and print each drift line
        this stack (or one it was copied from) has not printed yet."""
        for line in self.what_ran()["version_drift"]:
            with self._announce_lock:
                if line in self.announced:
                    continue
                self.announced.add(line)
            self.progress(f"stack: version drift — {line}")

    def share_facts_with(self, twin: StackBackend) -> StackBackend:
        """A copy of this stack (copy()) says a drift line only if this one has not: one set for both."""
        twin.announced, twin._announce_lock = self.announced, self._announce_lock
        return twin

    def image_facts(self) -> dict[str, dict[str, str | None]]:
        """`{service: {"image", "id", "repo_digest"}}` of what ran from an image; none by default (processes)."""
        return {}

    def tool_versions(self) -> dict[str, ToolVersion]:
        """The program this backend runs for each service and the version it reports; none by default (a
        containerized backend runs images, whose versions the running servers report)."""
        return {}

    def ran_as(self, service: str) -> str:
        """What ran for `service`, as a drift line names it (an image, a program)."""
        return service

    def database_version(self, service: str) -> str:
        """`SHOW server_version` of the PostgreSQL a database service runs, asked through this backend."""
        raise StackError(Problem(service, f"the {self.name} backend cannot ask its database for its version"))

    def pinned_images(self) -> dict[str, str]:
        """service -> the image its compose file pins, as configured (the process environment, no offline env file:
        the pin is what the project declares, whatever stands in for it on this machine)."""
        from sealgate.backends.composefile import ComposeFile

        try:
            file = ComposeFile(self.root / self.description.compose_file, os.environ, self.description.compose_file)
        except StackError:
            return {}
        return {name: str(svc.image) for name, svc in file.services.items() if svc.image}

    def _gather_what_ran(self) -> dict[str, Any]:
        """The live facts of this start. By default only the compose file's digest: a backend that can say which
        images and versions ran returns `sealgate.backends.versions.gather_what_ran(self)` (compose and local do;
        it asks the running servers through the HTTP layer, which this interface module does not import)."""
        return self.what_ran_facts({}, {}, {}, {})

    def what_ran_facts(
        self,
        images: dict[str, dict[str, str | None]],
        versions: dict[str, str],
        sources: dict[str, str],
        unknown: dict[str, str],
        drift: list[str] | None = None,
    ) -> dict[str, Any]:
        """The record describe() gives, from what was found (sorted, so evidence is deterministic)."""
        compose_file = self.root / self.description.compose_file
        return {
            "compose_file": self.description.compose_file,
            "compose_file_sha256": sha256_file(compose_file) if compose_file.is_file() else None,
            "images": dict(sorted(images.items())),
            "versions": dict(sorted(versions.items())),
            "version_sources": dict(sorted(sources.items())),
            "versions_unknown": dict(sorted(unknown.items())),
            "version_drift": list(drift or []),
        }

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

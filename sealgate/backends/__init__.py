"""Stack backends: a project's described stack brought up with Docker Compose (`compose`), as local processes
(`local`), or by any backend a third party installs under the `sealgate.backends` entry point group; `auto` picks
compose when a Docker engine answers and Compose is installed, else local.

The backend modules are imported lazily: selecting `local` never imports the Docker SDK.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from sealgate.backends.base import StackBackend

if TYPE_CHECKING:
    from sealgate.backends.description import StackDescription
from sealgate.kernel.errors import InputError, Problem

ENTRY_POINT_GROUP = "sealgate.backends"
ENGINE_TIMEOUT = 5.0  # `docker info` answers in well under a second when dockerd runs; a hung socket must not hang us


def docker_engine_answers(timeout: float = ENGINE_TIMEOUT) -> bool:
    """True when the docker CLI exists and a Docker engine answers it within `timeout` seconds."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def compose_available(timeout: float = ENGINE_TIMEOUT) -> bool:
    from sealgate.backends.compose import detect_compose

    return detect_compose(timeout) is not None


def auto_choice() -> tuple[str, str]:
    """(backend name, why) for `auto`; the reason is recorded in evidence."""
    if not docker_engine_answers():
        return "local", "no Docker engine answers"
    if not compose_available():
        return "local", "a Docker engine answers but neither `docker compose` nor `docker-compose` is installed"
    return "compose", "a Docker engine answers and Compose is installed"


def available_backends() -> dict[str, Callable[[], type[StackBackend]]]:
    """Backend name -> a loader of its class, from the `sealgate.backends` entry point group (a third party adds a
    backend by declaring one in its own distribution). The built-in two are always there, even when sealgate runs
    from a source tree that was never installed."""
    found: dict[str, Callable[[], type[StackBackend]]] = {
        "compose": lambda: _builtin("compose", "ComposeBackend"),
        "local": lambda: _builtin("local", "LocalBackend"),
    }
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found[entry.name] = entry.load
    return found


def _builtin(module: str, cls: str) -> type[StackBackend]:
    return getattr(importlib.import_module(f"sealgate.backends.{module}"), cls)  # type: ignore[no-any-return]


def requested_backend(name: str | None) -> str:
    """The backend a run asks for: `name`, except that SEALGATE_BACKEND overrides an empty or `auto` name (so
    `SEALGATE_BACKEND=local nox -s seal` forces a backend without touching any command line)."""
    requested = (name or "auto").strip().lower()
    if requested == "auto" and os.environ.get("SEALGATE_BACKEND", "").strip():
        requested = os.environ["SEALGATE_BACKEND"].strip().lower()
    return requested


def choose_backend(name: str | None) -> tuple[str, str, str]:
    """(requested, chosen, why) for a run asked to use backend `name`, without constructing it: what select_backend
    will pick, for a check that must know it before the stack starts (preflight's tools and ports)."""
    requested = requested_backend(name)
    if requested == "auto":
        chosen, reason = auto_choice()
        return requested, chosen, reason
    return requested, requested, "asked for explicitly"


def select_backend(
    name: str,
    root: Path,
    run_dir: Path,
    progress: Callable[[str], None] = print,
    description: StackDescription | None = None,
) -> StackBackend:
    """The backend called `name` (auto, or any installed backend). SEALGATE_BACKEND overrides an empty or `auto`
    name, so `SEALGATE_BACKEND=local nox -s seal` forces a backend without touching any command line.

    For `auto` the returned backend's `selection` attribute says what was picked and why.
    """
    requested = requested_backend(name)
    backends = available_backends()
    if requested != "auto" and requested not in backends:
        raise InputError(
            Problem("backend", f"unknown backend {requested!r}", f"choose one of auto, {', '.join(sorted(backends))}")
        )
    _requested, chosen, reason = choose_backend(requested)
    backend = backends[chosen]()(root, run_dir, progress, description=description)
    backend.selection = {"requested": requested, "chosen": chosen, "reason": reason}
    progress(f"stack: backend {chosen} ({'auto: ' if requested == 'auto' else ''}{reason})")
    return backend


__all__ = [
    "StackBackend",
    "auto_choice",
    "available_backends",
    "choose_backend",
    "docker_engine_answers",
    "requested_backend",
    "select_backend",
]

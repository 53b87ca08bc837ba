"""Stack backends: the same governed stack brought up with Docker Compose (`compose`) or as local processes
(`local`); `auto` picks compose when a Docker engine answers and Compose is installed, else local.

The backend modules are imported lazily: selecting `local` never imports the Docker SDK.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from sealgate.errors import InputError, Problem
from sealgate.stack.backends.base import StackBackend

BACKEND_NAMES = ("auto", "compose", "local")
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
    from sealgate.stack.backends.compose import detect_compose

    return detect_compose(timeout) is not None


def auto_choice() -> tuple[str, str]:
    """(backend name, why) for `auto`; the reason is recorded in evidence."""
    if not docker_engine_answers():
        return "local", "no Docker engine answers"
    if not compose_available():
        return "local", "a Docker engine answers but neither `docker compose` nor `docker-compose` is installed"
    return "compose", "a Docker engine answers and Compose is installed"


def select_backend(name: str, root: Path, run_dir: Path, progress: Callable[[str], None] = print) -> StackBackend:
    """The backend called `name` (auto | compose | local). SEALGATE_BACKEND overrides an empty or `auto` name, so
    `SEALGATE_BACKEND=local nox -s seal` forces a backend without touching any command line.

    For `auto` the returned backend's `selection` attribute says what was picked and why.
    """
    requested = (name or "auto").strip().lower()
    if requested == "auto" and os.environ.get("SEALGATE_BACKEND", "").strip():
        requested = os.environ["SEALGATE_BACKEND"].strip().lower()
    if requested not in BACKEND_NAMES:
        raise InputError(
            Problem("backend", f"unknown backend {requested!r}", f"choose one of {', '.join(BACKEND_NAMES)}")
        )
    reason = "asked for explicitly"
    chosen = requested
    if requested == "auto":
        chosen, reason = auto_choice()
    backend: StackBackend
    if chosen == "compose":
        from sealgate.stack.backends.compose import ComposeBackend

        backend = ComposeBackend(root, run_dir, progress)
    else:
        from sealgate.stack.backends.local import LocalBackend

        backend = LocalBackend(root, run_dir, progress)
    backend.selection = {"requested": requested, "chosen": chosen, "reason": reason}
    progress(f"stack: backend {chosen} ({'auto: ' if requested == 'auto' else ''}{reason})")
    return backend


__all__ = ["BACKEND_NAMES", "StackBackend", "auto_choice", "docker_engine_answers", "select_backend"]

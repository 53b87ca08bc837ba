"""Child processes that checks start themselves (a restored Prometheus, an API under test): started with their
output in a log file, and never outliving the check."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def start_logged(
    argv: Sequence[str], log_path: Path, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` with stdout and stderr (interleaved) written to `log_path` — a file, never a pipe that could fill
    while nobody reads it."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env) if env is not None else None, stdout=log, stderr=subprocess.STDOUT
        )


def terminate(proc: subprocess.Popen, grace: float) -> int:
    """SIGTERM, then SIGKILL after `grace` seconds: a server under test never outlives its check."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()

"""Child processes that checks start themselves (a restored Prometheus, an API under test)."""

from __future__ import annotations

import subprocess


def terminate(proc: subprocess.Popen, grace: float) -> int:
    """SIGTERM, then SIGKILL after `grace` seconds: a server under test never outlives its check."""
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()

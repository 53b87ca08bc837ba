"""Nox sessions of the reference project. The sealgate sessions (seal, eixo_<N>, report, verify) come from the
framework's helper, exactly as in any project that uses sealgate; the rest are this repository's own.

nox -s seal                 # every EIXO, criteria, SEAL report, tag
nox -s seal -- --no-tag     # the same without tagging (pull requests)
nox -s eixo_2               # one stage (nox -l lists the EIXOs the specs in sprint/ declare)
nox -s verify -- F9.10-SEALED
nox -s status               # every sprint: open / sealed / verified / broken
nox -s publish              # push the seal tags (and the branch fast-forwarded to a seal commit)
nox -s new -- F9.11         # draft the next sprint's spec from the newest sealed one
nox -s tests                # the project's own test suite
"""

from __future__ import annotations

import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
# This repository *is* the framework's source: import the helper from here, not from an installed copy.
sys.path.insert(0, str(ROOT))

from sealgate.noxsessions import install, sealgate_sessions  # noqa: E402

nox.options.default_venv_backend = "uv|venv"  # uv when present (fast), plain venv otherwise
nox.options.reuse_venv = "yes"  # a second run reuses the venv and, through the install stamp, installs nothing
nox.options.sessions = ["seal"]

sealgate_sessions(ROOT, install_args=["-e", "."])


def _install_dev(session: nox.Session) -> None:
    install(session, ["-e", ".[test]"], ROOT / "pyproject.toml")


@nox.session(default=False)
def tests(session: nox.Session) -> None:
    """The project's own test suite (real Prometheus, Alertmanager, Docker, git)."""
    _install_dev(session)
    # The per-backend alert-drill check tests (-m drill, ~7 min) are left to `nox -s tests -- -m drill`: the drill
    # passes on compose inside the full seal (tests/seal), and its failure paths are fast tests.
    session.run("pytest", *(session.posargs or ["-q", "-m", "not drill"]))


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    _install_dev(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (on demand): overhead, re-seal, scale, cold start; prints ratios."""
    _install_dev(session)
    session.run("python", "bench/bench.py", *session.posargs)

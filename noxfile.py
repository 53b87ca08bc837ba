"""Nox sessions: thin wrappers; every session calls the sealgate engine (the `sealgate` console script).

nox -s seal                 # EIXO 0..6, criteria, SEAL report, tag
nox -s seal -- --no-tag     # the same without tagging (pull requests)
nox -s eixo_2               # one stage
nox -s verify -- F9.10-SEALED
nox -s tests                # the project's own test suite
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|venv"  # uv when present (fast), plain venv otherwise
nox.options.reuse_venv = "yes"  # a second run reuses the venv ...
nox.options.sessions = ["seal"]

ROOT = Path(__file__).parent
STAGES = {0: "preflight", 1: "containerize", 2: "rules", 3: "backup", 4: "env_config", 5: "dashboard", 6: "tests"}


def _install(session: nox.Session, *extras: str) -> None:
    """... and does not reinstall: a stamp keyed on pyproject.toml skips the install when nothing changed."""
    spec = f".[{','.join(extras)}]" if extras else "."
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + spec.encode()).hexdigest()
    stamp = Path(session.virtualenv.location) / ".sealgate-installed"
    if stamp.is_file() and stamp.read_text() == key:
        return
    session.install("-e", spec)
    stamp.write_text(key)


def _sealgate(session: nox.Session, *args: str) -> None:
    _install(session)
    session.run("sealgate", *args, *session.posargs, external=False)


@nox.session
def seal(session: nox.Session) -> None:
    """Run EIXO 0-6, judge every criterion from evidence, render the SEAL report, create the tag."""
    _sealgate(session, "seal")


for _number, _name in STAGES.items():

    def _stage(session: nox.Session, number: int = _number) -> None:
        _sealgate(session, "eixo", str(number))

    _stage.__doc__ = f"Run EIXO {_number} ({_name}) alone and write its evidence."
    nox.session(name=f"eixo_{_number}", default=False)(_stage)


@nox.session(default=False)
def report(session: nox.Session) -> None:
    """Render the SEAL report from the evidence on disk."""
    _sealgate(session, "report")


@nox.session(default=False)
def verify(session: nox.Session) -> None:
    """Re-check a sealed tag against the evidence on disk: nox -s verify -- TAG."""
    if not session.posargs:
        session.error("usage: nox -s verify -- <TAG>   (e.g. F9.10-SEALED)")
    _sealgate(session, "verify")


@nox.session(default=False)
def tests(session: nox.Session) -> None:
    """The project's own test suite (real Prometheus, Alertmanager, Docker, git)."""
    _install(session, "test")
    # The per-backend alert-drill check tests (-m drill, ~7 min) are left to `nox -s tests -- -m drill`: the drill
    # passes on compose inside the full seal (tests/seal), and its failure paths are fast tests.
    session.run("pytest", *(session.posargs or ["-q", "-m", "not drill"]))


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    _install(session, "test")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", "sealgate", "sprint", "evidence", "reports", "checks", "noxfile.py")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks (on demand): overhead, re-seal, scale, cold start; prints ratios."""
    _install(session, "test")
    session.run("python", "bench/bench.py", *session.posargs)

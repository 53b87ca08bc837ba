"""Shared fixtures. Tests use real tools; what cannot exist here is skipped with a reason.

Under CI=true a skip for a missing tool or engine is turned into a failure: a missing install step in .ci/run must
not hide behind a green run.

A test leaves nothing behind: the session's leak guard (`pytest_sessionstart` / `pytest_sessionfinish` below, see
tests/leaks.py) lists and removes every Docker container, volume and network and every local-backend process this
session created and left, and fails the session. Tear a compose project down with `leaks.remove_compose_project`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from leaks import LeakGuard

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# This project's stack description. Its specs name it (`stack:`); the framework's default is stack.yaml at the root.
REFERENCE_STACK = "stack/stack.yaml"


def reference_description(root: Path = PROJECT_ROOT) -> Any:
    """The reference project's stack description (of a copy of the project, given its root)."""
    from sealgate.backends.description import load_description

    return load_description(root, REFERENCE_STACK)


pytest_plugins = ["stack_fixtures"]

# The stack's secrets (stack/docker-compose.yml `secrets:`, read from the environment): the stack refuses to start
# without them. The tests run the stand-ins (integrations-standin for Slack and PagerDuty, moto for S3), which take any
# well-formed value: random ones for this session, as `stack/scripts/standin_secrets.sh` makes, unless already set.
STANDIN_SECRETS = {
    "SLACK_WEBHOOK_URL": (
        f"http://integrations-standin:5002/services/T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/"
        f"{secrets.token_hex(12)}"
    ),
    "PAGERDUTY_ROUTING_KEY": secrets.token_hex(16),
    "OFFSITE_S3_ACCESS_KEY_ID": f"SG{secrets.token_hex(9).upper()}",
    "OFFSITE_S3_SECRET_ACCESS_KEY": secrets.token_hex(20),
}
for _name, _value in STANDIN_SECRETS.items():
    os.environ.setdefault(_name, _value)
# Names of what this session creates carry its pid (compose projects, run directories): the leak guard tells this
# session's objects from those of another session sharing the Docker engine by it.
SESSION_TOKEN = str(os.getpid())


def need(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (under CI=true) when a real dependency is absent."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must provide this, but: {reason}")
    pytest.skip(reason)


def need_tool(*names: str) -> None:
    for name in names:
        need(shutil.which(name) is not None, f"{name} not installed (bash .ci/setup-system.sh installs it)")


def docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def need_docker() -> None:
    need(docker_answers(), "no Docker engine answers (bash .ci/setup-system.sh starts dockerd)")


def need_compose_v2() -> None:
    need_tool("docker")
    from sealgate.backends.compose import detect_compose

    compose = detect_compose()
    need(compose is not None and not compose.v1, "Docker Compose v2 is not installed (bash .ci/setup-system.sh)")


# Shared by the compose-layout tests: every static check is judged both ways, and they must agree.
@pytest.fixture(params=["docker-compose-config", "parsed-here"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the static checks read the compose file: Compose's own model of it, or the YAML interpolated here."""
    if request.param == "docker-compose-config":
        need_compose_v2()
    else:
        from sealgate.analysis import compose as compose_reader

        monkeypatch.setattr(compose_reader, "shutil", SimpleNamespace(which=lambda name: None))
    return str(request.param)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def working_tree_files() -> list[str]:
    """This repository's files as its working tree holds them: tracked ones (deleted ones too) and untracked ones
    git does not ignore — what a copy "as it is now" must hold."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return list(filter(None, names.split("\0")))


def init_repo(path: Path) -> Path:
    """A real temporary git repository with a deterministic identity."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Sealgate Tester")
    git(path, "config", "user.email", "tester@example.invalid")
    git(path, "config", "commit.gpgsign", "false")
    git(path, "config", "tag.gpgsign", "false")
    return path


def commit_all(path: Path, message: str = "commit") -> str:
    git(path, "add", "-A")
    git(path, "commit", "-q", "--allow-empty", "-m", message)
    return git(path, "rev-parse", "HEAD")


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """A clone of this project's tracked files as a fresh git repo whose first commit is tagged with the base tag."""
    return make_project_copy(tmp_path / "project")


def make_project_copy(dest: Path) -> Path:
    dest = init_repo(dest)
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, tracked):
        src = PROJECT_ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    commit_all(dest, "base")
    git(dest, "tag", "-a", "F9.9-C-SEALED", "-m", "base")
    commit_all(dest, "sprint")
    return dest


# --- leaving nothing behind ----------------------------------------------------------------------------------------


_guard = LeakGuard(SESSION_TOKEN)


def pytest_sessionstart(session: pytest.Session) -> None:
    _guard.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Runs after every fixture, session ones included, is torn down: what is left now was leaked."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = factory.getbasetemp() if factory is not None else None
    lines = _guard.finish(basetemp)
    if not lines:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write("\n")  # after the progress dots, which end without one
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=line.startswith("LEAK"))
        else:
            print(line)
    if any(line.startswith("LEAK") and session.exitstatus == pytest.ExitCode.OK for line in lines):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

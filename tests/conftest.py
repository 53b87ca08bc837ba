"""Shared fixtures. Tests use real tools; what cannot exist here is skipped with a reason.

Under CI=true a skip for a missing tool or engine is turned into a failure: a missing install step in .ci/run must
not hide behind a green run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["stack_fixtures"]


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


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


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

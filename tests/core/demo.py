"""The test-only DEMO sprint (tests/fixtures/demo) in a real temporary git repository."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import PROJECT_ROOT, commit_all, git, init_repo

DEMO = PROJECT_ROOT / "tests" / "fixtures" / "demo"


def make_demo_repo(tmp_path: Path, *, base: bool = True) -> Path:
    root = tmp_path / "demo"
    shutil.copytree(DEMO, root)
    init_repo(root)
    commit_all(root, "base")
    if base:
        git(root, "tag", "-a", "DEMO-BASE", "-m", "base")
    commit_all(root, "sprint work")
    return root


def set_switch(root: Path, name: str, value: str, commit: bool = True) -> None:
    (root / "demo" / f"{name}.txt").write_text(value + "\n")
    if commit:
        commit_all(root, f"{name} = {value}")


def tags(root: Path) -> list[str]:
    return git(root, "tag", "-l").split()

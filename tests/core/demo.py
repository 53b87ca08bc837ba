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


# A waiver for demo/beta's skip (it names no findings: a skip waiver), in force until 2099.
BETA_SKIP_WAIVER = (
    "waivers:\n  - check: demo/beta\n    justification: beta cannot run on this machine kind\n"
    "    approver: Ana Reviewer\n    expires: 2099-12-31\n"
)


def waive_beta_skip(root: Path) -> None:
    """demo/beta skips, and the sprint's waiver accepts the skip: committed."""
    set_switch(root, "beta", "skip", commit=False)
    (root / "sprint" / "DEMO.waivers.yaml").write_text(BETA_SKIP_WAIVER)
    commit_all(root, "waive beta")


def tags(root: Path) -> list[str]:
    return git(root, "tag", "-l").split()

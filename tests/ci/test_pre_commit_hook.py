"""`sealgate lint` as a pre-commit hook, run by the real pre-commit (from PyPI): `.pre-commit-hooks.yaml` validates,
and `pre-commit try-repo <this repository> sealgate-lint --files …` in a throwaway git repository refuses a staged rule
file with a typo (non-zero, the finding printed) and passes a clean one beside files that are neither rules nor
dashboards (said and skipped).

try-repo installs the hook's repository into an environment of its own — `pip install .` of this checkout in a fresh
virtualenv — so it needs the package index (or a wheelhouse) for sealgate's build backend and dependencies. It is
given a committed copy of this working tree (try-repo reads committed files; the tree may hold uncommitted edits), and
PRE_COMMIT_HOME in a temporary directory, so nothing of the user's pre-commit cache is read or written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT, git, init_repo, need_tool, working_tree_files

MANIFEST = PROJECT_ROOT / ".pre-commit-hooks.yaml"
HOOK_ID = "sealgate-lint"

CLEAN_RULES = """\
groups:
  - name: api
    rules:
      - alert: APIDown
        expr: up{job="api"} == 0
        for: 1m
        labels:
          severity: critical
"""
# The typo: `fro:` for `for:`. Valid YAML and valid PromQL — only a strict reading of the rule format catches it
# (promtool's); Prometheus itself would refuse to load the file.
TYPO_RULES = CLEAN_RULES.replace("        for: 1m", "        fro: 1m")
COMPOSE = "services:\n  api:\n    image: example/api:1\n"
PACKAGE_JSON = '{"name": "web", "version": "1.0.0"}\n'


def pre_commit(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", *args, "--color", "never"],
        cwd=cwd,
        env={**os.environ, "PRE_COMMIT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_manifest_validates_and_filters_yaml_and_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-manifest", str(MANIFEST)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (hook,) = yaml.safe_load(MANIFEST.read_text())
    assert (hook["id"], hook["language"], hook["entry"]) == (HOOK_ID, "python", "sealgate lint")
    assert hook["types"] == ["text"]
    files = re.compile(hook["files"])
    assert all(files.search(name) for name in ("alerts/api.yml", "rules.yaml", "dashboards/llm.json"))
    assert not any(files.search(name) for name in ("app.py", "README.md", "rules.yml.orig"))


@pytest.fixture(scope="module")
def hook_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This working tree, committed in a repository of its own: what try-repo installs the hook from."""
    repo = init_repo(tmp_path_factory.mktemp("hooks") / "sealgate")
    for name in working_tree_files():
        if (PROJECT_ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, repo / name)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "sealgate, as this working tree holds it")
    return repo


def throwaway_repository(root: Path, files: dict[str, str]) -> Path:
    init_repo(root)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "add", "-A")  # staged, as a commit about to be made
    return root


def test_try_repo_refuses_a_typo_in_a_staged_rule_file_and_passes_a_clean_one(
    hook_repository: Path, tmp_path: Path
) -> None:
    need_tool("promtool")
    home = tmp_path / "pre-commit-home"
    work = throwaway_repository(
        tmp_path / "team",
        {"alerts/api.yml": TYPO_RULES, "compose.yaml": COMPOSE, "web/package.json": PACKAGE_JSON},
    )
    files = ["alerts/api.yml", "compose.yaml", "web/package.json"]

    refused = pre_commit("try-repo", str(hook_repository), HOOK_ID, "--files", *files, cwd=work, home=home)
    out = refused.stdout + refused.stderr
    assert refused.returncode == 1, out
    assert re.search(r"sealgate lint \(Prometheus rules, Grafana dashboards\)\.+Failed", out), out
    assert "alerts/api.yml:6: error: promtool: " in out and "field fro not found" in out, out
    assert "sealgate lint: 1 error(s)" in out
    # The other staged files pre-commit passed are said and skipped, not errors.
    assert "note: compose.yaml: neither a rule file" in out and "note: web/package.json: JSON that is neither" in out

    (work / "alerts/api.yml").write_text(CLEAN_RULES)
    git(work, "add", "-A")
    passed = pre_commit("try-repo", str(hook_repository), HOOK_ID, "--files", *files, cwd=work, home=home)
    out = passed.stdout + passed.stderr
    assert passed.returncode == 0, out
    assert re.search(r"sealgate lint \(Prometheus rules, Grafana dashboards\)\.+Passed", out), out

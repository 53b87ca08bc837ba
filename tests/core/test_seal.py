"""The whole pipeline on the test-only DEMO sprint, in real temporary git repositories: only all-passed (or
visibly waived) seals; every other status renders as itself in both languages; stale, tampered or incomplete
evidence, a dirty tree, an existing tag or a bad base never produce a tag."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import commit_all, git
from demo import make_demo_repo, set_switch, tags, waive_beta_skip

from sealgate import engine
from sealgate.api.context import RunOptions
from sealgate.evidence.judge import Verdict, judge
from sealgate.evidence.store import EvidenceStore
from sealgate.kernel.errors import SealgateError
from sealgate.run.plan import open_spec
from seals import edit_json, forge_seal, sealed_file, tag_message

OPTS = RunOptions(backend="local")


def seal(root: Path, **kw: object) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = engine.seal(root, "DEMO", RunOptions(backend="local", **kw), out=lines.append)  # type: ignore[arg-type]
    return code, lines


def report_text(root: Path) -> str:
    return (root / "reports" / "SEAL_DEMO.md").read_text()


def test_all_passed_seals_and_verifies(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    judged = git(root, "rev-parse", "HEAD")
    code, lines = seal(root)
    assert code == 0 and lines[-1] == "SEALED DEMO-SEALED"
    assert tags(root) == ["DEMO-BASE", "DEMO-SEALED"]
    # The tag points at the seal commit: the judged commit plus seals/DEMO/, nothing else; main fast-forwarded to it.
    seal_commit = git(root, "rev-parse", "DEMO-SEALED^{commit}")
    assert git(root, "rev-list", "--parents", "-n", "1", seal_commit).split()[1:] == [judged]
    assert git(root, "diff-tree", "-r", "--name-status", "--no-commit-id", judged, seal_commit).splitlines() == [
        f"A\tseals/DEMO/{name}"
        for name in ("SEAL_DEMO.md", "eixo_0.json", "eixo_1.json", "eixo_1/gamma.log", "manifest.json", "seal.json")
    ]
    assert git(root, "rev-parse", "HEAD") == seal_commit and git(root, "status", "--porcelain") == ""
    assert (root / "seals" / "DEMO" / "eixo_0.json").read_bytes() == (root / "artifacts/demo/eixo_0.json").read_bytes()
    # The seal's copy of the report names the evidence beside it; the run's copy names artifacts/.
    sealed_report = (root / "seals" / "DEMO" / "SEAL_DEMO.md").read_text()
    assert "`seals/DEMO/eixo_0.json`" in sealed_report and "artifacts/" not in sealed_report
    assert "`artifacts/demo/eixo_0.json`" in report_text(root)
    record = json.loads((root / "seals" / "DEMO" / "seal.json").read_text())
    assert record["commit"] == judged and record["tag"] == "DEMO-SEALED" and record["signed"] is False
    assert record["base"] == {
        "tag": "DEMO-BASE",
        "commit": git(root, "rev-parse", "DEMO-BASE^{commit}"),
        "sprint": None,
    }
    assert [(c["id"], c["verdict"]) for c in record["criteria"]] == [("C1", "passed"), ("C2", "passed")]
    message = git(root, "tag", "-l", "--format=%(contents)", "DEMO-SEALED")
    assert f"commit: {judged}" in message
    manifest = (root / "artifacts" / "demo" / "manifest.json").read_bytes()
    import hashlib

    assert f"manifest-sha256: {hashlib.sha256(manifest).hexdigest()}" in message
    assert "  C1  passed   Alpha and beta hold" in message and "  C2  passed   Gamma and delta hold" in message
    text = report_text(root)
    assert "✅ SEALED — tag `DEMO-SEALED` created" in text
    assert "| C1 — Alpha and beta hold | ✅ passed |" in text
    assert "```mermaid" in text and 'E0["Stage 0 preflight<br/>passed' in text  # an `en` spec: English
    out: list[str] = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append) == 0, out


def test_a_sprint_with_its_own_stage_numbers_seals_and_verifies(tmp_path: Path) -> None:
    """Nothing fixes the EIXOs: stages 3 and 12, named by the spec, write eixo_3/eixo_12 evidence and seal."""
    root = make_demo_repo(tmp_path)
    spec = root / "sprint" / "DEMO.yaml"
    text = spec.read_text().replace("number: 0\n    name: preflight", "number: 3\n    name: checks_first")
    spec.write_text(
        text.replace("number: 1\n    name: containerize", "number: 12\n    name: then_more").replace(
            "stages: [1]", "stages: [12]"
        )
    )
    commit_all(root, "renumber the EIXOs")
    code, lines = seal(root)
    assert code == 0 and lines[-1] == "SEALED DEMO-SEALED", lines
    assert "stage 12 (then_more): Containerize" in lines
    names = git(root, "ls-tree", "-r", "--name-only", "DEMO-SEALED", "seals/DEMO").splitlines()
    assert {"seals/DEMO/eixo_3.json", "seals/DEMO/eixo_12.json", "seals/DEMO/eixo_12/gamma.log"} <= set(names)
    out: list[str] = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append) == 0, out


@pytest.mark.parametrize(
    ("switch", "value", "verdict", "reason", "en", "pt"),
    [
        ("alpha", "bad", "failed", "demo/alpha.txt:1: alpha is 'bad', expected 'ok'", "❌ failed", "❌ falhou"),
        ("beta", "error", "errored", "beta tool is not available here", "⛔ could not run", "⛔ não executou"),
        ("beta", "skip", "skipped", "beta does not apply on this machine", "⏭️ skipped", "⏭️ pulado"),
        ("gamma", "bad", "failed", "gamma is bad", "❌ failed", "❌ falhou"),
    ],
    ids=["failed", "errored", "skipped", "prerequisite"],
)
def test_any_non_passed_status_refuses_and_renders_in_both_languages(
    tmp_path: Path, switch: str, value: str, verdict: str, reason: str, en: str, pt: str
) -> None:
    root = make_demo_repo(tmp_path)
    set_switch(root, switch, value)
    code, lines = seal(root)
    assert code == 1 and any(line.startswith("NOT SEALED") for line in lines)
    assert tags(root) == ["DEMO-BASE"]
    text = report_text(root)
    assert f"| {en} | {reason} |" in text
    assert "❌ NOT SEALED — tag `DEMO-SEALED` refused" in text
    if switch == "gamma":  # delta requires gamma: aborted with the reason, never passed
        assert (
            "| `demo/delta` Delta needs gamma | ⛔ could not run | prerequisite demo/gamma did not pass (failed) |"
            in text
        )
    # The same evidence rendered in Portuguese.
    spec_file = root / "sprint" / "DEMO.yaml"
    spec_file.write_text(spec_file.read_text().replace("language: en", "language: pt-BR"))
    commit_all(root, "pt-BR")
    code, _ = seal(root)
    assert code == 1
    text = report_text(root)
    assert f"| {pt} | {reason} |" in text and "❌ NÃO SELADO — tag `DEMO-SEALED` recusada" in text
    assert tags(root) == ["DEMO-BASE"]


def test_waived_skip_seals_visibly_as_waived(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    waive_beta_skip(root)
    code, _ = seal(root)
    assert code == 0
    text = report_text(root)
    assert (
        "| `demo/beta` Beta runs a command | ⚠️ waived | beta does not apply on this machine — "
        "waiver by Ana Reviewer, expires 2099-12-31 (see Waivers applied) |" in text
    )
    assert (
        "- check `demo/beta` — beta cannot run on this machine kind (approved by Ana Reviewer, expires 2099-12-31)"
        in text
    )
    assert "| C1 — Alpha and beta hold | ⚠️ waived |" in text
    assert "**Result:** 1/2 criteria passed on evidence, 1 waived, 0 not met." in text
    message = git(root, "tag", "-l", "--format=%(contents)", "DEMO-SEALED")
    assert "  C1  waived   Alpha and beta hold" in message
    assert (
        "check demo/beta: beta cannot run on this machine kind (approver: Ana Reviewer; expires 2099-12-31)" in message
    )


def test_stale_evidence_is_not_accepted(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert engine.eixo(root, "DEMO", 0, OPTS, out=lambda _: None) == 0
    spec = open_spec(root, "DEMO")
    # A new commit: evidence from the previous HEAD is stale.
    commit_all(root, "another commit")
    head = git(root, "rev-parse", "HEAD")
    stage = judge(spec, root, head, stages=[0]).stages[0]
    assert stage.verdict is Verdict.STALE and "but HEAD is" in str(stage.problems[0])
    # Same commit, but a judged file edited after the run.
    assert engine.eixo(root, "DEMO", 0, OPTS, out=lambda _: None) == 0
    set_switch(root, "alpha", "ok ", commit=False)
    stage = judge(spec, root, head, stages=[0]).stages[0]
    assert stage.verdict is Verdict.STALE
    assert str(stage.problems[0]) == (
        "artifacts/demo/eixo_0.json: $.subject[0]: judged file demo/alpha.txt changed since the run (re-run the stage)"
    )


def test_evidence_edited_in_the_seal_fails_verify_naming_the_file(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    # artifacts/ is only the run's working copy: editing it after the seal changes nothing the seal holds.
    (root / "artifacts" / "demo" / "eixo_0.json").write_text("{}")
    out: list[str] = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append) == 0, out
    # The seal's own evidence, edited in a seal commit made by hand and the tag moved onto it: named.
    edited = edit_json(sealed_file(root, "DEMO-SEALED", "eixo_0.json"), {"reason": "edited"})
    forge_seal(root, "DEMO-SEALED", {"eixo_0.json": edited})
    out = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append) == 1
    assert "FAILED  evidence files match the manifest" in out
    assert (
        "        seals/DEMO/manifest.json: $.files[0]: seals/DEMO/eixo_0.json was changed after the run (sha256 differs)"
        in out
    ), out
    assert out[-1] == "verify DEMO-SEALED: FAILED"


def test_evidence_edited_or_deleted_before_the_seal_is_refused_by_report_and_rerun_by_seal(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root, no_tag=True)[0] == 0
    evidence = root / "artifacts" / "demo" / "eixo_1.json"
    evidence.write_text(evidence.read_text().replace('"passed"', '"passed" '))
    with pytest.raises(SealgateError, match=r"artifacts/demo/eixo_1\.json was changed after the run"):
        engine.report(root, "DEMO", out=lambda _: None)
    evidence.unlink()
    missing = "artifacts/demo/manifest.json: $.files[1]: artifacts/demo/eixo_1.json is missing"
    with pytest.raises(SealgateError, match=re.escape(missing)):
        engine.report(root, "DEMO", out=lambda _: None)
    # seal never takes such evidence: it re-runs the stage, then seals what it ran.
    code, lines = seal(root)
    assert code == 0 and stage_runs(lines) == {0: "ran", 1: "ran"}


def test_evidence_deleted_from_the_seal_fails_verify_naming_the_file(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    forge_seal(root, "DEMO-SEALED", {"eixo_1.json": None})
    out: list[str] = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append) == 1
    missing = "seals/DEMO/manifest.json: $.files[1]: seals/DEMO/eixo_1.json is missing"
    assert "FAILED  evidence files match the manifest" in out and f"        {missing}" in out, out


def test_manifest_or_tag_message_edited_is_refused_by_verify(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    original = sealed_file(root, "DEMO-SEALED", "manifest.json")
    forge_seal(root, "DEMO-SEALED", {"manifest.json": original.replace(b'"sprint": "DEMO"', b'"sprint": "DEMO" ')})
    out: list[str] = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append) == 1
    assert "FAILED  manifest digest matches the tag" in out, out
    assert any(line.startswith("        seals/DEMO/manifest.json: sha256 ") for line in out), out
    # Re-tagged by hand with the seal's message on another commit.
    message = tag_message(root, "DEMO-SEALED")
    commit_all(root, "later")
    git(root, "tag", "-f", "-a", "DEMO-SEALED", "-m", message)
    out = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append) == 1
    assert "FAILED  tag is annotated and names the judged commit" in out
    assert any("(re-tagged by hand?)" in line for line in out), out


def test_evidence_from_another_commit_is_refused_by_verify(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    commit_all(root, "next")
    assert engine.eixo(root, "DEMO", 1, OPTS, out=lambda _: None) == 0  # evidence of a later commit
    later = (root / "artifacts" / "demo" / "eixo_1.json").read_bytes()
    # Swapped into the seal with every digest made consistent: only the commit it was made at gives it away.
    forge_seal(root, "DEMO-SEALED", {"eixo_1.json": later}, consistent=True)
    out: list[str] = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append) == 1
    assert "FAILED  evidence was made at the judged commit" in out, out
    assert any("seals/DEMO/eixo_1.json: made at " in line and "(evidence from another commit)" in line for line in out)


def test_dirty_tree_refuses_the_tag(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    (root / "notes.txt").write_text("uncommitted\n")
    code, lines = seal(root)
    assert code == 1 and tags(root) == ["DEMO-BASE"]
    assert any("working tree is dirty (notes.txt)" in line for line in lines)


def test_existing_tag_elsewhere_is_never_moved(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    git(root, "tag", "-a", "DEMO-SEALED", "-m", "hand made")
    before = git(root, "rev-parse", "DEMO-SEALED^{commit}")
    commit_all(root, "more work")
    code, lines = seal(root)
    assert code == 1 and any("tag DEMO-SEALED already exists" in line for line in lines)
    assert git(root, "rev-parse", "DEMO-SEALED^{commit}") == before


def test_missing_base_refuses(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path, base=False)
    code, lines = seal(root)
    assert code == 1 and tags(root) == []
    assert any("base tag DEMO-BASE does not exist in this repository" in line for line in lines)
    assert "tag DEMO-BASE does not exist in this repository: the base was NOT verified" in report_text(root)


def test_non_ancestor_base_refuses(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path, base=False)
    git(root, "checkout", "-q", "--orphan", "other")
    commit_all(root, "unrelated history")
    git(root, "tag", "-a", "DEMO-BASE", "-m", "base on another history")
    git(root, "checkout", "-q", "main")
    code, lines = seal(root)
    assert code == 1 and "DEMO-SEALED" not in tags(root)
    assert any("is not an ancestor of HEAD" in line for line in lines)


def test_reseal_of_sealed_head_is_idempotent(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    tag_object = git(root, "rev-parse", "DEMO-SEALED")
    code, lines = seal(root)
    assert code == 0 and lines[-1].startswith("already sealed: DEMO-SEALED")
    assert git(root, "rev-parse", "DEMO-SEALED") == tag_object


def test_no_tag_mode_exits_on_criteria_only(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root, no_tag=True)[0] == 0 and tags(root) == ["DEMO-BASE"]
    set_switch(root, "alpha", "bad")
    assert seal(root, no_tag=True)[0] == 1


def test_secrets_never_reach_evidence(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    for path in (root / "artifacts").rglob("*"):
        if path.is_file():
            assert "hunter2" not in path.read_text(), path
    assert "DB_PASSWORD=***REDACTED***" in (root / "artifacts" / "demo" / "eixo_1" / "gamma.log").read_text()


def test_sigterm_during_seal_leaves_no_tag_and_no_partial_evidence(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    set_switch(root, "beta", "sleep")
    plugin = root / "sprint" / "plugins" / "demo_checks.py"
    plugin.write_text(
        plugin.read_text().replace(
            'result = ctx.run(["sh", "-c", f"echo beta is {value}; test {value} = ok"])',
            'result = ctx.run(["sh", "-c", "sleep 30" if value == "sleep" else f"echo beta is {value}; test {value} = ok"])',
        )
    )
    commit_all(root, "sleepy beta")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealgate.cli", "seal", "--sprint", "DEMO", "--backend", "local"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (root / ".sealgate" / "lock").exists():
        time.sleep(0.05)
    time.sleep(1.0)  # inside demo/beta's sleep
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 143, stderr
    assert "sealgate: interrupted (SIGTERM) during stage 0 (preflight): stack stopped, no tag created" in stderr
    assert "Traceback" not in stderr
    assert tags(root) == ["DEMO-BASE"]
    assert not (root / "artifacts" / "demo" / "eixo_0.json").exists()


def test_second_concurrent_run_is_refused_by_the_lock(tmp_path: Path) -> None:
    import fcntl

    root = make_demo_repo(tmp_path)
    (root / ".sealgate").mkdir()
    with open(root / ".sealgate" / "lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        with pytest.raises(SealgateError, match=r"another sealgate run is using this checkout \(pid 4242\)"):
            seal(root)
    assert tags(root) == ["DEMO-BASE"]


def stage_runs(lines: list[str]) -> dict[int, str]:
    """Which stages a seal re-ran ("ran") or took from fresh evidence ("reused")."""
    runs = {}
    for line in lines:
        if re.match(r"^stage \d \(\w+\): ", line):
            number = int(line.split()[1])
            runs[number] = "reused" if "reusing fresh evidence" in line else "ran"
    return runs


def test_reseal_reuses_fresh_evidence_and_reruns_exactly_what_changed(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root, no_tag=True)[0] == 0
    code, lines = seal(root, no_tag=True)
    # Preflight (stage 0) judges the environment and always re-runs; every other stage is reused.
    assert code == 0 and stage_runs(lines) == {0: "ran", 1: "reused"}
    # A file only EIXO 0 judges changed: EIXO 1 still stands.
    (root / "demo" / "alpha.txt").write_text("ok\n\n")
    code, lines = seal(root, no_tag=True)
    assert code == 0 and stage_runs(lines) == {0: "ran", 1: "reused"}
    # A file only EIXO 1 judges changed: EIXO 1 re-runs.
    set_switch(root, "gamma", "ok", commit=False)
    (root / "demo" / "gamma.txt").write_text("ok\n\n")
    code, lines = seal(root, no_tag=True)
    assert code == 0 and stage_runs(lines) == {0: "ran", 1: "ran"}
    # A new commit re-runs everything; --force too.
    commit_all(root, "gamma edited")
    assert stage_runs(seal(root, no_tag=True)[1]) == {0: "ran", 1: "ran"}
    assert stage_runs(seal(root, no_tag=True, force=True)[1]) == {0: "ran", 1: "ran"}


@pytest.mark.parametrize("waived", [True, False])
def test_a_skip_is_reused_only_while_a_waiver_accepts_it(tmp_path: Path, waived: bool) -> None:
    root = make_demo_repo(tmp_path)
    set_switch(root, "delta", "skip", commit=False)
    if waived:
        (root / "sprint" / "DEMO.waivers.yaml").write_text(
            "waivers:\n  - check: demo/delta\n    justification: delta cannot run on this machine kind\n"
            "    approver: Ana Reviewer\n    expires: 2099-12-31\n"
        )
    commit_all(root, "delta skips")
    assert seal(root, no_tag=True)[0] == (0 if waived else 1)
    code, lines = seal(root, no_tag=True)
    assert code == (0 if waived else 1)
    # A stage the judge lets through (a waived skip) stands like a passed one; an unwaived skip is re-run.
    assert stage_runs(lines) == {0: "ran", 1: "reused" if waived else "ran"}


def test_tampered_evidence_is_never_reused(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    set_switch(root, "alpha", "bad")
    assert seal(root, no_tag=True)[0] == 1  # EIXO 0 failed: failed stages are always re-run
    set_switch(root, "alpha", "ok")
    assert seal(root, no_tag=True)[0] == 0
    evidence = root / "artifacts" / "demo" / "eixo_1.json"
    document = json.loads(evidence.read_text())
    document["predicate"]["checks"][1]["data"]["ran"] = "edited"
    evidence.write_text(json.dumps(document, indent=2))
    code, lines = seal(root, no_tag=True)
    assert code == 0 and stage_runs(lines) == {0: "ran", 1: "ran"}
    assert "re-running stage 1: its evidence was edited after the run (artifacts/demo/eixo_1.json)" in lines
    assert json.loads(evidence.read_text())["predicate"]["checks"][1]["data"]["ran"] is True


def test_evidence_and_manifest_edited_together_are_rerun_not_reused(tmp_path: Path) -> None:
    """The manifest proves nothing against someone who rewrites it too: the keyed digest (HMAC with a per-checkout
    key under .sealgate/, outside artifacts/) does."""
    root = make_demo_repo(tmp_path)
    assert seal(root, no_tag=True)[0] == 0
    assert (root / ".sealgate" / "evidence.key").stat().st_mode & 0o077 == 0
    evidence = root / "artifacts" / "demo" / "eixo_1.json"
    evidence.write_bytes(edit_json(evidence.read_bytes(), {"reason": "edited"}))
    EvidenceStore(root, "demo").write_manifest(
        "DEMO", git(root, "rev-parse", "HEAD"), [0, 1]
    )  # the manifest agrees again
    code, lines = seal(root, no_tag=True)
    assert code == 0 and stage_runs(lines) == {0: "ran", 1: "ran"}
    assert "re-running stage 1: its evidence was edited after the run (artifacts/demo/eixo_1.json)" in lines
    # A run of another stage does not launder it: EIXO 0 alone, then the edited EIXO 1 is still re-run.
    evidence.write_bytes(edit_json(evidence.read_bytes(), {"reason": "edited again"}))
    EvidenceStore(root, "demo").write_manifest("DEMO", git(root, "rev-parse", "HEAD"), [0, 1])
    assert engine.eixo(root, "DEMO", 0, OPTS, out=lambda _: None) == 0
    code, lines = seal(root, no_tag=True)
    assert "re-running stage 1: its evidence was edited after the run (artifacts/demo/eixo_1.json)" in lines
    # Evidence this checkout never recorded (another checkout's, or from before keyed digests) is re-run too.
    (root / ".sealgate" / "keyed" / "demo.json").unlink()
    code, lines = seal(root, no_tag=True)
    assert stage_runs(lines) == {0: "ran", 1: "ran"}
    assert any("carries no keyed digest of this checkout" in line for line in lines), lines
    code, lines = seal(root, no_tag=True)
    assert stage_runs(lines) == {0: "ran", 1: "reused"}


def test_ci_outputs_name_each_criterion_and_finding(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    set_switch(root, "alpha", "bad")
    assert seal(root)[0] == 1
    junit = (root / "reports" / "out" / "criteria.junit.xml").read_text()
    assert '<testsuite name="SEAL DEMO criteria" tests="2" failures="1" errors="0" skipped="0">' in junit
    assert "<failure message=\"failed: demo/alpha: failed — demo/alpha.txt:1: alpha is 'bad', expected 'ok'\">" in junit
    sarif = json.loads((root / "reports" / "out" / "findings.sarif").read_text())
    (result,) = sarif["runs"][0]["results"]
    assert result["ruleId"] == "demo/alpha" and result["level"] == "error"
    assert result["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "demo/alpha.txt"},
        "region": {"startLine": 1},
    }

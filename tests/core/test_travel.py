"""Seals that travel: seal, `sealgate publish` to a real bare remote, then verify in fresh clones that have no
`artifacts/` — with the tag, with the tag fetched on demand, without any tag (from the branch's history) — and the
ways a pushed seal can be tampered with or lost, each named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import commit_all, git
from demo import make_demo_repo

from sealgate import engine
from sealgate.api.context import RunOptions
from seals import bare_remote, clone, edit_json, forge_seal, sealed_file


def sealed_and_published(tmp_path: Path) -> tuple[Path, Path]:
    root = make_demo_repo(tmp_path)
    remote = bare_remote(tmp_path)
    git(root, "remote", "add", "origin", str(remote))
    git(root, "push", "-q", "origin", "main", "refs/tags/DEMO-BASE")
    lines: list[str] = []
    assert engine.seal(root, "DEMO", RunOptions(backend="local"), out=lines.append) == 0, lines
    out: list[str] = []
    assert engine.publish(root, "origin", out=out.append) == 0, out
    seal_commit = git(root, "rev-parse", "DEMO-SEALED^{commit}")
    assert out == ["pushed     main → origin", "pushed     DEMO-SEALED → origin"], out
    assert git(remote, "rev-parse", "main") == seal_commit
    return root, remote


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealgate.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_a_fresh_clone_verifies_from_git_objects_alone(tmp_path: Path) -> None:
    root, remote = sealed_and_published(tmp_path)
    fresh = clone(tmp_path, remote, "fresh")
    assert not (fresh / "artifacts").exists()
    assert (fresh / "seals" / "DEMO" / "SEAL_DEMO.md").read_text().startswith("# ")  # readable on the forge
    done = cli(fresh, "verify", "DEMO-SEALED")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok      evidence files match the manifest" in done.stdout
    assert "ok      criteria re-evaluate to pass" in done.stdout
    assert done.stdout.splitlines()[-1] == "verify DEMO-SEALED: OK"
    assert not (fresh / "artifacts").exists()  # nothing was re-made: read from git objects only
    # publish again: nothing new, nothing forced.
    out: list[str] = []
    assert engine.publish(root, "origin", out=out.append) == 0
    assert out == ["up to date main → origin", "up to date DEMO-SEALED → origin"]


def test_a_clone_without_the_tag_fetches_it_from_origin(tmp_path: Path) -> None:
    _, remote = sealed_and_published(tmp_path)
    fresh = clone(tmp_path, remote, "notags", "--no-tags")
    assert git(fresh, "tag", "-l") == ""
    out: list[str] = []
    assert engine.verify(fresh, "DEMO-SEALED", None, out=out.append) == 0, out
    assert out[0] == "fetched tag DEMO-SEALED from origin"
    assert out[-1] == "verify DEMO-SEALED: OK"


def test_a_tagless_clone_verifies_from_the_branch_history_and_says_the_tag_was_not_checked(tmp_path: Path) -> None:
    root, _ = sealed_and_published(tmp_path)
    mirror = bare_remote(tmp_path, "branch-only.git")
    git(root, "push", "-q", str(mirror), "main")  # the branch, no tag (a CI checkout, a mirror of the branch)
    fresh = clone(tmp_path, mirror, "tagless")
    assert git(fresh, "tag", "-l") == ""
    done = cli(fresh, "verify", "DEMO-SEALED")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(
        line.startswith("skip    tag is annotated and names the judged commit — tag DEMO-SEALED is not in this clone")
        and "the tag itself is NOT checked (fetch it: git fetch origin tag DEMO-SEALED)" in line
        for line in lines
    ), lines
    assert "ok      evidence files match the manifest" in lines
    assert lines[-1] == (
        "verify DEMO-SEALED: OK from the seal commit in HEAD's history — the tag itself was not checked"
    )


def test_a_pushed_seal_with_edited_evidence_fails_verify_naming_the_file(tmp_path: Path) -> None:
    root, remote = sealed_and_published(tmp_path)
    # Someone with push access rebuilds the seal commit with one statement turned around and forces the tag.
    edited = edit_json(sealed_file(root, "DEMO-SEALED", "eixo_1.json"), {"status": "passed", "reason": "all good"})
    forge_seal(root, "DEMO-SEALED", {"eixo_1.json": edited})
    git(root, "push", "-q", "--force", "origin", "refs/tags/DEMO-SEALED")
    fresh = clone(tmp_path, remote, "fresh")
    done = cli(fresh, "verify", "DEMO-SEALED")
    assert done.returncode == 1
    assert "FAILED  evidence files match the manifest" in done.stdout
    assert (
        "seals/DEMO/manifest.json: $.files[1]: seals/DEMO/eixo_1.json was changed after the run (sha256 differs)"
        in done.stdout
    )


def test_a_later_commit_editing_the_seals_copy_fails_verify_naming_the_file(tmp_path: Path) -> None:
    root, remote = sealed_and_published(tmp_path)
    sealed = root / "seals" / "DEMO" / "eixo_0.json"
    sealed.write_bytes(edit_json(sealed.read_bytes(), {"reason": "edited on the branch"}))
    commit_all(root, "edit the sealed record")
    git(root, "push", "-q", "origin", "main")
    fresh = clone(tmp_path, remote, "fresh")
    done = cli(fresh, "verify", "DEMO-SEALED")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "FAILED  the branch's copy of the seal is unchanged" in lines
    edit = git(root, "rev-parse", "--short", "HEAD")
    assert (
        f"        seals/DEMO/eixo_0.json: changed at HEAD after the seal (commit {edit}): the seal's copy is the record"
        in lines
    ), lines


def test_a_seal_whose_evidence_is_gone_is_not_found_with_the_command_to_fetch_it(tmp_path: Path) -> None:
    root, remote = sealed_and_published(tmp_path)
    judged = git(root, "rev-parse", "DEMO-SEALED^{commit}^")
    # The seal deleted from the remote: its tag removed and the branch forced back to the judged commit.
    git(root, "push", "-q", "origin", ":refs/tags/DEMO-SEALED")
    git(root, "push", "-q", "--force", "origin", f"{judged}:refs/heads/main")
    fresh = clone(tmp_path, remote, "fresh")
    assert not (fresh / "seals").exists()
    done = cli(fresh, "verify", "DEMO-SEALED")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "sealgate: evidence for DEMO-SEALED not found: fetch it with `git fetch origin tag DEMO-SEALED`"
    )
    assert "Traceback" not in done.stderr


def test_publish_never_forces_and_says_what_was_refused(tmp_path: Path) -> None:
    root, remote = sealed_and_published(tmp_path)
    other = clone(tmp_path, remote, "other")
    commit_all(other, "someone else's work")
    git(other, "push", "-q", "origin", "main")
    # The local main (at the seal commit) is behind: refused, never forced; the tag is there already.
    out: list[str] = []
    assert engine.publish(root, "origin", out=out.append) == 1
    assert "up to date DEMO-SEALED → origin" in out
    assert any(line.startswith("REFUSED main by origin: [rejected]") and "never forces" in line for line in out), out
    assert git(remote, "rev-parse", "main") == git(other, "rev-parse", "HEAD")
    # Work after the seal is the user's own push, not publish's.
    git(root, "commit", "-q", "--allow-empty", "-m", "local only")
    out = []
    assert engine.publish(root, "origin", out=out.append) == 0
    assert out == [
        "branch main not pushed: its tip is not a seal commit (push your own work yourself)",
        "up to date DEMO-SEALED → origin",
    ]
    # A remote tag of the same name at another object: refused, never forced.
    git(other, "tag", "-f", "-a", "DEMO-SEALED", "-m", "elsewhere", "HEAD")
    git(other, "push", "-q", "--force", "origin", "refs/tags/DEMO-SEALED")
    out = []
    assert engine.publish(root, "origin", out=out.append) == 1
    assert any(line.startswith("REFUSED DEMO-SEALED by origin: ") for line in out), out
    assert git(remote, "rev-parse", "DEMO-SEALED^{commit}") == git(other, "rev-parse", "HEAD")


def test_publish_to_a_missing_remote_is_one_clear_line(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    done = cli(root, "publish", "upstream")
    assert done.returncode == 2
    assert done.stderr.strip() == "sealgate: remote upstream: does not exist (add it: git remote add upstream <url>)"

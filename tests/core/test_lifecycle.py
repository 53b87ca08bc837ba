"""The sprint lifecycle on real repositories: a sealed sprint is never run again, `status` says open / sealed /
verified / broken, `new` drafts the next spec from the newest sealed one, seals chain (verify walks the chain oldest
first and names a broken link), and a waiver that expired after the seal has a status and exit code of its own."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECT_ROOT, commit_all, git
from demo import make_demo_repo, set_switch, tags, waive_beta_skip

from sealgate import engine
from sealgate.api.context import RunOptions
from sealgate.kernel.errors import EXIT_WAIVER_EXPIRED, InputError
from sealgate.run.plan import open_spec
from sealgate.seal.lifecycle import draft
from sealgate.sprint.seals import SealRef
from seals import edit_json, forge_seal, sealed_file


def seal(root: Path, sprint: str | None = "DEMO", **kw: Any) -> tuple[int, list[str]]:
    lines: list[str] = []

    def no_stack(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("the stack was started")

    options = RunOptions(backend="local", **kw)
    return engine.seal(root, sprint, options, out=lines.append, stack_factory=no_stack), lines


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealgate.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def status(root: Path, **kw: Any) -> tuple[int, list[str]]:
    out: list[str] = []
    return engine.status(root, out=out.append, **kw), out


def add_second_sprint(root: Path) -> None:
    """DEMO2: the same checks, its base the DEMO seal."""
    text = (root / "sprint" / "DEMO.yaml").read_text()
    text = text.replace("id: DEMO\n", "id: DEMO2\n").replace("\ntag: DEMO-SEALED", "\ntag: DEMO2-SEALED")
    (root / "sprint" / "DEMO2.yaml").write_text(text.replace("base_tag: DEMO-BASE", "base_tag: DEMO-SEALED"))
    commit_all(root, "sprint DEMO2")


def test_seal_on_a_later_commit_says_the_sprint_is_sealed_and_runs_nothing(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    seal_commit = git(root, "rev-parse", "HEAD")
    set_switch(root, "alpha", "bad")  # a later commit that would fail the sprint if it were run again
    done = cli(root, "seal", "--backend", "local")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"DEMO is sealed on HEAD's history: tag DEMO-SEALED, seal {seal_commit[:12]}, commit "
        f"{git(root, 'rev-parse', 'DEMO-SEALED^{commit}^')[:12]}, {datetime.datetime.now(datetime.timezone.utc).date()}"
        "; no open sprint to seal (start the next one: sealgate new <ID>)"
    ]
    # Named with --sprint, a sealed sprint is re-verified instead (no stage, no stack).
    code, lines = seal(root)
    assert code == 0 and lines[0].startswith("DEMO is sealed on HEAD's history") and "re-verifying it" in lines[0]
    assert not [line for line in lines if line.startswith("EIXO")]
    assert lines[-1] == "already sealed: DEMO-SEALED (verified)"
    # ... and a broken seal says so: exit 1, no tag moved.
    edited = edit_json(sealed_file(root, "DEMO-SEALED", "eixo_0.json"), {"reason": "edited"})
    forge_seal(root, "DEMO-SEALED", {"eixo_0.json": edited})
    code, lines = seal(root)
    assert code == 1 and "FAILED  evidence files match the manifest" in lines


def test_without_sprint_seal_picks_the_newest_open_sprint(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    add_second_sprint(root)
    code, lines = seal(root, None)
    assert code == 0 and lines[-1] == "SEALED DEMO2-SEALED", lines
    assert tags(root) == ["DEMO-BASE", "DEMO-SEALED", "DEMO2-SEALED"]


def test_status_says_open_sealed_verified_and_broken(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    add_second_sprint(root)
    assert status(root) == (0, ["DEMO   open      tag DEMO-SEALED not made yet; base DEMO-BASE",
                                "DEMO2  open      tag DEMO2-SEALED not made yet; base DEMO-SEALED"])  # fmt: skip
    assert seal(root)[0] == 0
    seal_commit, judged = git(root, "rev-parse", "HEAD"), git(root, "rev-parse", "HEAD^")
    today = datetime.datetime.now(datetime.timezone.utc).date()
    facts = f"tag DEMO-SEALED, seal {seal_commit[:12]}, commit {judged[:12]}, {today}; base DEMO-BASE"
    assert status(root, verify=False) == (0, [f"DEMO   sealed    {facts}",
                                              "DEMO2  open      tag DEMO2-SEALED not made yet; base DEMO-SEALED"])  # fmt: skip
    assert status(root)[1][0] == f"DEMO   verified  {facts}"
    # The tag forced onto a seal commit with edited evidence: broken, saying why.
    forged = forge_seal(root, "DEMO-SEALED", {"eixo_1.json": b"{}\n"})
    code, out = status(root)
    assert code == 1
    assert out[0] == (
        f"DEMO   broken    tag DEMO-SEALED, seal {forged[:12]}, commit {judged[:12]}, {today}; base DEMO-BASE"
        " — evidence files match the manifest: seals/DEMO/manifest.json: $.files[1]: "
        "seals/DEMO/eixo_1.json was changed after the run (sha256 differs)"
    ), out
    # A hand-made tag of the same name is no seal at all.
    git(root, "tag", "-f", "-a", "DEMO-SEALED", "-m", "hand made", judged)
    code, out = status(root)
    assert code == 1
    assert (
        out[0]
        == "DEMO   broken    base DEMO-BASE — tag DEMO-SEALED exists but is not a sealgate seal (no sprint:/commit: lines)"
    )
    done = cli(root, "status")
    assert done.returncode == 1 and done.stdout.splitlines()[0] == out[0]


def test_a_tagless_clone_knows_its_sprints_are_sealed(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    git(root, "tag", "-d", "DEMO-SEALED")
    code, out = status(root)
    assert code == 0 and out[0].startswith("DEMO  verified  tag DEMO-SEALED (not in this clone), seal ")
    code, lines = seal(root, None)
    assert code == 0 and "no open sprint to seal" in lines[0]


def test_a_tagless_clone_seals_the_next_sprint_on_its_base_seal_commit(tmp_path: Path) -> None:
    """A fresh clone brings no tags (CI checkouts, a newcomer's clone): the next sprint's base is the base's seal
    commit in HEAD's history, and verify walks the chain from there."""
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    base_seal = git(root, "rev-parse", "DEMO-SEALED^{commit}")
    add_second_sprint(root)
    git(root, "tag", "-d", "DEMO-SEALED")
    code, lines = seal(root, None)
    assert code == 0 and lines[-1] == "SEALED DEMO2-SEALED", lines
    record = json.loads(git(root, "show", "DEMO2-SEALED:seals/DEMO2/seal.json"))
    assert record["base"]["tag"] == "DEMO-SEALED" and record["base"]["commit"] == base_seal
    out: list[str] = []
    assert engine.verify(root, "DEMO2-SEALED", None, out=out.append) == 0, out
    assert out[-1] == "verify DEMO2-SEALED: OK" and out.count("ok      criteria re-evaluate to pass") == 2, out


def test_new_drafts_the_next_spec_which_loads_plans_and_is_refused_only_for_its_planned_checks(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    with pytest.raises(InputError, match=r"sprint/: no sprint is sealed on HEAD's history to start from"):
        engine.new(root, "DEMO2", out=lambda _: None)
    spec_file = root / "sprint" / "DEMO.yaml"
    spec_file.write_text(
        spec_file.read_text().replace(
            "next_steps:\n  - title: Later\n    items: [more]\n",
            "next_steps:\n  - title: Integrações\n    items: [Slack webhook, PagerDuty on-call]\n"
            "  - title: Backup offsite\n    items: [S3-compatible storage]\n",
        )
    )
    commit_all(root, "next steps")
    assert seal(root)[0] == 0
    out: list[str] = []
    assert engine.new(root, "DEMO2", out=out.append) == 0
    assert out == ["wrote sprint/DEMO2.yaml: base DEMO-SEALED, 2 stage(s) of planned checks"]
    raw = yaml.safe_load((root / "sprint" / "DEMO2.yaml").read_text())
    assert raw["base_tag"] == "DEMO-SEALED" and raw["base_commit"] == git(root, "rev-parse", "DEMO-SEALED^{commit}")
    assert raw["tag"] == "DEMO2-SEALED" and raw["language"] == "en"
    assert raw["plugins"] == ["sprint/plugins/demo_checks.py"]  # carried over with the language
    assert raw["objective"] == "Next steps of DEMO (Demo sprint): Integrações; Backup offsite."
    assert raw["expected_results"] == [
        "Integrações: Slack webhook", "Integrações: PagerDuty on-call", "Backup offsite: S3-compatible storage",
    ]  # fmt: skip
    names = [stage.pop("name") for stage in raw["stages"]]  # the framework's names for the numbers, where fixed
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in names) and len(set(names)) == 2
    assert raw["stages"] == [
        {"number": 0, "title": "Integrações", "objective": "Slack webhook; PagerDuty on-call",
         "checks": [{"id": "todo/slack-webhook", "planned": True}, {"id": "todo/pagerduty-on-call", "planned": True}]},
        {"number": 1, "title": "Backup offsite", "objective": "S3-compatible storage",
         "checks": [{"id": "todo/s3-compatible-storage", "planned": True}]},
    ]  # fmt: skip
    assert raw["criteria"] == [{"id": "C1", "title": "Integrações", "stages": [0]},
                               {"id": "C2", "title": "Backup offsite", "stages": [1]}]  # fmt: skip
    spec = open_spec(root, "DEMO2")  # loads
    assert [ref.definition for stage in spec.stages.values() for ref in stage.checks] == [None, None, None]  # plans
    with pytest.raises(InputError, match=r"sprint/DEMO2.yaml: already exists: sealgate new never overwrites a spec"):
        engine.new(root, "DEMO2", out=lambda _: None)
    commit_all(root, "draft DEMO2")
    code, lines = seal(root, None, no_tag=True)
    assert code == 1
    reasons = lines[lines.index(next(line for line in lines if line.startswith("NOT SEALED"))) + 1 :]
    assert reasons == [
        "  - criterion C1 (Integrações): todo/slack-webhook: errored — check not implemented",
        "  - criterion C2 (Backup offsite): todo/s3-compatible-storage: errored — check not implemented",
        f"  - stage 0 ({names[0]}): errored",
        f"  - stage 1 ({names[1]}): errored",
    ], lines


def test_new_drafts_f9_11_from_the_reference_spec() -> None:
    raw = yaml.safe_load((PROJECT_ROOT / "sprint" / "F9.10.yaml").read_text())
    base = SealRef("F9.10-SEALED", "F9.10", "a" * 40, None)
    drafted = draft(raw, "F9.11", base)
    assert drafted["tag"] == "F9.11-SEALED" and drafted["language"] == "pt-BR"
    assert [s["title"] for s in drafted["stages"]] == [g["title"] for g in raw["next_steps"]]
    assert all(c["planned"] and c["id"].startswith("todo/") for s in drafted["stages"] for c in s["checks"])
    assert "todo/adicionar-instrumentacao-http-requests-total" in [
        c["id"] for s in drafted["stages"] for c in s["checks"]
    ]
    assert "base_external" not in drafted and "blocker" not in drafted and "next_steps" not in drafted


def test_verify_walks_the_chain_oldest_first_and_names_a_broken_link(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    add_second_sprint(root)
    assert seal(root, "DEMO2")[0] == 0
    out: list[str] = []
    assert engine.verify(root, "DEMO2-SEALED", None, out=out.append) == 0, out
    headers = [line for line in out if line.startswith(("chain:", "── "))]
    assert headers == [
        "chain: DEMO-SEALED (base DEMO-BASE is not a sealgate seal: the chain starts there) → DEMO2-SEALED",
        f"── DEMO-SEALED: seal {git(root, 'rev-parse', 'DEMO-SEALED^{commit}')[:12]} (base of DEMO2-SEALED)",
        f"── DEMO2-SEALED: seal {git(root, 'rev-parse', 'DEMO2-SEALED^{commit}')[:12]}",
    ]
    assert out.count("ok      criteria re-evaluate to pass") == 2 and out[-1] == "verify DEMO2-SEALED: OK"
    # The first seal's evidence edited in the repository's copy: the second's verify fails, naming the first.
    sealed = root / "seals" / "DEMO" / "eixo_1.json"
    sealed.write_bytes(edit_json(sealed.read_bytes(), {"reason": "edited"}))
    commit_all(root, "edit the first seal's evidence")
    out = []
    assert engine.verify(root, "DEMO2-SEALED", None, out=out.append) == 1
    assert "FAILED  the branch's copy of the seal is unchanged" in out
    assert out[-1] == "verify DEMO2-SEALED: FAILED — its base DEMO-SEALED does not verify (the chain is broken there)"
    git(root, "reset", "-q", "--hard", "HEAD^")
    # The first seal's tag forced onto a forged seal commit: the link is broken, and named.
    forged = forge_seal(root, "DEMO-SEALED", {"eixo_1.json": b"{}\n"})
    out = []
    assert engine.verify(root, "DEMO2-SEALED", None, out=out.append) == 1
    recorded = git(root, "rev-parse", "HEAD~2")  # DEMO's real seal commit, below DEMO2's spec commit
    assert out[-1] == (
        f"verify DEMO2-SEALED: FAILED — the link to its base is broken: base tag DEMO-SEALED now points at "
        f"{forged[:12]}, DEMO2-SEALED recorded {recorded[:12]}"
    ), out


def test_a_waiver_expired_after_the_seal_has_its_own_status_and_exit_code(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    waive_beta_skip(root)
    assert seal(root)[0] == 0
    out: list[str] = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append) == 0
    assert "ok      waivers still in force today — 1 waiver(s), the first to expire on 2099-12-31" in out
    later = datetime.date(2100, 1, 1)
    out = []
    assert engine.verify(root, "DEMO-SEALED", None, out=out.append, today=later) == EXIT_WAIVER_EXPIRED
    assert "EXPIRED waivers still in force today" in out
    assert "        waiver for check demo/beta (sprint/DEMO.waivers.yaml:2) expired on 2099-12-31" in out
    assert out[-1] == "verify DEMO-SEALED: SEALED, waiver expired on 2099-12-31"
    done = cli(root, "verify", "DEMO-SEALED", "--as-of", "2100-01-01")
    assert done.returncode == 3 and done.stdout.splitlines()[-1] == out[-1]
    code, lines = status(root, today=later)
    assert code == EXIT_WAIVER_EXPIRED
    assert lines[0].startswith("DEMO  sealed    tag DEMO-SEALED, seal ")
    assert lines[0].endswith("; base DEMO-BASE — SEALED, waiver expired on 2099-12-31")


def test_report_of_a_sealed_sprint_is_the_sealed_report(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    sealed = (root / "seals" / "DEMO" / "SEAL_DEMO.md").read_text()
    (root / "reports" / "SEAL_DEMO.md").unlink()
    out: list[str] = []
    assert engine.report(root, "DEMO", out=out.append) == 0
    seal_commit = git(root, "rev-parse", "HEAD")
    assert out == [
        f"report: reports/SEAL_DEMO.md (the sealed report, from seals/DEMO/SEAL_DEMO.md in seal {seal_commit[:12]})"
    ]
    assert (root / "reports" / "SEAL_DEMO.md").read_text() == sealed


def test_a_seal_on_another_branch_is_not_sealed_here_and_its_tag_never_moves(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    git(root, "checkout", "-q", "-b", "side")
    commit_all(root, "side work")
    assert seal(root)[0] == 0
    tag_object = git(root, "rev-parse", "DEMO-SEALED")
    git(root, "checkout", "-q", "main")
    code, out = status(root)
    assert code == 0 and out[0].startswith("DEMO  verified  tag DEMO-SEALED, seal ")
    assert "; not on HEAD's history; base DEMO-BASE" in out[0]
    code, lines = seal(root, None)
    assert code == 1 and any("tag DEMO-SEALED already exists" in line and "never moved" in line for line in lines)
    assert git(root, "rev-parse", "DEMO-SEALED") == tag_object

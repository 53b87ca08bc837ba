"""Waivers that hide nothing they do not name, on the test-only DEMO sprint in real temporary git repositories: a
waiver of failures names the findings it covers (a finding it does not name fails the check as if there were no
waiver), one that names none is bad input at its line, one that covers nothing any more is reported stale, and the
console and the report say *waived* exactly where the judge does."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import commit_all, git
from demo import make_demo_repo, set_switch

from sealgate import cli, engine
from sealgate.api.context import RunOptions
from sealgate.kernel.errors import InputError
from sealgate.run.plan import open_spec

LINES_STAGE = "      - id: demo/beta\n"
KNOWN = "known: clock skew on the CI runners\n"


def with_lines(root: Path, lines: str, waivers: str) -> None:
    """DEMO with `demo/lines` in its first stage, demo/lines.txt holding `lines`, and the waiver file given."""
    spec = root / "sprint" / "DEMO.yaml"
    if "demo/lines" not in spec.read_text():
        spec.write_text(spec.read_text().replace(LINES_STAGE, LINES_STAGE + "      - id: demo/lines\n", 1))
    (root / "demo" / "lines.txt").write_text(lines)
    (root / "sprint" / "DEMO.waivers.yaml").write_text(waivers)
    commit_all(root, "lines and waivers")


SCOPED = """\
waivers:
  - check: demo/lines
    accepts: [failed]
    findings:
      - {file: "demo/*.txt", message: "^known: "}
    justification: the CI runners' clocks drift; tracked in INFRA-12
    approver: Platform Team
    expires: "2099-12-31"
"""


def seal(root: Path, **kw: object) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = engine.seal(root, "DEMO", RunOptions(backend="local", **kw), out=lines.append)  # type: ignore[arg-type]
    return code, lines


def report(root: Path) -> str:
    return (root / "reports" / "SEAL_DEMO.md").read_text()


def test_a_scoped_waiver_covers_what_it_names_and_a_finding_it_does_not_name_fails_the_check(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    with_lines(root, KNOWN, SCOPED)
    code, lines = seal(root, no_tag=True)
    assert code == 0, lines
    assert "   waived  demo/lines — 1 finding(s) covered by its waiver (sprint/DEMO.waivers.yaml:2)" in lines
    assert any(line.startswith("stage 0: waived (") for line in lines), lines  # the stage as the judge sees it
    assert "| `demo/lines` Every line of demo/lines.txt is a finding | ⚠️ waived |" in report(root)
    assert "`demo/lines.txt:1` known: clock skew on the CI runners (accepted by its waiver)" in report(root)

    # A second finding, which the waiver does not name: the check fails as if there were no waiver.
    with_lines(root, KNOWN + 'typo: up{job="apii"} matches no series\n', SCOPED)
    code, lines = seal(root, no_tag=True)
    assert code == 1, lines
    uncovered = (
        "its waiver (sprint/DEMO.waivers.yaml:2) does not cover: demo/lines.txt:2: "
        'typo: up{job="apii"} matches no series'
    )
    assert f"   failed  demo/lines — {uncovered}" in lines
    assert any(line.startswith("stage 0: failed (") for line in lines), lines
    assert f"  - criterion C1 (Alpha and beta hold): demo/lines: failed — {uncovered}" not in lines  # not in C1
    assert "  - stage 0 (preflight): failed" in lines
    # demo/lines proves no criterion: every criterion passes, the stage does not, and the headline says both.
    assert (
        "tag not requested (--no-tag): 2 of 2 criteria passed on evidence, 0 waived, 0 not met; stages not passed: "
        "0 (preflight)"
    ) in report(root)


def test_a_waiver_names_findings_by_rule_and_metric(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    waivers = SCOPED.replace('{file: "demo/*.txt", message: "^known: "}', '{rule: "Node.*"}\n      - {metric: node_up}')
    with_lines(root, "rule: NodeDown fires too early\nmetric: node_up is not exported here\n", waivers)
    code, lines = seal(root, no_tag=True)
    assert code == 0, lines
    assert "   waived  demo/lines — 2 finding(s) covered by its waiver (sprint/DEMO.waivers.yaml:2)" in lines
    with_lines(root, "rule: DiskFull fires too early\nmetric: node_up is not exported here\n", waivers)
    code, lines = seal(root, no_tag=True)
    assert code == 1
    assert any("does not cover: demo/lines.txt:1: rule: DiskFull fires too early" in line for line in lines), lines


@pytest.mark.parametrize(
    ("entry", "where", "what"),
    [
        (
            "    accepts: [failed]\n",
            "sprint/DEMO.waivers.yaml:4",
            "waiver for check 'demo/lines' accepts failed without naming the findings it covers (a waiver never "
            "hides more than it names)",
        ),
        (
            "    accepts: [failed, errored]\n",
            "sprint/DEMO.waivers.yaml:4",
            "waiver for check 'demo/lines' accepts failed and errored without naming the findings it covers (a "
            "waiver never hides more than it names)",
        ),
        (
            '    findings: [{message: "known"}]\n',
            "sprint/DEMO.waivers.yaml:4",
            "findings: only a waiver that accepts failed or errored covers findings (a skip has none)",
        ),
        (
            '    accepts: [failed]\n    findings: [{message: "(unclosed"}]\n',
            "sprint/DEMO.waivers.yaml:5",
            "$.waivers[0].findings[0].message: not a regular expression: missing ), unterminated subpattern at "
            "position 0",
        ),
    ],
    ids=["failed", "failed-errored", "findings-without-failures", "bad-regex"],
)
def test_a_waiver_of_failures_that_does_not_name_its_findings_is_bad_input_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: str, where: str, what: str
) -> None:
    root = make_demo_repo(tmp_path)
    waivers = (
        "waivers:\n  - check: demo/lines\n    justification: a known issue, fixed next sprint\n"
        + entry
        + '    approver: Platform Team\n    expires: "2099-12-31"\n'
    )
    with_lines(root, KNOWN, waivers)
    with pytest.raises(InputError) as refused:
        open_spec(root, "DEMO")
    problems = [(p.where, p.what) for p in refused.value.problems]
    assert (where, what) in problems, problems
    assert cli.main(["seal", "--repo", str(root), "--sprint", "DEMO", "--no-tag", "--backend", "local"]) == 2
    err = capsys.readouterr().err
    assert f"sealgate: {where}: {what}" in err
    if "without naming" in what:
        assert "e.g. findings: [{file:" in err  # the scoped form, as an example
    assert not (root / "artifacts").exists()  # refused before anything ran


def test_a_waiver_that_covers_nothing_any_more_is_reported_stale(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    two = SCOPED.replace(
        '- {file: "demo/*.txt", message: "^known: "}', '- {message: "^known: "}\n      - {message: "^old: "}'
    )
    with_lines(root, KNOWN, two)
    code, lines = seal(root, no_tag=True)
    assert code == 0, lines
    stale_entry = (
        "stale: waiver for check demo/lines (sprint/DEMO.waivers.yaml:2) names a finding no longer found: "
        "message='^old: ' (sprint/DEMO.waivers.yaml:6) — remove it"
    )
    assert stale_entry in lines
    with_lines(root, "", two)  # nothing found: the check passes, the waiver covers nothing
    code, lines = seal(root, no_tag=True)
    assert code == 0, lines
    assert "   passed  demo/lines" in lines
    assert (
        "stale: waiver for check demo/lines (sprint/DEMO.waivers.yaml:2) covers nothing: the check passed — remove it"
        in lines
    )
    text = report(root)
    assert "**Waivers that cover nothing any more (stale: remove them):**" in text
    assert "- waiver for check demo/lines (sprint/DEMO.waivers.yaml:2) covers nothing: the check passed" in text


def test_a_skip_is_waived_only_when_its_reason_matches_the_waivers_pattern(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    set_switch(root, "beta", "skip")
    waiver = (
        "waivers:\n  - check: demo/beta\n    reason: no Grafana\n    justification: no Grafana can run here at all\n"
        '    approver: Platform Team\n    expires: "2099-12-31"\n'
    )
    (root / "sprint" / "DEMO.waivers.yaml").write_text(waiver)
    commit_all(root, "a skip waiver narrowed to a reason")
    code, lines = seal(root, no_tag=True)
    assert code == 1
    assert (
        "  skipped  demo/beta — beta does not apply on this machine (its waiver, sprint/DEMO.waivers.yaml:2, "
        "accepts only a skip matching 'no Grafana')"
    ) in lines
    (root / "sprint" / "DEMO.waivers.yaml").write_text(waiver.replace("no Grafana", "does not apply"))
    commit_all(root, "the waiver names this skip")
    code, lines = seal(root, no_tag=True)
    assert code == 0, lines
    assert ("   waived  demo/beta — beta does not apply on this machine; waived by sprint/DEMO.waivers.yaml:2") in lines


def test_a_check_whose_findings_are_all_covered_satisfies_the_checks_that_require_it(tmp_path: Path) -> None:
    """demo/delta requires demo/gamma: a gamma failure its waiver names lets delta run; one it does not name stops
    delta, as a failure does."""
    root = make_demo_repo(tmp_path)
    gamma_waiver = SCOPED.replace("check: demo/lines", "check: demo/gamma").replace(
        '{file: "demo/*.txt", message: "^known: "}', '{message: "^gamma is flaky$"}'
    )
    (root / "sprint" / "DEMO.waivers.yaml").write_text(gamma_waiver)
    set_switch(root, "gamma", "flaky")
    code, lines = seal(root)
    assert code == 0, lines
    assert "   waived  demo/gamma — 1 finding(s) covered by its waiver (sprint/DEMO.waivers.yaml:2)" in lines
    assert "   passed  demo/delta" in lines
    verified: list[str] = []
    assert engine.verify(root, "DEMO-SEALED", "DEMO", out=verified.append) == 0, verified
    assert any(line.startswith("ok      criteria re-evaluate to pass") for line in verified)
    assert any(line.startswith("ok      waivers still in force today — 1 waiver(s)") for line in verified)

    git(root, "reset", "-q", "--hard", "DEMO-SEALED^")
    git(root, "tag", "-d", "DEMO-SEALED")
    set_switch(root, "gamma", "broken")
    code, lines = seal(root, no_tag=True)
    assert code == 1
    assert "   failed  demo/gamma — its waiver (sprint/DEMO.waivers.yaml:2) does not cover: gamma is broken" in lines
    assert "  errored  demo/delta — prerequisite demo/gamma did not pass (failed)" in lines

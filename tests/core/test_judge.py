"""Waivers a check applied to parts of itself (a skipped stack test) make it *waived*, never passed, and are
re-checked against the spec: evidence citing a waiver the spec no longer holds fails."""

from __future__ import annotations

import datetime
from pathlib import Path

from demo import make_demo_repo

from sealgate.evidence.judge import Verdict, _check_verdict
from sealgate.sprint.model import CheckResult, Status
from sealgate.sprint.spec import load_spec

WAIVERS = (
    "waivers:\n  - test: suite::test_grafana\n    justification: no Grafana can run on this machine kind\n"
    "    approver: Ana Reviewer\n    expires: 2099-12-31\n"
)


def _spec(tmp_path: Path, waivers: str | None):
    root = make_demo_repo(tmp_path)
    if waivers:
        (root / "sprint" / "DEMO.waivers.yaml").write_text(waivers)
    return load_spec(root, "DEMO", today=datetime.date(2026, 11, 25))


def _result(waivers: list[dict]) -> CheckResult:
    return CheckResult("demo/beta", "Beta", Status.PASSED, "", waivers=waivers)


CITED = {
    "kind": "test",
    "target": "suite::test_grafana",
    "justification": "no Grafana can run on this machine kind",
    "approver": "Ana Reviewer",
    "expires": "2099-12-31",
    "source": "sprint/DEMO.waivers.yaml:2",
}


def test_a_passed_check_with_a_waived_part_is_waived(tmp_path: Path) -> None:
    cv = _check_verdict(_spec(tmp_path, WAIVERS), "demo/beta", 0, _result([CITED]))
    assert cv.verdict is Verdict.WAIVED and cv.verdict.ok
    assert [w.target for w in cv.waivers] == ["suite::test_grafana"]
    assert cv.reason == "test suite::test_grafana waived"


def test_a_cited_waiver_the_spec_no_longer_holds_fails(tmp_path: Path) -> None:
    cv = _check_verdict(_spec(tmp_path, None), "demo/beta", 0, _result([CITED]))
    assert cv.verdict is Verdict.FAILED
    assert cv.reason == "evidence cites a waiver for test 'suite::test_grafana' that the spec does not hold"


def test_a_plain_pass_stays_passed(tmp_path: Path) -> None:
    assert _check_verdict(_spec(tmp_path, WAIVERS), "demo/beta", 0, _result([])).verdict is Verdict.PASSED

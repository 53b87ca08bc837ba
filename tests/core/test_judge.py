"""Waivers a check applied to parts of itself (a skipped stack test) make it *waived*, never passed, and are
re-checked against the spec: evidence citing a waiver the spec no longer holds fails."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from demo import make_demo_repo

from sealgate.evidence.judge import Verdict, check_verdict
from sealgate.kernel.errors import InputError
from sealgate.model.results import CheckResult, Status
from sealgate.run.plan import open_spec

WAIVERS = (
    "waivers:\n  - test: suite::test_grafana\n    justification: no Grafana can run on this machine kind\n"
    "    approver: Ana Reviewer\n    expires: 2099-12-31\n"
)


def _spec(tmp_path: Path, waivers: str | None):
    root = make_demo_repo(tmp_path)
    if waivers:
        (root / "sprint" / "DEMO.waivers.yaml").write_text(waivers)
    return open_spec(root, "DEMO", today=datetime.date(2026, 11, 25))


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
    cv = check_verdict(_spec(tmp_path, WAIVERS), "demo/beta", 0, _result([CITED]))
    assert cv.verdict is Verdict.WAIVED and cv.verdict.ok
    assert [w.target for w in cv.waivers] == ["suite::test_grafana"]
    assert cv.reason == "test suite::test_grafana waived"


def test_a_cited_waiver_the_spec_no_longer_holds_fails(tmp_path: Path) -> None:
    cv = check_verdict(_spec(tmp_path, None), "demo/beta", 0, _result([CITED]))
    assert cv.verdict is Verdict.FAILED
    assert cv.reason == "evidence cites a waiver for test 'suite::test_grafana' that the spec does not hold"


def test_a_plain_pass_stays_passed(tmp_path: Path) -> None:
    assert check_verdict(_spec(tmp_path, WAIVERS), "demo/beta", 0, _result([])).verdict is Verdict.PASSED


CHECK_WAIVER = (
    "waivers:\n  - check: demo/beta\n    justification: beta cannot run on this machine kind\n"
    "    approver: Ana Reviewer\n    expires: 2099-12-31\n"
)


@pytest.mark.parametrize(
    ("status", "accepts", "expected"),
    [
        (Status.SKIPPED, None, Verdict.WAIVED),  # the default: a waiver accepts a check that could not run here
        (Status.ERRORED, None, Verdict.ERRORED),
        (Status.FAILED, None, Verdict.FAILED),  # "cannot run here" must not hide a failure where it can run
        (Status.FAILED, "[failed]", Verdict.WAIVED),  # ... unless the waiver names failures
        (Status.ERRORED, "[skipped, failed]", Verdict.ERRORED),
    ],
)
def test_a_check_waiver_accepts_only_the_verdicts_it_names(
    tmp_path: Path, status: Status, accepts: str | None, expected: Verdict
) -> None:
    waivers = CHECK_WAIVER + (f"    accepts: {accepts}\n" if accepts else "")
    if accepts and "failed" in accepts:  # a waiver of failures names the findings it covers (here, the reason)
        waivers += '    findings: [{message: "^boom$"}]\n'
    cv = check_verdict(_spec(tmp_path, waivers), "demo/beta", 0, CheckResult("demo/beta", "Beta", status, "boom"))
    assert cv.verdict is expected
    if expected is not Verdict.WAIVED:
        assert cv.reason.startswith("boom (its waiver, sprint/DEMO.waivers.yaml:2, accepts only: skipped")
        assert not cv.waivers


def test_a_waiver_accepting_passed_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        _spec(tmp_path, CHECK_WAIVER + "    accepts: [passed]\n")
    assert [str(p) for p in caught.value.problems] == [
        "sprint/DEMO.waivers.yaml:6: $.waivers[0].accepts[0]: 'passed' is not one of ['skipped', 'errored', 'failed']"
    ]

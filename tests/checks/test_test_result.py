"""The stack suite's run as an in-toto Test Result (https://in-toto.io/attestation/test-result/v0.1), attached by
`tests/stack-suite` to its stage's evidence: parsed with in-toto-attestation's own definitions (unknown fields
refused); passed, failed and skipped tests listed by name, a skip in `warnedTests` with its reason (the predicate has
no list for skips, and a skip is no pass); `result` PASSED only when the check passes, WARNED when it passes on
waived skips, FAILED otherwise.

The unit part reads a JUnit XML file written here through the check's own parser; the rest runs the real check —
real pytest, the real suite — against the running stack, as tests/checks/test_stack_suite.py drives it.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from attestations import Invalid, parse_test_result
from conftest import commit_all, git
from test_stack_suite import GRAFANA, MODULE, SUITE, edit, run

from sealgate.checks.tests import TEST_RESULT_ATTACHMENT, defined_tests, in_toto_test_result, parse_junit
from sealgate.kernel.fsutil import sha256_file
from sealgate.model.results import Status

ATTACHMENT = f"eixo_6/{TEST_RESULT_ATTACHMENT}"

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="stack-suite" tests="5">
  <testcase classname="suite.test_shop" name="test_lists_items" time="0.10"/>
  <testcase classname="suite.test_shop" name="test_checkout" time="0.20">
    <failure message="AssertionError: total is 11, expected 10">suite/test_shop.py:9: AssertionError</failure>
  </testcase>
  <testcase classname="suite.test_shop" name="test_refund" time="0.01">
    <error message="failed on setup with &quot;ConnectionError: db down&quot;">E   ConnectionError: db down</error>
  </testcase>
  <testcase classname="suite.test_shop" name="test_invoice_pdf" time="0.00">
    <skipped type="pytest.skip" message="no PDF renderer on this machine">suite/test_shop.py:15: no PDF</skipped>
  </testcase>
  <testcase classname="suite.test_shop" name="test_search" time="0.00">
    <skipped type="pytest.skip" message="search index not built">suite/test_shop.py:18: not built</skipped>
  </testcase>
</testsuite></testsuites>
"""
SHOP = """def test_lists_items(): pass
def test_checkout(): pass
def test_refund(): pass
def test_invoice_pdf(): pass
def test_search(): pass
"""


# --- the predicate, from a JUnit XML file of our own ----------------------------------------------------------------


@pytest.fixture
def shop_result(tmp_path: Path) -> dict[str, Any]:
    suite = tmp_path / "suite" / "test_shop.py"
    suite.parent.mkdir()
    suite.write_text(SHOP)
    (tmp_path / "junit.xml").write_text(JUNIT)
    cases = parse_junit((tmp_path / "junit.xml").read_text(), "suite/test_shop.py", defined_tests(suite))
    return in_toto_test_result(
        cases,
        verdict="FAILED",
        commit="0" * 40,
        configuration=[("suite/test_shop.py", sha256_file(suite))],
        waived_by={"suite.test_shop::test_invoice_pdf": "sprint/S1.waivers.yaml:3"},
        missing=["test_export"],
        suite="suite/test_shop.py",
    )


def test_the_junit_outcomes_become_an_in_toto_test_result(shop_result: dict[str, Any], tmp_path: Path) -> None:
    result = parse_test_result(shop_result)
    assert result.result == "FAILED"
    assert list(result.passed_tests) == ["suite.test_shop::test_lists_items"]
    assert list(result.failed_tests) == [
        "suite.test_shop::test_checkout",
        "suite.test_shop::test_refund",  # an error fails the test as surely as a failed assertion
        "test_export — did not run: no such test in suite/test_shop.py",  # a scenario the spec expects
    ]
    # Skips are warnings with their reason, waived or not: never passes.
    assert list(result.warned_tests) == [
        "suite.test_shop::test_invoice_pdf — skipped: no PDF renderer on this machine; waived by "
        "sprint/S1.waivers.yaml:3",
        "suite.test_shop::test_search — skipped: search index not built; not waived: a skip is not a pass",
    ]
    (configuration,) = result.configuration
    assert configuration.name == "suite/test_shop.py"
    assert configuration.digest["sha256"] == sha256_file(tmp_path / "suite" / "test_shop.py")
    assert shop_result["subject"] == [{"digest": {"gitCommit": "0" * 40}}]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d["predicate"].update(skippedTests=["x"]), 'no field named "skippedTests"'),  # unknown: refused
        (lambda d: d["predicate"].update(result="SKIPPED"), "is not PASSED, WARNED or FAILED"),
        (lambda d: d["predicate"].pop("configuration"), "required configuration missing"),
        (lambda d: d["predicate"].update(passedTests="suite.test_shop::test_lists_items"), "predicate: "),
        (lambda d: d["subject"][0].pop("digest"), "At least one"),
        (lambda d: d.update(predicateType="https://in-toto.io/attestation/test-result/v0.2"), "expected 'https://"),
    ],
)
def test_a_broken_test_result_does_not_validate(shop_result: dict[str, Any], change: Any, says: str) -> None:
    broken = copy.deepcopy(shop_result)
    change(broken)
    with pytest.raises(Invalid) as raised:
        parse_test_result(broken)
    assert says in str(raised.value), raised.value


# --- attached by the check to its stage's evidence ------------------------------------------------------------------


def attached(root: Path) -> tuple[dict[str, Any], Any]:
    """(the Test Result document, its parsed predicate), after checking the stage's statement lists it."""
    statement = json.loads((root / "artifacts/f9_10/eixo_6.json").read_text())
    listed = {a["name"]: a["digest"]["sha256"] for a in statement["predicate"]["attachments"]}
    path = root / "artifacts/f9_10" / ATTACHMENT
    assert listed[ATTACHMENT] == sha256_file(path)  # in the manifest's terms: it travels in the seal
    document = json.loads(path.read_text())
    return document, parse_test_result(document)


def grafana_runs(stack: Any) -> bool:
    """Whether a Grafana answers in this stack (then its scenario runs in full and needs no waiver)."""
    state = stack.services().get("grafana")
    return bool(state is not None and state.running)


def stub_passing(root: Path, scenario: str) -> None:
    """The scenario replaced by one that passes (what it checks is not what these tests are about)."""
    edit(root, SUITE, f"def {scenario}(", f"def _{scenario}_orig(")
    (root / SUITE).write_text((root / SUITE).read_text() + f"\n\ndef {scenario}() -> None:\n    pass\n")


@pytest.mark.stack
def test_a_failing_run_is_a_failed_test_result_naming_each_test(project_copy: Path, local_stack: Any) -> None:
    result = run(project_copy, local_stack)  # local processes: the two containerized scenarios fail
    assert result.status is Status.FAILED
    document, predicate = attached(project_copy)
    assert predicate.result == "FAILED"
    assert sorted(predicate.failed_tests) == [
        f"{MODULE}::test_alertmanager_containerized",
        f"{MODULE}::test_prometheus_containerized",
    ]
    warned = list(predicate.warned_tests)
    if grafana_runs(local_stack):
        assert warned == []
    else:
        (grafana,) = warned
        assert re.fullmatch(
            rf"{re.escape(GRAFANA)} — skipped: .+; waived by sprint/F9\.10\.waivers\.yaml:\d+", grafana
        ), grafana
    assert len(predicate.passed_tests) + len(predicate.failed_tests) + len(warned) == 8
    # The commit whose stack and suite were tested, and every file of the suite's configuration with its digest.
    assert document["subject"] == [{"digest": {"gitCommit": git(project_copy, "rev-parse", "HEAD")}}]
    configuration = {c.name: c.digest["sha256"] for c in predicate.configuration}
    assert {SUITE, "stack/tests/conftest.py", "stack/scripts/backup_observability.sh"} <= set(configuration)
    assert configuration[SUITE] == sha256_file(project_copy / SUITE)


@pytest.mark.stack
def test_a_pass_on_a_waived_skip_is_warned_and_a_clean_pass_is_passed(project_copy: Path, local_stack: Any) -> None:
    for scenario in ("test_prometheus_containerized", "test_alertmanager_containerized"):
        stub_passing(project_copy, scenario)
    commit_all(project_copy, "containerized scenarios stubbed: this stack is local processes")
    result = run(project_copy, local_stack)
    assert result.status is Status.PASSED, result.reason
    _, predicate = attached(project_copy)
    if not grafana_runs(local_stack):  # no Grafana: its scenario skips, and the spec's waiver accepts it
        assert predicate.result == "WARNED"
        assert [t.split(" — ")[0] for t in predicate.warned_tests] == [GRAFANA]
    assert list(predicate.failed_tests) == []

    stub_passing(project_copy, "test_grafana_datasource_prometheus")
    commit_all(project_copy, "Grafana scenario stubbed")
    result = run(project_copy, local_stack)
    assert result.status is Status.PASSED, result.reason
    _, predicate = attached(project_copy)
    assert predicate.result == "PASSED"
    assert len(predicate.passed_tests) == 8 and list(predicate.warned_tests) == list(predicate.failed_tests) == []


@pytest.mark.stack
def test_the_compose_stack_run_is_warned_on_its_waived_grafana_skip(project_copy: Path, compose_stack: Any) -> None:
    result = run(project_copy, compose_stack)
    assert result.status is Status.PASSED, result.reason
    _, predicate = attached(project_copy)
    grafana = grafana_runs(compose_stack)
    assert predicate.result == ("PASSED" if grafana else "WARNED")
    assert len(predicate.passed_tests) == (8 if grafana else 7)
    assert list(predicate.failed_tests) == []

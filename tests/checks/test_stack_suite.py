"""EIXO 6 — tests/stack-suite: the F9.10 stack suite run against a real stack, and the check's verdict on it.

Broken copies of the project (`project_copy`) prove each way the seed's "2 failed, 4 skipped, sealed 8/8" could
happen is refused: a failing scenario, a skip without a waiver, a deleted scenario, a suite that does not import.
A waived skip passes, recorded as waived. On the local backend the two "containerized" scenarios fail, truthfully.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from checkrun import run_checks
from conftest import PROJECT_ROOT, commit_all, need_docker, need_tool

from sealgate.kernel.errors import InputError
from sealgate.model.results import CheckResult, Severity, Status
from sealgate.run.plan import open_spec

CHECK = "tests/stack-suite"
SUITE = "stack/tests/test_f9_10_observability.py"
MODULE = "stack.tests.test_f9_10_observability"
SCENARIOS = [
    "test_prometheus_containerized",
    "test_alertmanager_containerized",
    "test_prometheus_healthy",
    "test_alertmanager_ready",
    "test_alert_rules_loaded",
    "test_grafana_datasource_prometheus",
    "test_backup_script_exists",
    "test_env_circuit_breaker_config",
]
GRAFANA = f"{MODULE}::test_grafana_datasource_prometheus"

pytestmark = pytest.mark.stack


@pytest.fixture
def compose(compose_stack: Any) -> Any:
    need_docker()
    return compose_stack


def run(root: Path, stack: Any) -> CheckResult:
    suite_on_todays_rules(root)
    return run_checks(root, 6, [CHECK], stack=stack)[CHECK]


def suite_on_todays_rules(root: Path) -> None:
    """F9.10's suite checks the rule set F9.10 sealed (5 rules, APIHighErrorRate removed); since F9.11 the stack loads
    6, APIHighErrorRate restored. These tests are about the stack-suite check, not that claim: the copy's suite
    expects today's rules, so only what a test breaks on purpose fails. (Idempotent: a test may call it first.)"""
    text = (root / SUITE).read_text()
    for old, new in (
        ('REMOVED_RULES = {"APIHighErrorRate"}', "REMOVED_RULES: set[str] = set()"),
        ('"api": {"APIDown"},', '"api": {"APIDown", "APIHighErrorRate"},'),
        ('== 5, f"expected 5 alert rules', '== 6, f"expected 6 alert rules'),
    ):
        text = text.replace(old, new)
    (root / SUITE).write_text(text)


def outcomes(result: CheckResult) -> dict[str, str]:
    return {t["id"].split("::")[1]: t["outcome"] for t in result.data["tests"]}


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert text.count(old) == 1, f"{relative}: anchor {old!r} not found exactly once"
    path.write_text(text.replace(old, new))


def inject_skip(root: Path, scenario: str) -> None:
    """A scenario that skips itself at its first line (what a test does when what it needs is not there)."""
    edit(root, SUITE, f"def {scenario}(", f"def _{scenario}_orig(")
    (root / SUITE).write_text(
        (root / SUITE).read_text()
        + f"\n\ndef {scenario}() -> None:\n    pytest.skip('injected: the scenario could not run here')\n"
    )


def errors(result: CheckResult) -> list[str]:
    return [str(f) for f in result.findings if f.severity is Severity.ERROR]


def line_of(root: Path, needle: str) -> int:
    lines = (root / SUITE).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


# --- against a running stack ------------------------------------------------------------------------------------


def test_passes_against_the_compose_stack_with_evidence(project_copy: Path, compose: Any) -> None:
    result = run(project_copy, compose)
    assert result.status is Status.PASSED, result.reason + "\n" + "\n".join(map(str, result.findings))

    seen = outcomes(result)
    assert sorted(seen) == sorted(SCENARIOS)
    grafana_runs = "grafana" in compose.enabled
    for name, outcome in seen.items():
        # Only the Grafana scenario may skip (no Grafana here), and only because the spec's waiver accepts it.
        allowed = {"passed"} if grafana_runs or name != "test_grafana_datasource_prometheus" else {"skipped"}
        assert outcome in allowed, (name, outcome)
    summary = result.data["summary"]
    assert summary["failed"] == summary["errors"] == summary["skipped_unwaived"] == 0
    assert summary["scenarios_expected"] == 8 and summary["scenarios_missing"] == []
    if not grafana_runs:
        (waived,) = result.data["waived"]
        assert waived["id"] == GRAFANA and waived["outcome"] == "skipped"
        assert "No Grafana can run" in waived["waiver"]["justification"]
        assert waived["waiver"]["approver"].lower().startswith("sealgate maintainers")
        assert any("waived, not passed" in f.summary and f.severity is Severity.WARNING for f in result.findings)

    # The stack the suite was pointed at is this one: containers, not whatever the caller's environment said.
    containers = json.loads(result.data["stack_env"]["SEALGATE_STACK_CONTAINERS"])
    assert containers["prometheus"]["id"] == compose.services()["prometheus"].container_id

    # Evidence: the JUnit XML is attached with its digest and holds the 8 test cases; the suite is a subject.
    evidence = json.loads((project_copy / "artifacts/f9_10/eixo_6.json").read_text())
    attachments = {a["name"]: a["digest"]["sha256"] for a in evidence["predicate"]["attachments"]}
    assert {"eixo_6/junit.xml", "eixo_6/pytest.log"} <= set(attachments)
    junit = ET.parse(project_copy / "artifacts/f9_10/eixo_6/junit.xml")
    assert len(junit.getroot().findall(".//testcase")) == 8
    subjects = {s["name"] for s in evidence["subject"]}
    assert {SUITE, "stack/tests/conftest.py", "sprint/F9.10.waivers.yaml"} <= subjects
    commands = [c for c in evidence["predicate"]["commands"] if "pytest" in c["argv"]]
    assert commands and commands[0]["exit_code"] == 0


def test_local_backend_fails_the_two_containerized_scenarios(project_copy: Path, local_stack: Any) -> None:
    result = run(project_copy, local_stack)
    assert result.status is Status.FAILED
    failed = {name for name, outcome in outcomes(result).items() if outcome == "failed"}
    assert failed == {"test_prometheus_containerized", "test_alertmanager_containerized"}
    assert result.reason.startswith("5/8 tests passed; 2 failed: test_prometheus_containerized, test_alertmanager")
    assert all("is not containerized: the stack runs on backend 'local'" in e for e in errors(result))
    assert all(e.startswith(f"{SUITE}:") for e in errors(result))


def test_the_seeds_run_2_failed_4_skipped_cannot_pass(project_copy: Path, local_stack: Any) -> None:
    # The seed's own EIXO 6 result, reproduced: containers not running (local stack) and four scenarios skipped.
    for scenario in ("test_prometheus_healthy", "test_alertmanager_ready", "test_alert_rules_loaded"):
        inject_skip(project_copy, scenario)
    (project_copy / "sprint/F9.10.waivers.yaml").unlink()  # and the Grafana skip unwaived
    commit_all(project_copy, "the seed's run")
    result = run(project_copy, local_stack)
    assert result.status is Status.FAILED
    summary = result.data["summary"]
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (2, 2, 4)
    assert result.reason == (
        "2/8 tests passed; 2 failed: test_prometheus_containerized, test_alertmanager_containerized; "
        "4 tests skipped without a waiver: test_grafana_datasource_prometheus, test_prometheus_healthy, "
        "test_alertmanager_ready, test_alert_rules_loaded (a skip is not a pass)"
    )


# --- broken copies: each way a suite could be sealed while not passing --------------------------------------------


def test_a_failing_scenario_fails_the_check_at_its_file_and_line(project_copy: Path, compose: Any) -> None:
    # A real regression the suite must catch: the backup script is no longer fail-closed.
    edit(project_copy, "stack/scripts/backup_observability.sh", "set -euo pipefail", "set -eu")
    commit_all(project_copy, "backup: drop pipefail")
    result = run(project_copy, compose)
    assert result.status is Status.FAILED
    assert "1 failed: test_backup_script_exists" in result.reason
    (finding,) = errors(result)
    assert finding.startswith(f"{SUITE}:{line_of(project_copy, 'is not fail-closed')}: {MODULE}::test_backup_script_")
    assert "not fail-closed: no `set -euo pipefail` line" in finding


def test_a_skip_without_a_waiver_fails_the_check(project_copy: Path, compose: Any) -> None:
    inject_skip(project_copy, "test_alert_rules_loaded")
    commit_all(project_copy, "a scenario that skips")
    result = run(project_copy, compose)
    assert result.status is Status.FAILED
    assert "1 test skipped without a waiver: test_alert_rules_loaded" in result.reason
    assert outcomes(result)["test_alert_rules_loaded"] == "skipped"
    assert result.data["summary"]["skipped_unwaived"] == 1
    (finding,) = errors(result)
    assert f"{MODULE}::test_alert_rules_loaded skipped without a waiver: injected" in finding


def test_without_the_grafana_waiver_its_skip_fails_the_check(project_copy: Path, compose: Any) -> None:
    if "grafana" in compose.enabled:
        pytest.skip("a Grafana runs here: the Grafana scenario runs in full and needs no waiver")
    (project_copy / "sprint/F9.10.waivers.yaml").unlink()
    commit_all(project_copy, "no waivers")
    result = run(project_copy, compose)
    assert result.status is Status.FAILED
    assert "1 test skipped without a waiver: test_grafana_datasource_prometheus" in result.reason


def test_a_waived_skip_passes_recorded_as_waived(project_copy: Path, compose: Any) -> None:
    inject_skip(project_copy, "test_alert_rules_loaded")
    with (project_copy / "sprint/F9.10.waivers.yaml").open("a") as waivers:
        waivers.write(
            f'  - test: "{MODULE}::test_alert_rules_loaded"\n'
            "    justification: Rules are proven live by EIXO 2 on this machine kind; test-only waiver.\n"
            "    approver: sealgate maintainers\n"
            "    expires: 2027-01-31\n"
        )
    commit_all(project_copy, "waive a skip")
    assert open_spec(project_copy, "F9.10").waiver_for("test", f"{MODULE}::test_alert_rules_loaded")
    result = run(project_copy, compose)
    assert result.status is Status.PASSED, result.reason
    waived = {w["id"]: w for w in result.data["waived"]}
    assert f"{MODULE}::test_alert_rules_loaded" in waived
    assert waived[f"{MODULE}::test_alert_rules_loaded"]["waiver"]["justification"].startswith("Rules are proven")
    assert outcomes(result)["test_alert_rules_loaded"] == "skipped"  # waived is recorded as what it was: a skip
    assert result.data["summary"]["skipped_unwaived"] == 0


def test_a_deleted_scenario_fails_the_check(project_copy: Path, compose: Any) -> None:
    # Renaming the function removes the scenario as surely as deleting it, and keeps the file importable.
    edit(project_copy, SUITE, "def test_prometheus_healthy(", "def prometheus_healthy_disabled(")
    commit_all(project_copy, "drop a scenario")
    result = run(project_copy, compose)
    assert result.status is Status.FAILED
    assert "1 of 8 scenarios missing: test_prometheus_healthy" in result.reason
    assert any(e.startswith(f"{SUITE}: scenario test_prometheus_healthy did not run") for e in errors(result))


def test_a_suite_that_does_not_import_fails_with_errors(project_copy: Path, compose: Any) -> None:
    edit(project_copy, SUITE, "import requests\n", "import requests\nimport no_such_module_f9_10\n")
    commit_all(project_copy, "broken import")
    result = run(project_copy, compose)
    assert result.status is Status.FAILED
    assert "1 errored" in result.reason and "8 of 8 scenarios missing" in result.reason
    assert any("no_such_module_f9_10" in e for e in errors(result))


# --- the suite on its own -------------------------------------------------------------------------------------------


def test_the_suite_run_directly_without_a_stack_skips_everything_saying_why(tmp_path: Path) -> None:
    need_tool("git")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_STACK_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", SUITE, "-c", "stack/tests/pytest.ini", "--rootdir", ".",
         "-p", "no:cacheprovider", "-q", "-rs", f"--junitxml={tmp_path / 'j.xml'}"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 skipped" in done.stdout
    assert "SEALGATE_STACK_BACKEND is not set" in done.stdout


def test_the_projects_own_test_run_does_not_collect_the_stack_suite(pytestconfig: pytest.Config) -> None:
    # `nox -s tests` runs plain `pytest`: it collects testpaths only; the stack suite needs a stack and runs in EIXO 6.
    roots = [pytestconfig.rootpath / p for p in pytestconfig.getini("testpaths")]
    assert roots
    suite = (PROJECT_ROOT / SUITE).resolve()
    assert not any(suite.is_relative_to(root.resolve()) for root in roots), roots


def test_the_spec_names_the_suite_and_its_8_scenarios() -> None:
    spec = open_spec(PROJECT_ROOT, "F9.10")
    (ref,) = [r for r in spec.stages[6].checks if r.id == CHECK]
    assert ref.definition is not None
    assert ref.params["suite"] == SUITE and ref.params["scenarios"] == SCENARIOS
    waiver = spec.waiver_for("test", GRAFANA)
    assert waiver is not None and waiver.approver and len(waiver.justification) > 40


# --- what the suite is told: the same variables for any stack -------------------------------------------------------


def test_the_suite_gets_an_address_for_every_described_service_and_nothing_grafana_specific(
    local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sealgate.checks.tests import stack_environment, url_variable

    monkeypatch.setenv("SEALGATE_STACK_LEFTOVER_URL", "http://127.0.0.1:9")  # from someone else's stack
    env = stack_environment(local_stack)
    described = list(local_stack.description.services)
    assert {url_variable(s) for s in described} <= set(env)
    assert env["SEALGATE_STACK_CONSOLE_LOG_URL"] == local_stack.url("console-log")  # `-` becomes `_`
    assert env["SEALGATE_STACK_PROMETHEUS_URL"] == local_stack.url("prometheus")
    unavailable = json.loads(env["SEALGATE_STACK_UNAVAILABLE"])
    assert unavailable["grafana"].startswith("no Grafana binary on this machine")
    assert env["SEALGATE_STACK_GRAFANA_URL"] == ""  # set, blank: an inherited value cannot point elsewhere
    assert env["SEALGATE_STACK_LEFTOVER_URL"] == ""
    assert env["SEALGATE_STACK_BACKEND"] == "local"
    assert sorted(json.loads(env["SEALGATE_STACK_SERVICES"])) == sorted(described)
    assert [k for k in env if "GRAFANA" in k] == ["SEALGATE_STACK_GRAFANA_URL"]


def test_a_suite_that_is_not_a_python_file_is_a_spec_error(project_copy: Path) -> None:
    spec = project_copy / "sprint/F9.10.yaml"
    spec.write_text(spec.read_text().replace(f"suite: {SUITE}", "suite: stack/tests/"))
    commit_all(project_copy, "a directory as the suite")
    with pytest.raises(InputError) as raised:
        open_spec(project_copy, "F9.10")
    (problem,) = raised.value.problems
    assert str(problem).startswith("sprint/F9.10.yaml:")
    assert "$.stages[6].checks[0].with.suite: 'stack/tests/' does not match" in str(problem)

"""The sprint's own stack test suite, run against the running stack, judged from its JUnit XML.

The seed sealed "8/8" while its own pytest run said 2 failed, 4 skipped. Here the suite's result is read, not
claimed: every test case of the JUnit XML is recorded with its outcome, and

- any failure or error fails the check (a finding per test, at the file:line pytest reported);
- any skip keeps it from passing, unless that very test id is waived (`test:` waiver with justification, approver,
  expiry) — a waived skip is recorded as waived, never as passed;
- every scenario the spec names must have run: deleting a test cannot shrink what "8 scenarios" means.

The suite is the governed project's code, not sealgate's: it runs in its own pytest configuration (a `pytest.ini`
next to it), never sealgate's, and learns where the stack is from these variables, the same for any stack:

  SEALGATE_STACK_BACKEND            the backend's name (compose, local, ...)
  SEALGATE_STACK_<SERVICE>_URL      the address of every described service that runs and has one (the service's name
                                    upper-cased, `-` as `_`: node-exporter -> SEALGATE_STACK_NODE_EXPORTER_URL)
  SEALGATE_STACK_UNAVAILABLE        JSON {service: why it has no URL} for every described service that has none
  SEALGATE_STACK_CONTAINERS         JSON {service: {"id", "image"}} of a containerized stack's running containers
  SEALGATE_STACK_SERVICES           JSON {service: {"running", "healthy", "container_id", "image", "pid"}}

Every one of them is set (blank when it does not apply), and any other inherited SEALGATE_STACK_*_URL is blanked,
so nothing from the caller's environment can describe a stack that is not the one under test.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealgate.api.context import Context
from sealgate.api.params import REPO_PATH
from sealgate.api.registry import check
from sealgate.backends.base import StackBackend
from sealgate.backends.errors import StackError
from sealgate.kernel.errors import SealgateError
from sealgate.kernel.fsutil import pretty_json, sha256_file
from sealgate.kernel.gitrepo import Repo
from sealgate.kernel.redact import redact_value
from sealgate.model.results import Severity

SUITE_TIMEOUT_S = 300.0  # a suite takes seconds; a hung HTTP call or container inspect must not hang the stage
MESSAGE_CHARS = 300  # of a failure or skip message kept per test in evidence (the full text is in the JUnit XML)
# The variables every run sets (blank when not applicable), besides one SEALGATE_STACK_<SERVICE>_URL per service.
STACK_VARS = (
    "SEALGATE_STACK_BACKEND",
    "SEALGATE_STACK_UNAVAILABLE",
    "SEALGATE_STACK_CONTAINERS",
    "SEALGATE_STACK_SERVICES",
)
_URL_VARIABLE = re.compile(r"^SEALGATE_STACK_\w+_URL$")
# The suite's outcome as an in-toto Test Result too, attached to the stage's evidence (so it is in the manifest and
# travels in the seal) for tools that read in-toto predicates rather than sealgate's own.
TEST_RESULT_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
TEST_RESULT_ATTACHMENT = "test-result.intoto.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"

PARAMS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["suite", "scenarios"],
    "properties": {
        "suite": {
            **REPO_PATH,
            "pattern": r"^[^/].*\.py$",
            "description": "the suite file, repository-relative",
            "examples": ["tests/test_stack.py"],
        },
        "scenarios": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": r"^test_\w+$", "examples": ["test_service_answers"]},
            "description": "test functions that must run (the seed's scenarios); one missing fails the check",
        },
        "inputs": {
            "type": "array",
            "items": {"type": "string"},
            "description": "repository files the suite reads; judged (their digests go into evidence) when present",
        },
        "timeout_s": {"type": "number", "exclusiveMinimum": 0},
    },
}


@dataclass
class JUnitCase:
    id: str  # JUnit classname::name — what a `test:` waiver names
    name: str
    outcome: str  # passed | failed | error | skipped
    duration_s: float
    message: str = ""
    file: str | None = None
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "outcome": self.outcome,
            "duration_s": round(self.duration_s, 3),
        }
        if self.message:
            data["message"] = self.message
        if self.file:
            data["location"] = f"{self.file}:{self.line}" if self.line else self.file
        return data


# --- the stack, described for the suite -----------------------------------------------------------------------------


def url_variable(service: str) -> str:
    """SEALGATE_STACK_<SERVICE>_URL: the service's name upper-cased, every character other than a letter or digit
    as `_` (node-exporter -> SEALGATE_STACK_NODE_EXPORTER_URL)."""
    return f"SEALGATE_STACK_{re.sub(r'[^A-Za-z0-9]', '_', service).upper()}_URL"


def stack_urls(stack: StackBackend) -> tuple[dict[str, str], dict[str, str]]:
    """(service -> URL, service -> why it has none) for every service of the stack description."""
    urls, unavailable = {}, {}
    for service in stack.description.services:
        try:
            urls[service] = stack.url(service)
        except StackError as exc:  # ServiceNotRunning included: the suite decides what a missing service means
            unavailable[service] = getattr(exc, "reason", None) or str(exc)
    return urls, unavailable


def stack_environment(stack: StackBackend) -> dict[str, str]:
    """SEALGATE_STACK_* for the running stack: addresses, containers, processes (see this module's docstring)."""
    urls, unavailable = stack_urls(stack)
    inherited = {name: "" for name in os.environ if _URL_VARIABLE.match(name)}
    env = {**inherited, **dict.fromkeys(STACK_VARS, "")}
    env.update({url_variable(service): "" for service in stack.description.services})
    env["SEALGATE_STACK_BACKEND"] = stack.name
    if unavailable:
        env["SEALGATE_STACK_UNAVAILABLE"] = json.dumps(unavailable, sort_keys=True)
    for service, url in urls.items():
        env[url_variable(service)] = url
    services = stack.services()
    env["SEALGATE_STACK_SERVICES"] = json.dumps(
        {
            name: {
                "running": state.running,
                "healthy": state.healthy,
                "container_id": state.container_id,
                "image": state.image,
                "pid": state.pid,
            }
            for name, state in sorted(services.items())
        },
        sort_keys=True,
    )
    if stack.containerized:
        containers = {
            name: {"id": state.container_id, "image": state.image}
            for name, state in sorted(services.items())
            if state.running and state.container_id
        }
        env["SEALGATE_STACK_CONTAINERS"] = json.dumps(containers, sort_keys=True)
    return env


# --- reading the suite and its JUnit XML ------------------------------------------------------------------------------


def defined_tests(path: Path) -> dict[str, int]:
    """Test functions the suite file defines (module level or in Test* classes), with their line numbers."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError:
        return {}  # pytest reports the collection error, with its line, in the JUnit XML
    found: dict[str, int] = {}
    for node in tree.body:
        bodies = [node] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else []
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            bodies = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for func in bodies:
            if func.name.startswith("test"):
                found.setdefault(func.name, func.lineno)
    return found


def _location(text: str, suite: str) -> tuple[str | None, int | None]:
    """The last `path:line:` of the suite in pytest's report text (where the assertion or the skip happened)."""
    name = re.escape(Path(suite).name)
    matches = re.findall(rf"(?m)^(\S*{name}):(\d+):", text)
    if not matches:
        return None, None
    _path, line = matches[-1]
    return suite, int(line)


def parse_junit(xml_text: str, suite: str, lines: dict[str, int]) -> list[JUnitCase]:
    """One JUnitCase per JUnit <testcase>; error beats failure beats skipped beats passed."""
    root = ET.fromstring(xml_text)
    cases = []
    for element in root.iter("testcase"):
        classname, name = element.get("classname", ""), element.get("name", "")
        test_id = f"{classname}::{name}" if classname else name
        outcome, detail = "passed", None
        for kind, label in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
            found = element.find(kind)
            if found is not None:
                outcome, detail = label, found
                break
        message, file, line = "", None, None
        if detail is not None:
            # The message's first line is the exception ("AssertionError: <the assert's own message>"); the rest
            # is pytest's introspection, kept in the attached XML.
            lines_of = (detail.get("message") or detail.text or "").strip().splitlines()
            message = " ".join(lines_of[0].split()) if lines_of else ""
            # Errors (collection, fixtures) carry a generic message ("collection failure"); the cause is pytest's
            # last `E   ` line of the report.
            raised = [ln[1:].strip() for ln in (detail.text or "").splitlines() if ln.startswith("E ")]
            if outcome == "error" and raised and raised[-1] not in message:
                message = f"{message}: {raised[-1]}" if message else raised[-1]
            message = message[:MESSAGE_CHARS]
            file, line = _location(detail.text or "", suite)
        if line is None:
            base = name.split("[", 1)[0]
            file, line = (suite, lines[base]) if base in lines else (suite, None)
        cases.append(JUnitCase(test_id, name, outcome, float(element.get("time") or 0), message, file, line))
    return cases


def _scenario_cases(scenario: str, cases: list[JUnitCase]) -> list[JUnitCase]:
    return [c for c in cases if c.name == scenario or c.name.startswith(f"{scenario}[")]


# --- the check -------------------------------------------------------------------------------------------------------


@check(
    "tests/stack-suite",
    title="The sprint's test suite against the live stack (JUnit; a skip passes only with a waiver)",
    titles={"pt-BR": "Suíte de testes da sprint contra a stack viva (JUnit; skip só com waiver)"},
    needs_stack=True,
    params=PARAMS,
)
def stack_suite(ctx: Context) -> None:
    suite: str = ctx.params["suite"]
    scenarios: list[str] = list(ctx.params["scenarios"])
    suite_path = ctx.judge(suite)
    configuration = [suite]  # what the Test Result names as the run's configuration: every file judged here
    # What decides the suite's outcome besides the suite file itself: its fixtures, its config, what it reads.
    for sibling in ("conftest.py", "pytest.ini"):
        if (suite_path.parent / sibling).is_file():
            configuration.append(_relative(ctx, ctx.judge(suite_path.parent / sibling)))
    for relative in ctx.params.get("inputs", []):
        if ctx.path(relative).is_file():
            ctx.judge(relative)  # a missing input is the suite's to report, as a failing test
            configuration.append(relative)

    lines = defined_tests(suite_path)
    ctx.record("suite", suite)
    ctx.record("scenarios_expected", len(scenarios))

    stack = ctx.stack
    env = stack_environment(stack)
    ctx.record("stack_env", {k: v for k, v in env.items() if k != "SEALGATE_STACK_SERVICES" and v})
    ctx.record("services", json.loads(env["SEALGATE_STACK_SERVICES"]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ next to the governed suite

    junit_path = ctx.run_dir / "junit.xml"
    junit_path.unlink(missing_ok=True)  # never read a previous run's XML
    config = suite_path.parent / "pytest.ini"
    # Paths relative to the repository (the command's cwd), so the argv in evidence names no machine's directories.
    argv = [
        sys.executable, "-m", "pytest", suite,
        "-c", _relative(ctx, config) if config.is_file() else os.devnull,  # the suite's own config, never sealgate's
        "--rootdir", ".",  # test ids (JUnit classname) are repository-relative: stable for waivers
        "-p", "no:cacheprovider",
        f"--junitxml={_relative(ctx, junit_path)}",
        "-o", "junit_suite_name=stack-suite",
        "-rA", "-q",
    ]  # fmt: skip
    result = ctx.run(argv, timeout=float(ctx.params.get("timeout_s", SUITE_TIMEOUT_S)), env=env)
    ctx.attach("pytest.log", result.output)
    ctx.record("pytest_exit_code", result.exit_code)
    ctx.tool_version("pytest", importlib.metadata.version("pytest"))  # the subprocess runs this interpreter's pytest
    if not junit_path.is_file():
        tail = " | ".join(result.output.strip().splitlines()[-3:])
        ctx.error(f"pytest wrote no JUnit XML (exit code {result.exit_code}): {tail}")
    xml_text = junit_path.read_text()
    ctx.attach("junit.xml", xml_text)
    try:
        cases = parse_junit(xml_text, suite, lines)
    except ET.ParseError as exc:
        ctx.error(f"pytest's JUnit XML is not valid XML: {exc}")

    _judge(ctx, suite, scenarios, lines, cases, result.exit_code, configuration)


def in_toto_test_result(
    cases: list[JUnitCase],
    *,
    verdict: str,
    commit: str | None,
    configuration: list[tuple[str, str]],
    waived_by: dict[str, str],
    missing: list[str],
    suite: str,
) -> dict[str, Any]:
    """The suite's run as an in-toto Statement with the Test Result predicate (test-result/v0.1).

    Tests are named by their JUnit id (`classname::name`, what a `test:` waiver names). The predicate has no list
    for skips, and a skip is no pass: each skipped test is in `warnedTests` with its reason and whether a waiver
    accepts it ("<id> — skipped: <reason>; waived by <waiver>"). An errored test is a failed one; a scenario the
    spec expects that did not run is in `failedTests` too, saying so. The subject is the commit whose stack and
    suite were tested (the spec's own example); with no commit to name, the configuration files stand for it.
    """
    described = [{"name": name, "digest": {"sha256": digest}} for name, digest in configuration]
    warned = []
    for case in (c for c in cases if c.outcome == "skipped"):
        accepted = f"waived by {waived_by[case.id]}" if case.id in waived_by else "not waived: a skip is not a pass"
        warned.append(f"{case.id} — skipped: {case.message or 'no reason given'}; {accepted}")
    predicate = {
        "result": verdict,
        "configuration": described,
        "passedTests": [c.id for c in cases if c.outcome == "passed"],
        "warnedTests": warned,
        "failedTests": [c.id for c in cases if c.outcome in ("failed", "error")]
        + [f"{scenario} — did not run: no such test in {suite}" for scenario in missing],
    }
    subject = [{"digest": {"gitCommit": commit}}] if commit else described
    return {"_type": STATEMENT_TYPE, "subject": subject, "predicateType": TEST_RESULT_TYPE, "predicate": predicate}


def _head(ctx: Context) -> str | None:
    """The commit under test (None where the repository cannot say: the configuration then stands for it)."""
    try:
        return Repo(ctx.root).head()
    except SealgateError:
        return None


def _relative(ctx: Context, path: Path) -> str:
    try:
        return path.resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:  # a run directory outside the repository
        return str(path)


def _judge(
    ctx: Context,
    suite: str,
    scenarios: list[str],
    lines: dict[str, int],
    cases: list[JUnitCase],
    exit_code: int,
    configuration: list[str],
) -> None:
    failed = [c for c in cases if c.outcome == "failed"]
    errors = [c for c in cases if c.outcome == "error"]
    skipped = [c for c in cases if c.outcome == "skipped"]
    waived, unwaived = [], []
    waived_by: dict[str, str] = {}
    for case in skipped:
        waiver = ctx.apply_waiver("test", case.id)
        if waiver is None:
            unwaived.append(case)
            continue
        waived.append({**case.to_json(), "waiver": waiver.to_json()})
        waived_by[case.id] = waiver.source
        ctx.finding(
            f"{case.id} skipped ({case.message}) — waived, not passed: {waiver.justification} "
            f"(approver: {waiver.approver}, expires {waiver.expires.isoformat()}, {waiver.source})",
            file=case.file,
            line=case.line,
            severity=Severity.WARNING,
        )
    missing = [s for s in scenarios if not _scenario_cases(s, cases)]

    ctx.record("tests", [c.to_json() | {"waived": any(w["id"] == c.id for w in waived)} for c in cases])
    ctx.record(
        "summary",
        {
            "total": len(cases),
            "passed": sum(c.outcome == "passed" for c in cases),
            "failed": len(failed),
            "errors": len(errors),
            "skipped": len(skipped),
            "waived": len(waived),
            "skipped_unwaived": len(unwaived),
            "scenarios_expected": len(scenarios),
            "scenarios_missing": missing,
        },
    )
    ctx.record("waived", waived)

    ran = {c.id for c in cases}
    for waiver in (w for w in ctx.spec.waivers if w.target_kind == "test"):
        if waiver.target not in ran:
            ctx.finding(f"waiver for test {waiver.target!r} names no test of this run", severity=Severity.WARNING)
        elif waiver.target not in {c.id for c in skipped}:
            ctx.finding(
                f"waiver for test {waiver.target!r} was not needed: the test did not skip", severity=Severity.WARNING
            )

    for case in failed + errors:
        what = "failed" if case.outcome == "failed" else "errored"
        ctx.finding(f"{case.id} {what}: {case.message}", file=case.file, line=case.line)
    for case in unwaived:
        ctx.finding(f"{case.id} skipped without a waiver: {case.message}", file=case.file, line=case.line)
    for scenario in missing:
        ctx.finding(
            f"scenario {scenario} did not run: no such test in {suite} (the spec expects {len(scenarios)} scenarios)",
            file=suite,
            line=lines.get(scenario),
        )

    problems = []
    if failed:
        problems.append(f"{len(failed)} failed: {', '.join(c.name for c in failed)}")
    if errors:
        problems.append(f"{len(errors)} errored: {', '.join(c.name for c in errors)}")
    if unwaived:
        problems.append(
            f"{len(unwaived)} test{'s' if len(unwaived) > 1 else ''} skipped without a waiver: "
            f"{', '.join(c.name for c in unwaived)} "
            "(a skip is not a pass)"
        )
    if missing:
        problems.append(f"{len(missing)} of {len(scenarios)} scenarios missing: {', '.join(missing)}")
    # Attached before the verdict is raised, so a failing run has its Test Result too. PASSED only when this check
    # passes; a pass that rests on waived skips is WARNED, never PASSED.
    verdict = "FAILED" if problems or exit_code != 0 else "WARNED" if waived else "PASSED"
    statement = in_toto_test_result(
        cases,
        verdict=verdict,
        commit=_head(ctx),
        configuration=[(name, sha256_file(ctx.path(name))) for name in configuration],
        waived_by=waived_by,
        missing=missing,
        suite=suite,
    )
    # Redacted as data, before it is JSON: redacting the text would cut through its quoting.
    ctx.attach(TEST_RESULT_ATTACHMENT, pretty_json(redact_value(statement)))
    if problems:
        passed = sum(c.outcome == "passed" for c in cases)
        ctx.fail(f"{passed}/{len(cases)} tests passed; " + "; ".join(problems))
    if exit_code != 0:
        # Everything in the XML passed, yet pytest says something went wrong (internal, usage or session error).
        ctx.error(f"pytest exited {exit_code} although every recorded test passed: see pytest.log")

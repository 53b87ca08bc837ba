"""EIXO 4 — env_config/*: the breaker's configuration proven by starting the real API, on the reference project
and on broken copies (a breaker that ignores its variable, a bad value accepted, an undocumented variable); the same
library checks on another project's service with other names (tests/checks/test_env_config_generic.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from checkrun import explain, run_checks
from conftest import PROJECT_ROOT, need_docker

from sealgate.model.results import Status

OFFLINE = [
    "env_config/breaker-defaults",
    "env_config/breaker-overrides",
    "env_config/breaker-behaviour",
    "env_config/bad-values",
    "env_config/env-example",
]
SINGLETON = "stack/app/llm/circuit_breaker_singleton.py"


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert text.count(old) == 1, f"{relative}: anchor {old!r} not found exactly once"
    path.write_text(text.replace(old, new))


def test_reference_breaker_passes_every_offline_check() -> None:
    results = run_checks(PROJECT_ROOT, 4, OFFLINE)
    for check_id in OFFLINE:
        assert results[check_id].status is Status.PASSED, f"{check_id}: {explain(results[check_id])}"
    behaviour = results["env_config/breaker-behaviour"].data
    states = [step["settings"]["state"] for step in behaviour["timeline"] if "settings" in step]
    # closed after 1 failure, open after 2 (VERITTA_CB_THRESHOLD=2), half_open, open again, half_open, closed.
    assert states == ["closed", "open", "open", "half_open", "open", "half_open", "closed"], behaviour["timeline"]
    assert 1.0 <= behaviour["half_open_after_s"] < 3.0
    outcomes = results["env_config/bad-values"].data["outcomes"]
    assert len(outcomes) == 10 and all(o["exit_code"] == 2 and not o["started"] for o in outcomes), outcomes
    found = results["env_config/env-example"].data["variables_in_code"]
    # F9.10's pattern (VERITTA_*) also finds the rate limiter's variables F9.11 added: documented, so it passes.
    assert set(found) == {"VERITTA_CB_THRESHOLD", "VERITTA_CB_TIMEOUT", "VERITTA_RL_LIMIT", "VERITTA_RL_WINDOW"}, found


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        # The configuration is read (and reported by /admin/breaker) but the breaker is built with constants.
        (
            "circuit_breaker = CircuitBreaker(CIRCUIT_BREAKER_THRESHOLD, CIRCUIT_BREAKER_TIMEOUT)",
            "circuit_breaker = CircuitBreaker(3, CIRCUIT_BREAKER_TIMEOUT)",
            "step 'call 2 (provider failing)': state is 'closed', expected 'open' (with VERITTA_CB_THRESHOLD=2 "
            "VERITTA_CB_TIMEOUT=1)",
        ),
        (
            "circuit_breaker = CircuitBreaker(CIRCUIT_BREAKER_THRESHOLD, CIRCUIT_BREAKER_TIMEOUT)",
            "circuit_breaker = CircuitBreaker(CIRCUIT_BREAKER_THRESHOLD, 60)",
            "step 'half_open': state still 'open'",
        ),
    ],
    ids=["threshold-ignored", "timeout-ignored"],
)
def test_breaker_that_ignores_its_variable_fails_behaviour(project_copy: Path, old: str, new: str, why: str) -> None:
    edit(project_copy, SINGLETON, old, new)
    result = run_checks(project_copy, 4, ["env_config/breaker-behaviour"])["env_config/breaker-behaviour"]
    assert result.status is Status.FAILED, explain(result)
    assert why in result.reason


def test_variable_read_under_another_name_fails_overrides(project_copy: Path) -> None:
    edit(project_copy, SINGLETON, 'os.environ, "VERITTA_CB_TIMEOUT"', 'os.environ, "VERITTA_CB_TIMEOUT_S"')
    results = run_checks(project_copy, 4, ["env_config/breaker-overrides", "env_config/env-example"])
    overrides = results["env_config/breaker-overrides"]
    assert overrides.status is Status.FAILED, explain(overrides)
    assert (
        "with VERITTA_CB_THRESHOLD=5 VERITTA_CB_TIMEOUT=7: api reports timeout_s = 60, expected 7 (VERITTA_CB_TIMEOUT)"
        in overrides.reason
    )
    # The renamed variable is read by the code but not documented: the scan finds it where it is spelled.
    example = results["env_config/env-example"]
    assert example.status is Status.FAILED, explain(example)
    assert any(
        "VERITTA_CB_TIMEOUT_S is read by the code but not documented" in f.summary and f.location.file == SINGLETON
        for f in example.findings
    ), explain(example)


def test_bad_value_silently_defaulted_fails_bad_values(project_copy: Path) -> None:
    edit(
        project_copy,
        "stack/app/llm/breaker_config.py",
        "    if not _POSITIVE_INT.fullmatch(value) or int(value) < 1:\n",
        "    if not _POSITIVE_INT.fullmatch(value) or int(value) < 1:\n        return default, 'default'\n",
    )
    result = run_checks(project_copy, 4, ["env_config/bad-values"])["env_config/bad-values"]
    assert result.status is Status.FAILED, explain(result)
    summaries = [f.summary for f in result.findings]
    assert "api started with VERITTA_CB_THRESHOLD='abc' (it must refuse to start)" in summaries
    assert "api started with VERITTA_CB_TIMEOUT='' (it must refuse to start)" in summaries


def test_undocumented_variable_fails_env_example_with_its_location(project_copy: Path) -> None:
    client = project_copy / "stack/app/llm/client.py"
    text = client.read_text()
    client.write_text(
        text.replace("import time\n", 'import os\nimport time\n\nRETRIES = os.getenv("VERITTA_NEW")\n', 1)
    )
    line = client.read_text().splitlines().index('RETRIES = os.getenv("VERITTA_NEW")') + 1
    result = run_checks(project_copy, 4, ["env_config/env-example"])["env_config/env-example"]
    assert result.status is Status.FAILED, explain(result)
    finding = next(f for f in result.findings if "VERITTA_NEW" in f.summary)
    assert finding.summary == "VERITTA_NEW is read by the code but not documented in stack/.env.example"
    assert (finding.location.file, finding.location.line) == ("stack/app/llm/client.py", line)


def test_documented_value_the_service_refuses_fails_env_example(project_copy: Path) -> None:
    path = project_copy / "stack/.env.example"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("VERITTA_CB_THRESHOLD="))
    lines[index] = "VERITTA_CB_THRESHOLD=three"
    path.write_text("\n".join(lines) + "\n")
    result = run_checks(project_copy, 4, ["env_config/env-example"])["env_config/env-example"]
    assert result.status is Status.FAILED, explain(result)
    assert result.findings[0].location.line == index + 1
    assert "VERITTA_CB_THRESHOLD='three' is invalid" in result.reason


@pytest.mark.stack
def test_live_settings_equal_the_running_apis_environment(compose_stack: Any) -> None:
    need_docker()
    result = run_checks(PROJECT_ROOT, 4, ["env_config/live-settings"], stack=compose_stack)["env_config/live-settings"]
    assert result.status is Status.PASSED, explain(result)
    breaker = result.data["settings"]
    environment = result.data["environment"]
    expected = int(environment.get("VERITTA_CB_THRESHOLD") or 3)
    assert breaker["threshold"] == expected, result.data

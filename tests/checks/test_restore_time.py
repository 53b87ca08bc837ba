"""Restore time as a judged figure: both restore drills (`backup/restore-drill`, `backup/offsite-restore-drill`) time
each volume's restore to a usable state (`restore_times`), and a spec's `rto_s` per volume fails a restore slower than
it, naming the volume and both numbers at the RTO's line of the spec.

On the running local stack (the session's `local_stack`), with a project copy whose spec states the RTOs: one below
any real restore (a millisecond) fails; one far above it (an hour) passes. Bad RTOs are refused before anything runs:
a value that is not a number when the spec loads (exit 2, file:line), a volume the drill does not restore when the
check starts (errored, at the parameter's line)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from checkrun import explain, run_checks
from conftest import commit_all, need_tool

from sealgate.kernel.errors import InputError
from sealgate.model.results import Severity, Status
from sealgate.run.plan import open_spec

STATIC = "backup/script-static"
DRILLS = {
    # check id -> (sprint, stage, spec file)
    "backup/restore-drill": ("F9.10", 3, "sprint/F9.10.yaml"),
    "backup/offsite-restore-drill": ("F9.11", 4, "sprint/F9.11.yaml"),
}


def state_rto(root: Path, check_id: str, rto: str) -> int:
    """Add `rto_s: <rto>` to the check's `with:` in its spec (after its `seed_rows:`); returns the line it is on."""
    spec = root / DRILLS[check_id][2]
    lines = spec.read_text().splitlines(keepends=True)
    entry = next(i for i, line in enumerate(lines) if line.strip() == f"- id: {check_id}")
    seed = next(i for i in range(entry, len(lines)) if lines[i].strip().startswith("seed_rows:"))
    indent = lines[seed][: len(lines[seed]) - len(lines[seed].lstrip())]
    lines.insert(seed + 1, f"{indent}rto_s: {rto}\n")
    spec.write_text("".join(lines))
    commit_all(root, f"{check_id}: rto_s {rto}")
    return seed + 2


def drill(root: Path, stack: Any, check_id: str) -> Any:
    sprint, stage, _spec = DRILLS[check_id]
    return run_checks(root, stage, [STATIC, check_id], stack=stack, sprint=sprint)[check_id]


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("pg_dumpall", "prometheus")


@pytest.mark.stack
def test_a_restore_over_its_rto_fails_naming_the_volume_and_both_numbers(project_copy: Path, local_stack: Any) -> None:
    line = state_rto(project_copy, "backup/restore-drill", "{prometheus_data: 0.001, postgres_data: 3600}")
    result = drill(project_copy, local_stack, "backup/restore-drill")
    assert result.status is Status.FAILED, explain(result)
    times = result.data["restore_times"]
    prometheus = times["prometheus_data"]
    assert prometheus["rto_s"] == 0.001 and prometheus["seconds"] > 0.001, times
    assert times["postgres_data"]["rto_s"] == 3600 and 0 < times["postgres_data"]["seconds"] < 3600, times
    over = [f for f in result.findings if f.severity is Severity.ERROR]
    assert len(over) == 1, explain(result)  # postgres_data is within its hour: only Prometheus' RTO is missed
    assert re.fullmatch(
        r"prometheus_data: restored to a usable state in \d+\.\d s, over its RTO of 0\.001 s", over[0].summary
    ), over[0].summary
    assert f"{prometheus['seconds']:.1f} s" in over[0].summary
    assert (over[0].location.file, over[0].location.line) == ("sprint/F9.10.yaml", line)
    assert "prometheus_data: restored to a usable state in" in result.reason


@pytest.mark.stack
def test_restores_within_their_rto_pass_and_record_each_volume(project_copy: Path, local_stack: Any) -> None:
    state_rto(project_copy, "backup/restore-drill", "{prometheus_data: 3600, postgres_data: 3600}")
    result = drill(project_copy, local_stack, "backup/restore-drill")
    assert result.status is Status.PASSED, explain(result)
    times = result.data["restore_times"]
    assert set(times) == {"prometheus_data", "postgres_data"}, times  # grafana_data: nothing in it to restore here
    for volume, measured in times.items():
        assert measured["rto_s"] == 3600 and 0 < measured["seconds"] < 3600, (volume, measured)
        assert measured["seconds"] >= result.data["drill"]["fetch_s"], (volume, measured)
    # Grafana cannot run here: its volume's RTO could not be judged, and nothing claims it was.
    assert result.data["drill"]["grafana"]["status"] == "skipped"


@pytest.mark.stack
def test_the_offsite_drill_judges_its_rto_too(project_copy: Path, local_stack: Any) -> None:
    need_tool("aws", "curl", "moto_server")
    state_rto(project_copy, "backup/offsite-restore-drill", "{postgres_data: 0.001}")
    result = drill(project_copy, local_stack, "backup/offsite-restore-drill")
    assert result.status is Status.FAILED, explain(result)
    measured = result.data["restore_times"]["postgres_data"]
    assert measured["rto_s"] == 0.001 and measured["seconds"] > 0.001, measured
    assert result.data["restore_times"]["prometheus_data"]["rto_s"] is None  # no RTO stated: measured, not judged
    summaries = [f.summary for f in result.findings if f.severity is Severity.ERROR]
    assert summaries == [
        f"postgres_data: restored to a usable state in {measured['seconds']:.1f} s, over its RTO of 0.001 s"
    ], explain(result)


@pytest.mark.stack
def test_an_rto_for_a_volume_the_drill_does_not_restore_is_errored_at_its_line(
    project_copy: Path, local_stack: Any
) -> None:
    line = state_rto(project_copy, "backup/restore-drill", "{loki_data: 60}")
    result = drill(project_copy, local_stack, "backup/restore-drill")
    assert result.status is Status.ERRORED, explain(result)
    assert result.reason == (
        f"sprint/F9.10.yaml:{line}: with.rto_s.loki_data: volume 'loki_data' is not one this drill restores (it "
        "restores: postgres_data, prometheus_data, grafana_data)"
    ), result.reason
    assert "restore_times" not in result.data or result.data["restore_times"] == {}, result.data


def test_an_rto_that_is_not_a_number_is_refused_when_the_spec_loads(project_copy: Path) -> None:
    line = state_rto(project_copy, "backup/restore-drill", "{prometheus_data: fast}")
    with pytest.raises(InputError) as refused:
        open_spec(project_copy, "F9.10")
    message = str(refused.value)
    assert f"sprint/F9.10.yaml:{line}" in message and "'fast' is not of type 'number'" in message, message

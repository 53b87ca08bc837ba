"""Alert coverage: how a seal proves each alerting rule of the rule files can really page someone.

An alert is covered by
  * a promtool unit test — an `alert_rule_test` entry of the spec's rule tests that names it and expects it to fire
    (a non-empty `exp_alerts`: a test that only shows it quiet proves nothing about firing);
  * a live drill — a phase of `rules/alert-drill` that ran in this run and saw it fire, delivered to the receiver,
    and its resolution delivered (with the times);
  * a waiver — `alert: NAME` in the spec's waivers, used only when neither of the above covers it, and shown as
    *waived*, never as passed.
An alerting rule covered by none is a finding of `rules/alert-drill`, at the rule's own line.

Why the drill reports it and not a check of its own: "covered by a live drill" is only known when the drill's
phases end, and the drill runs on while the later stages run; a separate check would have to wait for it (holding up
every stage after it) or re-read its evidence. The drill already holds every fact the coverage needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from sealgate.analysis.described import rule_file_patterns
from sealgate.analysis.rulefiles import expand, parsed_rule_file

if TYPE_CHECKING:
    from sealgate.api.context import Context

UNIT_TEST_CHECK = "rules/promtool-test"  # the library check whose `tests:` are the spec's rule unit tests


@dataclass
class DrillProof:
    """What a drill phase showed about one alert."""

    phase: str
    status: str  # passed | failed | running | not run | on request
    fire_prometheus_s: float | None = None
    fire_receiver_s: float | None = None
    resolve_receiver_s: float | None = None

    @property
    def covers(self) -> bool:
        return self.status == "passed" and self.fire_receiver_s is not None and self.resolve_receiver_s is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "status": self.status,
            "fire_prometheus_s": self.fire_prometheus_s,
            "fire_receiver_s": self.fire_receiver_s,
            "resolve_receiver_s": self.resolve_receiver_s,
        }


@dataclass
class CoverageRow:
    alert: str
    file: str
    line: int
    group: str
    definitions: int = 1  # an alert defined more than once (a warning/critical pair) is one row
    unit_tests: list[str] = field(default_factory=list)
    drill: DrillProof | None = None
    waiver: str | None = None  # the waiver's source (file:line) when one accepts the alert

    @property
    def covered_by(self) -> list[str]:
        found = ["unit_test"] if self.unit_tests else []
        if self.drill is not None and self.drill.covers:
            found.append("drill")
        if self.waiver and not found:
            found.append("waiver")
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "file": self.file,
            "line": self.line,
            "group": self.group,
            "definitions": self.definitions,
            "unit_tests": list(self.unit_tests),
            "drill": self.drill.to_json() if self.drill is not None else None,
            "waiver": self.waiver,
            "covered_by": self.covered_by,
        }


def unit_test_patterns(ctx: Context) -> list[str]:
    """The promtool unit test files (globs): `with.unit_tests`, else the `tests:` of the spec's own
    rules/promtool-test, else none."""
    if ctx.params.get("unit_tests") is not None:
        return [str(p) for p in ctx.params["unit_tests"]]
    for stage in ctx.spec.stages.values():
        for ref in stage.checks:
            if ref.id == UNIT_TEST_CHECK:
                return [str(p) for p in (ref.params or {}).get("tests") or []]
    return []


def alerts_unit_tested(ctx: Context, patterns: list[str]) -> dict[str, list[str]]:
    """Alert name -> the test files that expect it to fire. A file that does not parse covers nothing (the check
    that runs the tests reports it)."""
    tested: dict[str, list[str]] = {}
    for relative in expand(ctx, patterns) if patterns else []:
        try:
            doc = yaml.safe_load(ctx.judge(relative).read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        tests = doc.get("tests") if isinstance(doc, dict) else None
        for test in tests if isinstance(tests, list) else []:
            entries = test.get("alert_rule_test") if isinstance(test, dict) else None
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict) and entry.get("alertname") and entry.get("exp_alerts"):
                    files = tested.setdefault(str(entry["alertname"]), [])
                    if relative not in files:
                        files.append(relative)
    return tested


def alerting_rules(ctx: Context) -> list[CoverageRow]:
    """One row per alert name of the rule files (`with.rules`, else those the described Prometheus loads), in the
    files' order, at its first definition."""
    rows: dict[str, CoverageRow] = {}
    for relative in expand(ctx, rule_file_patterns(ctx)):
        parsed, _problems = parsed_rule_file(ctx, relative)
        for rule in parsed.rules:
            if rule.kind != "alert":
                continue
            if rule.name in rows:
                rows[rule.name].definitions += 1
            else:
                rows[rule.name] = CoverageRow(rule.name, rule.file, rule.line, rule.group)
    return list(rows.values())


def judge_coverage(ctx: Context, drilled: dict[str, DrillProof], on_request: dict[str, str]) -> list[CoverageRow]:
    """Every alerting rule with what covers it; a finding (at the rule) for each one nothing covers, a waiver
    recorded for each one only a waiver covers. `on_request`: alert -> the phase that would drill it with
    `--drill all`."""
    patterns = unit_test_patterns(ctx)
    tested = alerts_unit_tested(ctx, patterns)
    rows = alerting_rules(ctx)
    for row in rows:
        row.unit_tests = tested.get(row.alert, [])
        row.drill = drilled.get(row.alert)
        if row.drill is None and row.alert in on_request:
            row.drill = DrillProof(on_request[row.alert], "on request")
        if row.unit_tests or (row.drill is not None and row.drill.covers):
            continue
        waiver = ctx.apply_waiver("alert", row.alert)
        if waiver is not None:
            row.waiver = waiver.source
            continue
        ctx.finding(f"alert {row.alert} is covered by none of: {_missing(row, patterns)}", file=row.file, line=row.line)
    return rows


def _missing(row: CoverageRow, patterns: list[str]) -> str:
    tests = (
        f"a promtool unit test expecting it to fire (none in {', '.join(patterns)})"
        if patterns
        else "a promtool unit test (the spec names no rule tests)"
    )
    if row.drill is None:
        drill = "a drill phase (no phase names it)"
    elif row.drill.status == "on request":
        drill = f"a drill phase that ran (phase {row.drill.phase} runs only with --drill all)"
    else:
        drill = f"a passed drill phase (phase {row.drill.phase}: {row.drill.status})"
    return f"{tests}; {drill}; an `alert: {row.alert}` waiver"

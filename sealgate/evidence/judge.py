"""Judging: every check, stage and criterion verdict computed from the evidence on disk and the spec's waivers.

This is the single place statuses are decided; the CLI's exit codes, the SEAL report, the tag message and
`verify` all use it, so they cannot disagree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from sealgate.evidence.model import Statement
from sealgate.evidence.store import DigestSource, EvidenceStore, freshness, working_tree_digests
from sealgate.kernel.errors import EvidenceError, Problem
from sealgate.model.results import CheckResult, Status
from sealgate.sprint.model import Spec, Waiver


class Verdict(str, enum.Enum):
    PASSED = "passed"
    WAIVED = "waived"  # not passed; accepted by a named approver with a justification until a date
    FAILED = "failed"
    ERRORED = "errored"
    SKIPPED = "skipped"
    MISSING = "missing"  # no (valid) evidence on disk
    STALE = "stale"  # evidence from another commit, or a judged file changed since

    @property
    def ok(self) -> bool:
        """Whether it lets the seal through. WAIVED does, visibly; nothing else but PASSED does."""
        return self in (Verdict.PASSED, Verdict.WAIVED)


_ORDER = [
    Verdict.FAILED,
    Verdict.ERRORED,
    Verdict.STALE,
    Verdict.MISSING,
    Verdict.SKIPPED,
    Verdict.WAIVED,
    Verdict.PASSED,
]


def worst(verdicts: list[Verdict]) -> Verdict:
    return min(verdicts, key=_ORDER.index) if verdicts else Verdict.MISSING


@dataclass
class CheckVerdict:
    check_id: str
    title: str
    stage: int
    verdict: Verdict
    reason: str
    result: CheckResult | None = None  # as recorded in the evidence
    waivers: list[Waiver] = field(default_factory=list)  # what lets a non-passed (part of a) check through


@dataclass
class StageVerdict:
    number: int
    name: str
    title: str
    verdict: Verdict
    evidence: str  # repository-relative path
    statement: Statement | None = None
    problems: list[Problem] = field(default_factory=list)  # why missing/stale
    checks: list[CheckVerdict] = field(default_factory=list)

    @property
    def duration_s(self) -> float | None:
        return self.statement.run.duration_s if self.statement else None


@dataclass
class CriterionVerdict:
    id: str
    title: str
    verdict: Verdict
    reason: str
    checks: list[CheckVerdict]
    waiver: Waiver | None = None


@dataclass
class Judgement:
    spec: Spec
    head: str
    stages: dict[int, StageVerdict]
    criteria: list[CriterionVerdict]

    @property
    def all_ok(self) -> bool:
        return all(c.verdict.ok for c in self.criteria) and all(s.verdict.ok for s in self.stages.values())

    @property
    def failing(self) -> list[CriterionVerdict]:
        return [c for c in self.criteria if not c.verdict.ok]

    @property
    def waivers_used(self) -> list[Waiver]:
        used = [w for s in self.stages.values() for cv in s.checks for w in cv.waivers]
        used += [c.waiver for c in self.criteria if c.waiver]
        return list(dict.fromkeys(used))


_FROM_STATUS = {
    Status.PASSED: Verdict.PASSED,
    Status.FAILED: Verdict.FAILED,
    Status.ERRORED: Verdict.ERRORED,
    Status.SKIPPED: Verdict.SKIPPED,
}


def judge(
    spec: Spec,
    root: Path,
    head: str,
    stages: list[int] | None = None,
    digest_source: DigestSource | None = None,
    store: EvidenceStore | None = None,
) -> Judgement:
    """Verdicts for `stages` (default: all of the spec's) and every criterion, from the evidence on disk only
    (`store`: evidence elsewhere than `artifacts/<slug>/`, e.g. a seal read back from git)."""
    store = store or EvidenceStore(root, spec.slug)
    numbers = stages if stages is not None else list(spec.stages)
    judged: dict[int, StageVerdict] = {}
    for number in numbers:
        stage = spec.stages[number]
        path = store.stage_path(number)
        display = store.display(path)
        verdict = StageVerdict(number, stage.name, stage.title, Verdict.MISSING, display)
        try:
            statement = store.read_statement(number)
        except EvidenceError as exc:
            verdict.problems = exc.problems
            verdict.checks = [
                CheckVerdict(r.id, spec.check_title(r.id), number, Verdict.MISSING, str(exc.problems[0]))
                for r in stage.checks
            ]
            judged[number] = verdict
            continue
        verdict.statement = statement
        fresh = freshness(statement, head, display, digest_source or working_tree_digests(root))
        recorded = {c.check_id: c for c in statement.checks}
        for ref in stage.checks:
            result = recorded.get(ref.id)
            if not fresh:
                cv = CheckVerdict(ref.id, spec.check_title(ref.id), number, Verdict.STALE, str(fresh.stale[0]), result)
            elif result is None:
                cv = CheckVerdict(
                    ref.id, spec.check_title(ref.id), number, Verdict.MISSING, f"{display} has no result for {ref.id}"
                )
            else:
                cv = check_verdict(spec, ref.id, number, result)
            verdict.checks.append(cv)
        verdict.problems = fresh.stale
        verdict.verdict = worst([c.verdict for c in verdict.checks])
        judged[number] = verdict

    by_id = {cv.check_id: cv for s in judged.values() for cv in s.checks}
    criteria = []
    for criterion in spec.criteria:
        checks = [by_id[c] for c in criterion.checks if c in by_id]
        if len(checks) < len(criterion.checks):  # a stage outside this judgement: not proven here
            continue
        overall = worst([c.verdict for c in checks])
        reason = next(
            (
                f"{c.check_id}: {c.verdict.value} — {c.reason}"
                for c in checks
                if c.verdict is overall and overall is not Verdict.PASSED
            ),
            "",
        )
        waiver = spec.waiver_for("criterion", criterion.id)
        if not overall.ok and waiver is not None:
            if waiver.covers(overall.value):
                overall = Verdict.WAIVED
            else:
                reason += f" (its waiver, {waiver.source}, accepts only: {', '.join(waiver.accepts)})"
        criteria.append(
            CriterionVerdict(
                criterion.id,
                criterion.title,
                overall,
                reason,
                checks,
                waiver if overall is Verdict.WAIVED and waiver else None,
            )
        )
    return Judgement(spec, head, judged, criteria)


def check_verdict(spec: Spec, check_id: str, stage: int, result: CheckResult) -> CheckVerdict:
    """A check's verdict: its recorded status, then waivers. A passed check that applied waivers to parts of
    itself (a skipped stack test) is *waived*; each waiver it cites must still be in the spec, or it fails."""
    # The title as the spec and the report's language give it now (evidence keeps the one of its run).
    title = spec.check_title(check_id, result.title)
    cv = CheckVerdict(check_id, title, stage, _FROM_STATUS[result.status], result.reason, result)
    for cited in result.waivers:
        waiver = spec.waiver_for(cited["kind"], cited["target"])
        if waiver is None:
            cv.verdict = Verdict.FAILED
            cv.reason = f"evidence cites a waiver for {cited['kind']} {cited['target']!r} that the spec does not hold"
            return cv
        cv.waivers.append(waiver)
    if cv.waivers and cv.verdict is Verdict.PASSED:
        cv.verdict = Verdict.WAIVED
        cv.reason = "; ".join(f"{w.target_kind} {w.target} waived" for w in cv.waivers)
    waiver = spec.waiver_for("check", check_id)
    if waiver is not None and not cv.verdict.ok:
        if waiver.covers(cv.verdict.value):
            cv.verdict = Verdict.WAIVED
            cv.waivers.append(waiver)
        else:
            cv.reason += f" (its waiver, {waiver.source}, accepts only: {', '.join(waiver.accepts)})"
    return cv

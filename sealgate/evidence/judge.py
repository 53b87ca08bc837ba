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
from sealgate.model.results import CheckResult, Finding, Severity, Status
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
    covered: list[Finding] = field(default_factory=list)  # the findings its waiver covers (a waived failure)


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


@dataclass(frozen=True)
class StaleWaiver:
    """A waiver (or one of its finding entries) that covers nothing any more: the thing it was written for is gone,
    so it should go too — reported, never used."""

    waiver: Waiver
    why: str

    def __str__(self) -> str:
        return f"waiver for {self.waiver.target_kind} {self.waiver.target} ({self.waiver.source}) {self.why}"


@dataclass
class Judgement:
    spec: Spec
    head: str
    stages: dict[int, StageVerdict]
    criteria: list[CriterionVerdict]
    stale: list[StaleWaiver] = field(default_factory=list)

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
        criteria.append(criterion_verdict(spec, criterion.id, criterion.title, checks))
    judgement = Judgement(spec, head, judged, criteria)
    judgement.stale = stale_waivers(judgement, complete=stages is None)
    return judgement


def failure_items(result: CheckResult) -> list[Finding]:
    """What a failed or errored check found wrong: its error findings, or — when it failed without a finding, or
    could not run — its reason, as one finding without a place."""
    errors = [f for f in result.findings if f.severity is Severity.ERROR]
    return errors or [Finding(Severity.ERROR, result.reason)]


def check_verdict(spec: Spec, check_id: str, stage: int, result: CheckResult) -> CheckVerdict:
    """A check's verdict: its recorded status, then waivers. A passed check that applied waivers to parts of
    itself (a skipped stack test) is *waived*; each waiver it cites must still be in the spec, or it fails. A waiver
    of the check itself accepts a skip (whose reason matches its pattern, when it gives one), or a failure all of
    whose findings it names; any finding it does not name fails the check as if there were no waiver."""
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
    if waiver is None or cv.verdict.ok:
        return cv
    if not waiver.covers(cv.verdict.value):
        cv.reason += f" (its waiver, {waiver.source}, accepts only: {', '.join(waiver.accepts)})"
    elif cv.verdict is Verdict.SKIPPED:
        if waiver.accepts_skip(result.reason):
            cv.verdict = Verdict.WAIVED
            cv.waivers.append(waiver)
        else:
            cv.reason += f" (its waiver, {waiver.source}, accepts only a skip matching {waiver.reason!r})"
    else:
        covered, uncovered = waiver.split(failure_items(result))
        if uncovered:
            first = uncovered[0]
            more = f" (+{len(uncovered) - 1} more)" if len(uncovered) > 1 else ""
            cv.reason = f"its waiver ({waiver.source}) does not cover: {first}{more}"
        else:
            cv.verdict = Verdict.WAIVED
            cv.waivers.append(waiver)
            cv.covered = covered
            cv.reason = f"{len(covered)} finding(s) covered by its waiver ({waiver.source})"
    return cv


def satisfies_requirement(spec: Spec, check_id: str, result: CheckResult) -> bool:
    """Whether a check that others `require` lets them run: it passed, or it failed and its waiver covers every
    finding (it ran; what it found is accepted). A skip or an error — waived or not — did not do the work they rely
    on, and a failure a waiver does not cover stops them."""
    if result.status is Status.PASSED:
        return True
    if result.status is not Status.FAILED:
        return False
    return check_verdict(spec, check_id, 0, result).verdict is Verdict.WAIVED


def criterion_verdict(spec: Spec, criterion_id: str, title: str, checks: list[CheckVerdict]) -> CriterionVerdict:
    """The worst of its checks' verdicts; a waiver of the criterion accepts it as a waiver of a check does — a skip,
    or failures every finding of which it names."""
    overall = worst([c.verdict for c in checks])
    reason = next(
        (f"{c.check_id}: {c.verdict.value} — {c.reason}" for c in checks if c.verdict is overall and not overall.ok),
        "",
    )
    waiver = spec.waiver_for("criterion", criterion_id)
    if overall.ok or waiver is None:
        return CriterionVerdict(criterion_id, title, overall, reason, checks)
    if not waiver.covers(overall.value):
        reason += f" (its waiver, {waiver.source}, accepts only: {', '.join(waiver.accepts)})"
        return CriterionVerdict(criterion_id, title, overall, reason, checks)
    failing = [c for c in checks if not c.verdict.ok]
    uncovered = [
        item
        for c in failing
        if c.result is not None and c.verdict in (Verdict.FAILED, Verdict.ERRORED)
        for item in waiver.split(failure_items(c.result))[1]
    ]
    skips = [c for c in failing if c.verdict is Verdict.SKIPPED and not waiver.accepts_skip(c.reason)]
    others = [c for c in failing if c.verdict not in (Verdict.FAILED, Verdict.ERRORED, Verdict.SKIPPED)]
    if uncovered or skips or others or any(not waiver.covers(c.verdict.value) for c in failing):
        why = str(uncovered[0]) if uncovered else (skips or others or failing)[0].reason
        reason += f" (its waiver, {waiver.source}, does not cover: {why})"
        return CriterionVerdict(criterion_id, title, overall, reason, checks)
    return CriterionVerdict(criterion_id, title, Verdict.WAIVED, reason, checks, waiver)


def stale_waivers(judgement: Judgement, complete: bool) -> list[StaleWaiver]:
    """Waivers of what this judgement judged that cover nothing any more (`complete`: every stage was judged, so a
    stack-test or alert waiver no check applied is stale too)."""
    spec = judgement.spec
    checks = {cv.check_id: cv for s in judgement.stages.values() for cv in s.checks}
    criteria = {c.id: c for c in judgement.criteria}
    cited = {(w.target_kind, w.target) for cv in checks.values() for w in cv.waivers}
    stale = []
    for waiver in spec.waivers:
        if waiver.target_kind == "check" and waiver.target in checks:
            cv = checks[waiver.target]
            if cv.result is None:
                continue  # no evidence: what it covers is not known
            if cv.result.status is Status.PASSED:
                stale.append(StaleWaiver(waiver, "covers nothing: the check passed"))
            elif cv.result.status in (Status.FAILED, Status.ERRORED):
                for matcher in waiver.idle_matchers(failure_items(cv.result)):
                    stale.append(StaleWaiver(waiver, f"names a finding no longer found: {matcher} ({matcher.source})"))
        elif waiver.target_kind == "criterion" and waiver.target in criteria:
            criterion = criteria[waiver.target]
            if criterion.waiver is None and criterion.verdict.ok:
                stale.append(StaleWaiver(waiver, "covers nothing: the criterion is met without it"))
        elif waiver.target_kind in ("test", "alert") and complete and (waiver.target_kind, waiver.target) not in cited:
            stale.append(StaleWaiver(waiver, f"covers nothing: no check found that {waiver.target_kind} not passing"))
    return stale

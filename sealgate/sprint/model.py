"""A sprint spec as data: its stages, the check references placed in them, criteria and waivers. Reading and
validating a spec file lives in spec.py; this is what it produces and what the runner, the judge and the reports read.
"""

from __future__ import annotations

import datetime
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealgate.model.results import CheckDef, Finding

if TYPE_CHECKING:
    from sealgate.backends.description import StackDescription

# The word for a stage in the console and the report, by the spec's language (the seed's sprints say EIXO).
STAGE_WORDS = {"pt-BR": "EIXO", "en": "stage"}


@dataclass(frozen=True)
class CheckRef:
    id: str
    params: dict[str, Any]
    definition: CheckDef | None  # None: declared in the spec, not implemented (the stage will be errored)
    title: str | None = None  # the spec's own title for this check, when it gives one


@dataclass(frozen=True)
class StageSpec:
    number: int
    name: str
    title: str
    objective: str
    checks: tuple[CheckRef, ...]
    requires: tuple[int, ...] = ()


@dataclass(frozen=True)
class Criterion:
    id: str
    title: str
    checks: tuple[str, ...]  # every check whose evidence proves it (stages expanded)


@dataclass(frozen=True)
class FindingMatcher:
    """One kind of finding a waiver names: every field given must match (`file` a glob on the finding's file,
    `rule` and `metric` regular expressions matching the whole name the finding is about, `message` one found in its
    summary). A check that fails without a finding is matched through its reason (`message` only)."""

    file: str | None = None
    rule: str | None = None
    metric: str | None = None
    message: str | None = None
    source: str = ""  # file:line of the matcher in the spec or waiver file

    def matches(self, finding: Finding) -> bool:
        location = finding.location
        return (
            (self.file is None or (location.file is not None and fnmatch.fnmatchcase(location.file, self.file)))
            and (self.rule is None or (finding.rule is not None and re.fullmatch(self.rule, finding.rule) is not None))
            and (
                self.metric is None
                or (finding.metric is not None and re.fullmatch(self.metric, finding.metric) is not None)
            )
            and (self.message is None or re.search(self.message, finding.summary) is not None)
        )

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in (("file", self.file), ("rule", self.rule), ("metric", self.metric),
                                  ("message", self.message)) if v is not None}  # fmt: skip

    def __str__(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.fields().items())


@dataclass(frozen=True)
class Waiver:
    target_kind: str  # "check" | "criterion" | "test" | "alert"
    target: str
    justification: str
    approver: str
    expires: datetime.date
    source: str  # file:line
    # Verdicts it may turn into "waived". Skipped only by default: a waiver written for "cannot run here" must not
    # also hide the check failing where it can run; one that accepts failures names the findings it covers.
    accepts: tuple[str, ...] = ("skipped",)
    reason: str | None = None  # a skip is accepted only when its reason matches this (a regular expression)
    findings: tuple[FindingMatcher, ...] = ()

    def covers(self, verdict: str) -> bool:
        return verdict in self.accepts

    def accepts_skip(self, reason: str) -> bool:
        return "skipped" in self.accepts and (self.reason is None or re.search(self.reason, reason) is not None)

    def split(self, items: list[Finding]) -> tuple[list[Finding], list[Finding]]:
        """(the items some matcher of this waiver covers, those none does)."""
        covered = [f for f in items if any(m.matches(f) for m in self.findings)]
        return covered, [f for f in items if f not in covered]

    def idle_matchers(self, items: list[Finding]) -> list[FindingMatcher]:
        """Matchers that cover none of `items` (stale: the finding they were written for is gone)."""
        return [m for m in self.findings if not any(m.matches(f) for f in items)]

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": self.target_kind,
            "target": self.target,
            "justification": self.justification,
            "approver": self.approver,
            "expires": self.expires.isoformat(),
            "source": self.source,
            "accepts": list(self.accepts),
        }
        if self.reason is not None:
            record["reason"] = self.reason
        if self.findings:
            record["findings"] = [m.fields() for m in self.findings]
        return record


@dataclass
class Spec:
    id: str
    path: Path  # absolute
    relpath: str  # repository-relative, as shown to users
    raw: dict[str, Any]
    stages: dict[int, StageSpec]
    criteria: list[Criterion]
    waivers: list[Waiver] = field(default_factory=list)
    waiver_file: str | None = None  # repository-relative, when a separate file exists
    stack: StackDescription | None = None  # the stack its stages run against (`stack:`, or the default)

    @property
    def slug(self) -> str:
        return slug_of(self.id)

    @property
    def tag(self) -> str:
        return str(self.raw["tag"])

    @property
    def base_tag(self) -> str | None:
        return self.raw.get("base_tag")

    @property
    def language(self) -> str:
        return str(self.raw["language"])

    @property
    def first_in_chain(self) -> bool:
        return bool(self.raw.get("first_in_chain", False))

    @property
    def stage_word(self) -> str:
        """What the spec's language calls a stage: the seed's "EIXO" in pt-BR, "stage" otherwise."""
        return STAGE_WORDS.get(self.language, "stage")

    def stage_label(self, number: int) -> str:
        return f"{self.stage_word} {number}"

    def check_title(self, check_id: str, fallback: str | None = None) -> str:
        """The title of `check_id` in this sprint: the spec's own `title:` for it, else the check's title in the
        spec's language, else its (English) title, else `fallback` (e.g. the title evidence recorded), else the id."""
        for stage in self.stages.values():
            for ref in stage.checks:
                if ref.id == check_id:
                    if ref.title:
                        return str(ref.title)
                    if ref.definition is not None:
                        return ref.definition.title_in(self.language)
        return fallback or check_id

    def waiver_for(self, kind: str, target: str) -> Waiver | None:
        return next((w for w in self.waivers if w.target_kind == kind and w.target == target), None)

    @property
    def judged_files(self) -> list[str]:
        """Files every stage depends on: the spec, its waivers and the stack description decide what is checked and
        how."""
        return (
            [self.relpath]
            + ([self.waiver_file] if self.waiver_file else [])
            + ([self.stack.path] if self.stack is not None else [])
        )


def slug_of(sprint_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", sprint_id.lower()).strip("_")

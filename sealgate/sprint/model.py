"""A sprint spec as data: its stages, the check references placed in them, criteria and waivers. Reading and
validating a spec file lives in spec.py; this is what it produces and what the runner, the judge and the reports read.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealgate.model.results import CheckDef

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
class Waiver:
    target_kind: str  # "check" | "criterion" | "test" | "alert"
    target: str
    justification: str
    approver: str
    expires: datetime.date
    source: str  # file:line
    # Verdicts it may turn into "waived". Skipped only by default: a waiver written for "cannot run here" must not
    # also hide the check failing where it can run.
    accepts: tuple[str, ...] = ("skipped",)

    def covers(self, verdict: str) -> bool:
        return verdict in self.accepts

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.target_kind,
            "target": self.target,
            "justification": self.justification,
            "approver": self.approver,
            "expires": self.expires.isoformat(),
            "source": self.source,
            "accepts": list(self.accepts),
        }


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

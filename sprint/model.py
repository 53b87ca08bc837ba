"""The sprint's data model, plain data that imports nothing of the framework: results of checks (statuses,
findings and locations — the nox Status/Result and pint Problem pattern), check definitions, and the spec as loaded
(stages, check references, criteria, waivers). Loading and validating lives in spec.py, registering in registry.py,
running in runner.py: they all import this, and it imports none of them, so data flows one way."""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sealgate.backends.description import StackDescription

# A check: a plain function taking the run's Context (sprint/context.py).
CheckFunc = Callable[[Any], None]


class Status(str, enum.Enum):
    """Outcome of a check or stage. Only PASSED counts as passed; SKIPPED is never a pass."""

    PASSED = "passed"
    FAILED = "failed"  # it ran and found the criterion not met
    ERRORED = "errored"  # it could not run: stack down, tool missing, prerequisite not passed, not implemented
    SKIPPED = "skipped"  # deliberately not run, with a reason (a waiver may accept it; nothing else does)

    def __bool__(self) -> bool:
        return self is Status.PASSED

    @classmethod
    def worst(cls, statuses: list[Status]) -> Status:
        """The stage's status from its checks': any failure wins, then errors, then skips."""
        for status in (cls.FAILED, cls.ERRORED, cls.SKIPPED):
            if status in statuses:
                return status
        return cls.PASSED


class Severity(str, enum.Enum):
    ERROR = "error"  # makes the check fail
    WARNING = "warning"  # reported, does not fail
    INFO = "info"


@dataclass(frozen=True)
class Location:
    """Where a finding points: a repository file with a line, and/or a JSON path inside a document."""

    file: str | None = None
    line: int | None = None
    json_path: str | None = None

    def __str__(self) -> str:
        text = self.file or ""
        if self.line is not None:
            text += f":{self.line}"
        if self.json_path:
            text += f" {self.json_path}" if text else self.json_path
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            k: v for k, v in (("file", self.file), ("line", self.line), ("json_path", self.json_path)) if v is not None
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Location:
        return cls(file=data.get("file"), line=data.get("line"), json_path=data.get("json_path"))


@dataclass(frozen=True)
class Finding:
    severity: Severity
    summary: str
    location: Location = field(default_factory=Location)

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity.value, "summary": self.summary, "location": self.location.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(Severity(data["severity"]), data["summary"], Location.from_json(data.get("location", {})))

    def __str__(self) -> str:
        where = str(self.location)
        return f"{where}: {self.summary}" if where else self.summary


@dataclass
class CheckResult:
    check_id: str
    title: str
    status: Status
    reason: str = ""  # why it is not passed (or a one-line summary when it is)
    findings: list[Finding] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # facts the check measured (versions, modes, counts)
    duration_s: float = 0.0
    waivers: list[dict[str, Any]] = field(default_factory=list)  # waivers it applied to parts of itself

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.check_id,
            "title": self.title,
            "status": self.status.value,
            "reason": self.reason,
            "findings": [f.to_json() for f in self.findings],
            "data": self.data,
            "duration_s": round(self.duration_s, 3),
            "waivers": self.waivers,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            check_id=data["id"],
            title=data["title"],
            status=Status(data["status"]),
            reason=data.get("reason", ""),
            findings=[Finding.from_json(f) for f in data.get("findings", [])],
            data=data.get("data", {}),
            duration_s=data.get("duration_s", 0.0),
            waivers=data.get("waivers", []),
        )


@dataclass(frozen=True)
class CheckDef:
    id: str
    title: str
    func: CheckFunc
    needs_stack: bool = False
    requires: tuple[str, ...] = ()  # checks that must have passed before it (the spec places them earlier)
    params_schema: dict[str, Any] = field(default_factory=dict)  # JSON Schema for the spec's `with:` block
    # Runs alongside the EIXOs after its own (a drill waiting out alert windows on its own copy of the stack); its
    # EIXO's evidence is written when it ends.
    concurrent: bool = False
    # Called once when a run that includes the check begins (e.g. to start the stack copies it will use).
    prepare: CheckFunc | None = None
    # Judges the environment (free ports, a server that must not answer), not files: its evidence is never reused.
    volatile: bool = False


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

    def stage_of(self, check_id: str) -> int:
        for stage in self.stages.values():
            if any(ref.id == check_id for ref in stage.checks):
                return stage.number
        raise KeyError(check_id)

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

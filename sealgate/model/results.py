"""Plain data of checks: a check's definition (what the registry holds) and its result — the nox Status/Result and
pint Problem pattern: statuses, findings and their locations. Every room above reads and writes these; this module
imports nothing of sealgate."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# A check: a plain function taking the run's Context (sealgate/api/context.py).
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
    # What the finding is about, when it is about an alerting/recording rule or a metric: what a waiver names.
    rule: str | None = None
    metric: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "severity": self.severity.value,
            "summary": self.summary,
            "location": self.location.to_json(),
        }
        for key, value in (("rule", self.rule), ("metric", self.metric)):
            if value is not None:
                data[key] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        return cls(
            Severity(data["severity"]),
            data["summary"],
            Location.from_json(data.get("location", {})),
            data.get("rule"),
            data.get("metric"),
        )

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
    title: str  # English, as the code says it
    func: CheckFunc
    needs_stack: bool = False
    requires: tuple[str, ...] = ()  # checks that must have passed before it (the spec places them earlier)
    params_schema: dict[str, Any] = field(default_factory=dict)  # JSON Schema for the spec's `with:` block
    # Runs alongside the stages after its own (a drill waiting out alert windows on its own copy of the stack); its
    # stage's evidence is written when it ends.
    concurrent: bool = False
    # Called once when a run that includes the check begins (e.g. to start the stack copies it will use).
    prepare: CheckFunc | None = None
    # Judges the environment (free ports, a server that must not answer), not files: its evidence is never reused.
    volatile: bool = False
    titles: Mapping[str, str] = field(default_factory=dict)  # the title in other languages, by language tag
    aliases: tuple[str, ...] = ()  # former ids, still accepted in specs and waivers (sealed specs keep them)

    def title_in(self, language: str) -> str:
        return self.titles.get(language, self.title)

    @property
    def origin(self) -> str:
        """Where it is defined, as `file:line` (one id, one definition: a second one is refused naming both)."""
        code = getattr(self.func, "__code__", None)
        where = code.co_filename if code is not None else getattr(self.func, "__module__", "?")
        return f"{where}:{code.co_firstlineno}" if code is not None else where

    @property
    def identity(self) -> str:
        """The function's import name: the same check imported twice has one identity, another check another."""
        return f"{getattr(self.func, '__module__', '?')}.{getattr(self.func, '__qualname__', '?')}"

"""One stage's evidence as a typed value: an in-toto Statement v1 whose predicate is the stage's run.

The runner builds a Statement and the store writes `to_json()` (schema-validated, canonical JSON); the judge, the
reuse decision, verify, the report and the benchmarks read `Statement.from_json(document)` — nobody indexes the
document's dicts by hand. The JSON shape is the contract (evidence/schema/eixo.schema.json); this is its reader and
writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sealgate.model.results import CheckResult, Status

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"


def predicate_type(stage: int, name: str) -> str:
    return f"urn:sealgate:eixo:{stage}:{name}:v1"


@dataclass(frozen=True)
class Subject:
    name: str  # repository-relative path of a judged file
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "digest": {"sha256": self.sha256}}


@dataclass(frozen=True)
class StageInfo:
    number: int
    name: str
    title: str


@dataclass(frozen=True)
class RunInfo:
    commit: str
    dirty: bool
    started_at: str  # RFC 3339, UTC
    finished_at: str
    duration_s: float
    backend: str | None
    stack: dict[str, Any] | None
    host: str
    python: str
    sealgate_version: str
    tool_versions: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "dirty": self.dirty,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": round(self.duration_s, 3),
            "backend": self.backend,
            "stack": self.stack,
            "host": self.host,
            "python": self.python,
            "sealgate_version": self.sealgate_version,
            "tool_versions": dict(sorted(self.tool_versions.items())),
            "options": self.options,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunInfo:
        return cls(
            commit=data["commit"],
            dirty=data["dirty"],
            started_at=data["started_at"],
            finished_at=data["finished_at"],
            duration_s=data["duration_s"],
            backend=data.get("backend"),
            stack=data.get("stack"),
            host=data.get("host", ""),
            python=data.get("python", ""),
            sealgate_version=data.get("sealgate_version", ""),
            tool_versions=dict(data.get("tool_versions") or {}),
            options=dict(data.get("options") or {}),
        )


@dataclass(frozen=True)
class Wait:
    """An irreducible wait a check recorded (a stack start, an alert's `for` window), kept apart from its work."""

    check: str
    what: str
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "what": self.what, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Statement:
    sprint: str
    stage: StageInfo
    status: Status
    run: RunInfo
    checks: list[CheckResult]
    subjects: list[Subject] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)  # argv, exit code, digests of the output
    attachments: dict[str, str] = field(default_factory=dict)  # relative name -> sha256
    waits: list[Wait] = field(default_factory=list)

    @property
    def check_ids(self) -> list[str]:
        return [c.check_id for c in self.checks]

    def to_json(self) -> dict[str, Any]:
        """The canonical document (what the schema validates and the store writes)."""
        return {
            "_type": STATEMENT_TYPE,
            "subject": [s.to_json() for s in sorted(self.subjects, key=lambda s: s.name)],
            "predicateType": predicate_type(self.stage.number, self.stage.name),
            "predicate": {
                "sprint": self.sprint,
                "stage": {"number": self.stage.number, "name": self.stage.name, "title": self.stage.title},
                "status": self.status.value,
                "run": self.run.to_json(),
                "checks": [c.to_json() for c in self.checks],
                "commands": list(self.commands),
                "attachments": [{"name": n, "digest": {"sha256": d}} for n, d in sorted(self.attachments.items())],
                "waits": [w.to_json() for w in self.waits],
            },
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Statement:
        """A document the store has schema-validated."""
        predicate = document["predicate"]
        stage = predicate["stage"]
        return cls(
            sprint=predicate["sprint"],
            stage=StageInfo(stage["number"], stage["name"], stage["title"]),
            status=Status(predicate["status"]),
            run=RunInfo.from_json(predicate["run"]),
            checks=[CheckResult.from_json(c) for c in predicate["checks"]],
            subjects=[Subject(s["name"], s["digest"]["sha256"]) for s in document["subject"]],
            commands=list(predicate.get("commands") or []),
            attachments={a["name"]: a["digest"]["sha256"] for a in predicate.get("attachments") or []},
            waits=[Wait(w["check"], w["what"], w["seconds"]) for w in predicate.get("waits") or []],
        )

"""Sprint specs: `sprint/<ID>.yaml` (+ optional `sprint/<ID>.waivers.yaml`), validated with every problem reported
as `file:line: what is wrong` — schema errors, unknown check ids, duplicates, dangling references, expired waivers.
"""

from __future__ import annotations

import datetime
import difflib
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from sealgate import STAGES
from sealgate.errors import InputError, Problem
from sealgate.sprint.registry import REGISTRY, CheckDef, load_builtin_checks
from sealgate.sprint.yamlsource import Located, json_path, load_yaml

SPRINT_DIR = "sprint"


@dataclass(frozen=True)
class CheckRef:
    id: str
    params: dict[str, Any]
    definition: CheckDef | None  # None: declared in the spec, not implemented (the stage will be errored)


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
    target_kind: str  # "check" | "criterion" | "test"
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
        """Files every stage depends on: the spec and its waivers decide what is checked and how."""
        return [self.relpath] + ([self.waiver_file] if self.waiver_file else [])


def slug_of(sprint_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", sprint_id.lower()).strip("_")


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def find_spec(root: Path, sprint_id: str | None) -> Path:
    """`sprint/<ID>.yaml`, or the newest spec (natural order: F9.10 after F9.9) when no id is given."""
    directory = root / SPRINT_DIR
    if sprint_id:
        path = directory / f"{sprint_id}.yaml"
        if not path.is_file():
            known = ", ".join(p.stem for p in _spec_files(directory)) or "none"
            raise InputError(
                Problem(f"{SPRINT_DIR}/{sprint_id}.yaml", "no such sprint spec", f"known sprints: {known}")
            )
        return path
    candidates = _spec_files(directory)
    if not candidates:
        raise InputError(Problem(f"{SPRINT_DIR}/", "no sprint spec found", "write sprint/<ID>.yaml (see README)"))
    return max(candidates, key=lambda p: _natural_key(p.stem))


def _spec_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if not p.name.endswith(".waivers.yaml"))


@cache
def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    folder = resources.files("sealgate.sprint") / "schema"
    sprint = json.loads((folder / "sprint.schema.json").read_text())
    waivers = json.loads((folder / "waivers.schema.json").read_text())
    return sprint, waivers


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    sprint_schema, _ = _schemas()
    registry: Registry = Registry().with_resource(sprint_schema["$id"], Resource.from_contents(sprint_schema))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def _schema_problems(doc: Located, schema: dict[str, Any]) -> list[Problem]:
    problems = []
    for error in sorted(_validator(schema).iter_errors(doc.value), key=lambda e: list(map(str, e.absolute_path))):
        # anyOf/oneOf errors are vague; show the most relevant sub-error (python-jsonschema's best_match).
        best = jsonschema.exceptions.best_match([error]) if error.context else error
        path = list(best.absolute_path)
        if best.validator == "additionalProperties" and isinstance(best.instance, dict):
            known = best.schema.get("properties", {})
            for key in (k for k in best.instance if k not in known):
                hint = difflib.get_close_matches(str(key), known, n=1)
                problems.append(
                    doc.problem(
                        [*path, key],
                        f"{json_path(path)}: unknown key: {key!r}",
                        f"did you mean {hint[0]!r}?" if hint else "",
                    )
                )
            continue
        problems.append(doc.problem(path, f"{json_path(path)}: {best.message}"))
    return problems


def load_spec(root: Path, sprint_id: str | None = None, today: datetime.date | None = None) -> Spec:
    """Load, validate and resolve a sprint spec; raise InputError listing every problem found."""
    root = root.resolve()
    path = find_spec(root, sprint_id)
    relpath = path.relative_to(root).as_posix()
    doc = load_yaml(path, relpath)
    if not isinstance(doc.value, dict):
        raise InputError(Problem(f"{relpath}:1", "a sprint spec must be a YAML mapping"))
    sprint_schema, waiver_schema = _schemas()
    problems = _schema_problems(doc, sprint_schema)
    if problems:
        raise InputError(*problems)
    raw: dict[str, Any] = doc.value
    if path.stem != raw["id"]:
        problems.append(doc.problem(["id"], f"id {raw['id']!r} does not match the file name {path.name!r}"))

    load_builtin_checks()
    problems += _load_plugins(root, doc)

    stages: dict[int, StageSpec] = {}
    seen_checks: dict[str, tuple[Any, ...]] = {}
    for si, stage in enumerate(raw["stages"]):
        number = stage["number"]
        if number in stages:
            problems.append(doc.problem(["stages", si, "number"], f"stage {number} declared twice"))
            continue
        name = stage.get("name", STAGES[number])
        if name != STAGES[number]:
            problems.append(
                doc.problem(["stages", si, "name"], f"stage {number} is named {STAGES[number]!r}, not {name!r}")
            )
        refs = []
        for ci, entry in enumerate(stage["checks"]):
            where = ("stages", si, "checks", ci)
            check_id = entry["id"]
            if check_id in seen_checks:
                problems.append(doc.problem([*where, "id"], f"check {check_id!r} listed twice"))
                continue
            seen_checks[check_id] = where
            definition = REGISTRY.get(check_id)
            params = entry.get("with", {})
            if definition is None:
                if not entry.get("planned", False):
                    close = difflib.get_close_matches(check_id, REGISTRY, n=1)
                    hint = (
                        f"did you mean {close[0]!r}?" if close else "mark it `planned: true` if it is not written yet"
                    )
                    problems.append(doc.problem([*where, "id"], f"unknown check id {check_id!r}", hint))
            elif definition.stage != number:
                problems.append(
                    doc.problem([*where, "id"], f"check {check_id!r} belongs to stage {definition.stage}, not {number}")
                )
            else:
                for error in _validator(definition.params_schema).iter_errors(params):
                    sub = [*where, "with", *error.absolute_path]
                    problems.append(doc.problem(sub, f"{json_path(sub)}: {error.message}"))
            refs.append(CheckRef(check_id, params, definition))
        requires = tuple(stage.get("requires", []))
        for ri, required in enumerate(requires):
            if required >= number:
                problems.append(
                    doc.problem(["stages", si, "requires", ri], f"stage {number} can only require earlier stages")
                )
        stages[number] = StageSpec(number, name, stage["title"], stage.get("objective", ""), tuple(refs), requires)

    criteria = []
    seen_criteria: set[str] = set()
    for ci, criterion in enumerate(raw["criteria"]):
        if criterion["id"] in seen_criteria:
            problems.append(doc.problem(["criteria", ci, "id"], f"criterion {criterion['id']!r} declared twice"))
        seen_criteria.add(criterion["id"])
        checks: list[str] = []
        for ki, check_id in enumerate(criterion.get("checks", [])):
            if check_id not in seen_checks:
                problems.append(
                    doc.problem(
                        ["criteria", ci, "checks", ki],
                        f"criterion {criterion['id']} names check {check_id!r}, which no stage runs",
                    )
                )
            checks.append(check_id)
        for ki, number in enumerate(criterion.get("stages", [])):
            if number not in stages:
                problems.append(
                    doc.problem(
                        ["criteria", ci, "stages", ki],
                        f"criterion {criterion['id']} names stage {number}, which the spec does not declare",
                    )
                )
                continue
            checks += [ref.id for ref in stages[number].checks if ref.id not in checks]
        criteria.append(Criterion(criterion["id"], criterion["title"], tuple(checks)))

    for key in ("decisions", "risks"):
        for di, item in enumerate(raw.get(key, [])):
            for ki, check_id in enumerate(item.get("checks", [])):
                if check_id not in seen_checks:
                    problems.append(
                        doc.problem(
                            [key, di, "checks", ki],
                            f"{key[:-1]} {item['id']} names check {check_id!r}, which no stage runs",
                        )
                    )

    if raw.get("base_tag") is None and not raw.get("first_in_chain", False):
        problems.append(
            doc.problem(["base_tag"], "no base_tag", "set base_tag, or first_in_chain: true for a chain's first sprint")
        )

    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    waivers = _waivers(doc, ("waivers",), raw.get("waivers", []), today, seen_checks, seen_criteria, problems)
    waiver_path = path.with_name(f"{path.stem}.waivers.yaml")
    waiver_rel = None
    if waiver_path.is_file():
        waiver_rel = waiver_path.relative_to(root).as_posix()
        wdoc = load_yaml(waiver_path, waiver_rel)
        schema_problems = (
            _schema_problems(wdoc, waiver_schema)
            if isinstance(wdoc.value, dict)
            else [Problem(f"{waiver_rel}:1", "a waiver file must be a mapping with a 'waivers' list")]
        )
        problems += schema_problems
        if not schema_problems:
            waivers += _waivers(wdoc, ("waivers",), wdoc.value["waivers"], today, seen_checks, seen_criteria, problems)

    if problems:
        raise InputError(*problems)
    return Spec(raw["id"], path, relpath, raw, dict(sorted(stages.items())), criteria, waivers, waiver_rel)


def _waivers(
    doc: Located,
    base: tuple[Any, ...],
    entries: list[dict[str, Any]],
    today: datetime.date,
    checks: dict[str, Any],
    criteria: set[str],
    problems: list[Problem],
) -> list[Waiver]:
    waivers = []
    seen: set[tuple[str, str]] = set()
    for wi, entry in enumerate(entries):
        where = (*base, wi)
        kind = next(k for k in ("check", "criterion", "test") if k in entry)
        target = entry[kind]
        if kind == "check" and target not in checks:
            problems.append(doc.problem([*where, kind], f"waiver names check {target!r}, which no stage runs"))
        if kind == "criterion" and target not in criteria:
            problems.append(
                doc.problem([*where, kind], f"waiver names criterion {target!r}, which the spec does not declare")
            )
        if (kind, target) in seen:
            problems.append(doc.problem([*where, kind], f"{kind} {target!r} waived twice"))
        seen.add((kind, target))
        expires = datetime.date.fromisoformat(entry["expires"])
        if expires < today:
            problems.append(
                doc.problem(
                    [*where, "expires"],
                    f"waiver for {kind} {target!r} expired on {expires}",
                    "renew it with a new approval or remove it",
                )
            )
        accepts = tuple(entry.get("accepts", ("skipped",)))
        waivers.append(
            Waiver(kind, target, entry["justification"], entry["approver"], expires, doc.where(list(where)), accepts)
        )
    return waivers


def _load_plugins(root: Path, doc: Located) -> list[Problem]:
    problems = []
    for pi, relative in enumerate(doc.value.get("plugins", [])):
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            problems.append(doc.problem(["plugins", pi], f"plugin {relative!r} is not a file inside the repository"))
            continue
        module_name = "sealgate_plugin_" + re.sub(r"\W", "_", relative)
        if module_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a plugin's own bug: report it as bad input, with where
            del sys.modules[module_name]
            problems.append(
                doc.problem(["plugins", pi], f"plugin {relative} failed to load: {type(exc).__name__}: {exc}")
            )
    return problems

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
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from sealgate.backends.description import DEFAULT_PATH as DEFAULT_STACK_PATH
from sealgate.backends.description import StackDescription, load_description
from sealgate.errors import InputError, Problem
from sealgate.sprint.model import CheckRef, Criterion, Spec, StageSpec, Waiver, slug_of
from sealgate.sprint.registry import REGISTRY, load_builtin_checks
from sealgate.sprint.yamlsource import Located, json_path, load_yaml, schema_problems

SPRINT_DIR = "sprint"
# The spec's model lives in sprint/model.py (plain data, no imports of the framework); re-exported here.
__all__ = ["SPRINT_DIR", "CheckRef", "Criterion", "Spec", "StageSpec", "Waiver", "find_spec", "load_spec", "slug_of"]


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
    return schema_problems(doc, _validator(schema))


def load_spec(
    root: Path, sprint_id: str | None = None, today: datetime.date | None = None, with_stack: bool = True
) -> Spec:
    """Load, validate and resolve a sprint spec; raise InputError listing every problem found.

    `with_stack=False` leaves the stack description unread (`spec.stack` is None): what judges evidence already
    recorded (verify) needs the criteria and waivers, not the stack the run brought up."""
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
    names: dict[str, int] = {}
    seen_checks: dict[str, tuple[Any, ...]] = {}
    placed: dict[str, tuple[int, int]] = {}  # check id -> (its stage, its index there): where the spec puts it
    for si, stage in enumerate(raw["stages"]):
        number = stage["number"]
        if number in stages:
            problems.append(doc.problem(["stages", si, "number"], f"stage {number} declared twice"))
            continue
        name = stage["name"]
        if name in names:
            problems.append(doc.problem(["stages", si, "name"], f"stage name {name!r} used by EIXO {names[name]} too"))
        names[name] = number
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
            else:
                for error in _validator(definition.params_schema).iter_errors(params):
                    sub = [*where, "with", *error.absolute_path]
                    problems.append(doc.problem(sub, f"{json_path(sub)}: {error.message}"))
            placed[check_id] = (number, ci)
            refs.append(CheckRef(check_id, params, definition, entry.get("title")))
        requires = tuple(stage.get("requires", []))
        for ri, required in enumerate(requires):
            if required >= number:
                problems.append(
                    doc.problem(["stages", si, "requires", ri], f"stage {number} can only require earlier stages")
                )
        stages[number] = StageSpec(number, name, stage["title"], stage.get("objective", ""), tuple(refs), requires)

    problems += _prerequisite_problems(doc, raw["stages"], stages, placed)

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

    stack = _stack_description(root, doc, problems) if with_stack else None
    if problems:
        raise InputError(*problems)
    return Spec(raw["id"], path, relpath, raw, dict(sorted(stages.items())), criteria, waivers, waiver_rel, stack)


def _stack_description(root: Path, doc: Located, problems: list[Problem]) -> StackDescription | None:
    """The stack description the spec names (`stack:`), else the default one when the project has it."""
    named = doc.value.get("stack")
    relpath = named or DEFAULT_STACK_PATH
    if not (root / relpath).is_file():
        if named:
            problems.append(doc.problem(["stack"], f"stack description {named!r} not found"))
        return None
    try:
        return load_description(root, relpath)
    except InputError as exc:
        problems.extend(exc.problems)
        return None


def _prerequisite_problems(
    doc: Located, raw_stages: list[dict[str, Any]], stages: dict[int, StageSpec], placed: dict[str, tuple[int, int]]
) -> list[Problem]:
    """A check's `requires` must be placed before it: earlier in its EIXO, or in an earlier EIXO."""
    problems = []
    for si, raw_stage in enumerate(raw_stages):
        stage = stages.get(raw_stage["number"])
        if stage is None:
            continue
        for ci, ref in enumerate(stage.checks):
            for required in ref.definition.requires if ref.definition else ():
                if placed.get(required, (stage.number + 1, 0)) >= placed[ref.id]:
                    problems.append(
                        doc.problem(
                            ["stages", si, "checks", ci, "id"],
                            f"check {ref.id!r} requires {required!r}, which the spec must place before it "
                            "(earlier in this EIXO or in an earlier one)",
                        )
                    )
    return problems


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
        kind = next(k for k in ("check", "criterion", "test", "alert") if k in entry)
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

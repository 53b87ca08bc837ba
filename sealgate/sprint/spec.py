"""Sprint specs: `sprint/<ID>.yaml` (+ optional `sprint/<ID>.waivers.yaml`), validated with every problem reported
as `file:line: what is wrong` — schema errors, unknown check ids, duplicates, dangling references, expired waivers.

The loader is handed the check registry (the library and the spec's plugins already registered: run/plan.py does
that), so reading a spec never imports a check. It makes one pass per part of the spec — stages, prerequisites,
criteria, the narrative's references, the base, waivers, the stack description — each adding its problems to one
list, so a user sees every mistake at once.

Repository paths in a check's `with:` are resolved here too: a parameter whose schema says `"format": "repo-path"`
(a file or folder that must exist) or `"format": "repo-glob"` (a glob that must match a file; `**` crosses
folders, as the checks expand it) is looked up when the spec loads, so a path that matches nothing is bad input at
the spec's line — before a stage runs, the stack starts or any evidence is written — not a check failing later.
"""

from __future__ import annotations

import datetime
import difflib
import glob
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema

from sealgate.backends.description import DEFAULT_PATH as DEFAULT_STACK_PATH
from sealgate.backends.description import StackDescription, load_description
from sealgate.kernel.errors import InputError, Problem
from sealgate.kernel.schemas import load_schema, validator
from sealgate.kernel.yamlsource import Located, json_path, load_yaml, schema_problems
from sealgate.model.registry import Registry
from sealgate.sprint.model import CheckRef, Criterion, FindingMatcher, Spec, StageSpec, Waiver

SPRINT_DIR = "sprint"
# The JSON Schema `format`s of a check parameter naming repository files (api/params.py has the fragments checks use).
REPO_PATH_FORMAT = "repo-path"  # a repository-relative file or folder that must exist
REPO_GLOB_FORMAT = "repo-glob"  # a repository-relative glob that must match at least one file
WAIVER_KINDS = ("check", "criterion", "test", "alert")
FAILURE_VERDICTS = ("failed", "errored")


def natural_key(text: str) -> list[Any]:
    """F9.9 before F9.10: digits compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def spec_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if not p.name.endswith(".waivers.yaml"))


def find_spec(root: Path, sprint_id: str | None) -> Path:
    """`sprint/<ID>.yaml`, or the newest spec (natural order: F9.10 after F9.9) when no id is given."""
    directory = root / SPRINT_DIR
    if sprint_id:
        path = directory / f"{sprint_id}.yaml"
        if not path.is_file():
            known = ", ".join(p.stem for p in spec_files(directory)) or "none"
            raise InputError(
                Problem(f"{SPRINT_DIR}/{sprint_id}.yaml", "no such sprint spec", f"known sprints: {known}")
            )
        return path
    candidates = spec_files(directory)
    if not candidates:
        raise InputError(Problem(f"{SPRINT_DIR}/", "no sprint spec found", "write sprint/<ID>.yaml (see README)"))
    return max(candidates, key=lambda p: natural_key(p.stem))


def _sprint_schema() -> dict[str, Any]:
    return load_schema("sealgate.sprint", "sprint.schema.json")


def _validator(schema: dict[str, Any]) -> Any:
    """Check parameter schemas may `$ref` the sprint schema's definitions."""
    return validator(schema, _sprint_schema())


class RepositoryPathMiss(ValueError):
    """A `repo-path` / `repo-glob` parameter that names nothing in the repository: what is wrong, what to do."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint


def repository_path_problem(root: Path, value: str, *, is_glob: bool) -> RepositoryPathMiss | None:
    """Why `value` (a `with:` path or glob) names nothing in the repository at `root`, or None when it does. A glob
    matches as the checks expand it (files only, `**` crossing folders); a path may be a file or a folder."""
    try:
        return _path_problem(root, value, is_glob)
    except (OSError, ValueError) as exc:  # a NUL byte, a name longer than the filesystem allows, …
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return RepositoryPathMiss(f"{_shown(value)} is not a usable path ({why})", "name a file of the repository")


def _path_problem(root: Path, value: str, is_glob: bool) -> RepositoryPathMiss | None:
    if PurePosixPath(value).is_absolute():
        return RepositoryPathMiss(f"{_shown(value)} is an absolute path", "give it relative to the repository root")
    fixed = re.split(r"[*?\[]", value, maxsplit=1)[0] if is_glob else value
    if not (root / fixed).resolve().is_relative_to(root.resolve()):
        return RepositoryPathMiss(f"{_shown(value)} leaves the repository", "name a file inside it")
    if is_glob:
        if any(Path(root, match).is_file() for match in glob.iglob(value, root_dir=root, recursive=True)):
            return None
        what = f"{_shown(value)} matches no file in the repository"
    else:
        if (root / value).exists():
            return None
        what = f"{_shown(value)} is not in the repository"
    near = _nearest_existing(root, value, is_glob)
    return RepositoryPathMiss(what, f"did you mean {near!r}?" if near else "paths are relative to the repository root")


def _shown(value: str, limit: int = 120) -> str:
    """The value as a message quotes it: whole when it is a path a person wrote, cut when it is not."""
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")


def _nearest_existing(root: Path, value: str, is_glob: bool) -> str | None:
    """`value` with its first missing part replaced by the closest name in the folder above it, when that names
    something (a typo in a folder or file name)."""
    parts = PurePosixPath(value).parts
    folder = root
    for index, part in enumerate(parts):
        if glob.has_magic(part):
            return None
        if (folder / part).exists():
            folder = folder / part
            continue
        names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        for close in difflib.get_close_matches(part, names, n=3):
            candidate = "/".join([*parts[:index], close, *parts[index + 1 :]])
            if repository_path_problem(root, candidate, is_glob=is_glob) is None:
                return candidate
        return None
    return None


def _repository_formats(root: Path, cls: Any) -> jsonschema.FormatChecker:
    """The draft's format checker plus `repo-path` and `repo-glob`, resolved against the repository at `root`."""
    checker = jsonschema.FormatChecker(cls.FORMAT_CHECKER.checkers)
    for name, is_glob in ((REPO_PATH_FORMAT, False), (REPO_GLOB_FORMAT, True)):

        def names_something(value: object, is_glob: bool = is_glob) -> bool:
            if not isinstance(value, str):  # a wrong type is the `type` keyword's error
                return True
            miss = repository_path_problem(root, value, is_glob=is_glob)
            if miss is not None:
                raise miss
            return True

        checker.checks(name, raises=RepositoryPathMiss)(names_something)
    return checker


def params_validator(schema: dict[str, Any], root: Path | None = None) -> Any:
    """A validator of a check's `with:` schema; given the repository's `root`, its path parameters must name
    something there (without it — judging recorded evidence — they are only strings)."""
    checker = _validator(schema)
    return checker if root is None else checker.evolve(format_checker=_repository_formats(root, type(checker)))


@dataclass
class SpecSource:
    """A spec file read and schema-validated, not yet resolved against a registry."""

    path: Path
    relpath: str
    doc: Located

    @property
    def raw(self) -> dict[str, Any]:
        return self.doc.value

    def plugins(self) -> list[tuple[str, str]]:
        """(repository-relative path, where the spec names it) of each plugin the spec loads."""
        return [(str(p), self.doc.where(["plugins", i])) for i, p in enumerate(self.raw.get("plugins", []))]


def read_spec(root: Path, sprint_id: str | None = None) -> SpecSource:
    root = root.resolve()
    path = find_spec(root, sprint_id)
    relpath = path.relative_to(root).as_posix()
    doc = load_yaml(path, relpath)
    if not isinstance(doc.value, dict):
        raise InputError(Problem(f"{relpath}:1", "a sprint spec must be a YAML mapping"))
    problems = schema_problems(doc, _validator(_sprint_schema()))
    if problems:
        raise InputError(*problems)
    return SpecSource(path, relpath, doc)


def load_spec(
    root: Path,
    sprint_id: str | None,
    registry: Registry,
    *,
    today: datetime.date | None = None,
    with_stack: bool = True,
    source: SpecSource | None = None,
) -> Spec:
    """Load, validate and resolve a sprint spec against `registry`; raise InputError listing every problem found.

    `with_stack=False` leaves the stack description unread (`spec.stack` is None) and the `with:` paths unresolved:
    what judges evidence already recorded (verify, from the spec as of the judged commit, without its files) needs
    the criteria and waivers, not the stack or the files the run read."""
    root = root.resolve()
    source = source or read_spec(root, sprint_id)
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    return _SpecReader(root, source, registry, today, resolve_paths=with_stack).read(with_stack)


@dataclass
class _SpecReader:
    root: Path
    source: SpecSource
    registry: Registry
    today: datetime.date
    resolve_paths: bool = True  # `repo-path` / `repo-glob` parameters must name something in the repository
    problems: list[Problem] = field(default_factory=list)
    stages: dict[int, StageSpec] = field(default_factory=dict)
    placed: dict[str, tuple[int, int]] = field(default_factory=dict)  # check id -> (its stage, its index there)

    @property
    def doc(self) -> Located:
        return self.source.doc

    @property
    def raw(self) -> dict[str, Any]:
        return self.source.raw

    def problem(self, path: list[Any], what: str, hint: str = "") -> None:
        self.problems.append(self.doc.problem(path, what, hint))

    def read(self, with_stack: bool) -> Spec:
        path = self.source.path
        if path.stem != self.raw["id"]:
            self.problem(["id"], f"id {self.raw['id']!r} does not match the file name {path.name!r}")
        self.read_stages()
        self.check_prerequisites()
        criteria = self.read_criteria()
        self.check_narrative_references()
        self.check_base()
        waivers, waiver_rel = self.read_waivers()
        stack = self.read_stack() if with_stack else None
        if self.problems:
            raise InputError(*self.problems)
        return Spec(
            self.raw["id"], path, self.source.relpath, self.raw, dict(sorted(self.stages.items())), criteria,
            waivers, waiver_rel, stack,
        )  # fmt: skip

    # --- one pass per part of the spec -----------------------------------------------------------------------------
    def read_stages(self) -> None:
        names: dict[str, int] = {}
        for si, stage in enumerate(self.raw["stages"]):
            number = stage["number"]
            if number in self.stages:
                self.problem(["stages", si, "number"], f"stage {number} declared twice")
                continue
            name = stage["name"]
            if name in names:
                self.problem(["stages", si, "name"], f"stage name {name!r} used by stage {names[name]} too")
            names[name] = number
            refs = [ref for ci, entry in enumerate(stage["checks"]) if (ref := self.check_ref(si, ci, entry, number))]
            requires = tuple(stage.get("requires", []))
            for ri, required in enumerate(requires):
                if required >= number:
                    self.problem(["stages", si, "requires", ri], f"stage {number} can only require earlier stages")
            self.stages[number] = StageSpec(
                number, name, stage["title"], stage.get("objective", ""), tuple(refs), requires
            )

    def check_ref(self, si: int, ci: int, entry: dict[str, Any], number: int) -> CheckRef | None:
        where = ["stages", si, "checks", ci]
        check_id = entry["id"]
        if check_id in self.placed or self.registry.canonical(check_id) in self.placed_canonical():
            self.problem([*where, "id"], f"check {check_id!r} listed twice")
            return None
        definition = self.registry.get(check_id)
        params = entry.get("with", {})
        if definition is None:
            if not entry.get("planned", False):
                close = difflib.get_close_matches(check_id, list(self.registry), n=1)
                hint = f"did you mean {close[0]!r}?" if close else "mark it `planned: true` if it is not written yet"
                self.problem([*where, "id"], f"unknown check id {check_id!r}", hint)
        else:
            checker = params_validator(definition.params_schema, self.root if self.resolve_paths else None)
            for error in checker.iter_errors(params):
                sub = [*where, "with", *error.absolute_path]
                if isinstance(error.cause, RepositoryPathMiss):
                    self.problem(sub, f"{json_path(sub)}: {error.cause.what}", error.cause.hint)
                else:
                    self.problem(sub, f"{json_path(sub)}: {error.message}")
        self.placed[check_id] = (number, ci)
        return CheckRef(check_id, params, definition, entry.get("title"))

    def placed_canonical(self) -> set[str]:
        return {self.registry.canonical(check_id) for check_id in self.placed}

    def check_prerequisites(self) -> None:
        """A check's `requires` must be placed before it: earlier in its stage, or in an earlier stage."""
        where_placed = {self.registry.canonical(k): v for k, v in self.placed.items()}
        for si, raw_stage in enumerate(self.raw["stages"]):
            stage = self.stages.get(raw_stage["number"])
            if stage is None:
                continue
            for ci, ref in enumerate(stage.checks):
                for required in ref.definition.requires if ref.definition else ():
                    if where_placed.get(required, (stage.number + 1, 0)) >= self.placed[ref.id]:
                        self.problem(
                            ["stages", si, "checks", ci, "id"],
                            f"check {ref.id!r} requires {required!r}, which the spec must place before it "
                            "(earlier in this stage or in an earlier one)",
                        )

    def read_criteria(self) -> list[Criterion]:
        criteria = []
        seen: set[str] = set()
        for ci, criterion in enumerate(self.raw["criteria"]):
            if criterion["id"] in seen:
                self.problem(["criteria", ci, "id"], f"criterion {criterion['id']!r} declared twice")
            seen.add(criterion["id"])
            checks: list[str] = []
            for ki, check_id in enumerate(criterion.get("checks", [])):
                if check_id not in self.placed:
                    self.problem(
                        ["criteria", ci, "checks", ki],
                        f"criterion {criterion['id']} names check {check_id!r}, which no stage runs",
                    )
                checks.append(check_id)
            for ki, number in enumerate(criterion.get("stages", [])):
                if number not in self.stages:
                    self.problem(
                        ["criteria", ci, "stages", ki],
                        f"criterion {criterion['id']} names stage {number}, which the spec does not declare",
                    )
                    continue
                checks += [ref.id for ref in self.stages[number].checks if ref.id not in checks]
            criteria.append(Criterion(criterion["id"], criterion["title"], tuple(checks)))
        return criteria

    def check_narrative_references(self) -> None:
        for key in ("decisions", "risks"):
            for di, item in enumerate(self.raw.get(key, [])):
                for ki, check_id in enumerate(item.get("checks", [])):
                    if check_id not in self.placed:
                        self.problem(
                            [key, di, "checks", ki],
                            f"{key[:-1]} {item['id']} names check {check_id!r}, which no stage runs",
                        )

    def check_base(self) -> None:
        if self.raw.get("base_tag") is None and not self.raw.get("first_in_chain", False):
            self.problem(
                ["base_tag"], "no base_tag", "set base_tag, or first_in_chain: true for a chain's first sprint"
            )

    def read_waivers(self) -> tuple[list[Waiver], str | None]:
        waivers = self.waivers_of(self.doc, self.raw.get("waivers", []))
        waiver_path = self.source.path.with_name(f"{self.source.path.stem}.waivers.yaml")
        if not waiver_path.is_file():
            return waivers, None
        waiver_rel = waiver_path.relative_to(self.root).as_posix()
        wdoc = load_yaml(waiver_path, waiver_rel)
        problems = (
            schema_problems(wdoc, _validator(load_schema("sealgate.sprint", "waivers.schema.json")))
            if isinstance(wdoc.value, dict)
            else [Problem(f"{waiver_rel}:1", "a waiver file must be a mapping with a 'waivers' list")]
        )
        self.problems += problems
        if not problems:
            waivers += self.waivers_of(wdoc, wdoc.value["waivers"])
        return waivers, waiver_rel

    def waivers_of(self, doc: Located, entries: list[dict[str, Any]]) -> list[Waiver]:
        waivers = []
        seen: set[tuple[str, str]] = set()
        for wi, entry in enumerate(entries):
            where = ["waivers", wi]
            kind = next(k for k in WAIVER_KINDS if k in entry)
            target = entry[kind]
            if kind == "check" and target not in self.placed:
                self.problems.append(doc.problem([*where, kind], f"waiver names check {target!r}, which no stage runs"))
            if kind == "criterion" and target not in {c["id"] for c in self.raw["criteria"]}:
                self.problems.append(
                    doc.problem([*where, kind], f"waiver names criterion {target!r}, which the spec does not declare")
                )
            if (kind, target) in seen:
                self.problems.append(doc.problem([*where, kind], f"{kind} {target!r} waived twice"))
            seen.add((kind, target))
            expires = datetime.date.fromisoformat(entry["expires"])
            if expires < self.today:
                self.problems.append(
                    doc.problem(
                        [*where, "expires"],
                        f"waiver for {kind} {target!r} expired on {expires}",
                        "renew it with a new approval or remove it",
                    )
                )
            accepts = tuple(entry.get("accepts", ("skipped",)))
            reason = self.pattern(doc, [*where, "reason"], entry.get("reason"))
            matchers = self.finding_matchers(doc, where, entry, kind, target, accepts)
            waivers.append(
                Waiver(
                    kind, target, entry["justification"], entry["approver"], expires, doc.where(where), accepts,
                    reason, matchers,
                )
            )  # fmt: skip
        return waivers

    def finding_matchers(
        self, doc: Located, where: list[Any], entry: dict[str, Any], kind: str, target: str, accepts: tuple[str, ...]
    ) -> tuple[FindingMatcher, ...]:
        """A waiver that accepts a failure names the findings it covers; one that accepts only skips names none."""
        failures = [a for a in accepts if a in FAILURE_VERDICTS]
        entries = entry.get("findings") or []
        if failures and kind not in ("check", "criterion"):
            self.problems.append(
                doc.problem(
                    [*where, "accepts"], f"a waiver of a {kind} accepts only skipped, not {', '.join(failures)}"
                )
            )
            return ()
        if failures and not entries:
            self.problems.append(
                doc.problem(
                    [*where, "accepts"],
                    f"waiver for {kind} {target!r} accepts {' and '.join(failures)} without naming the findings it "
                    "covers (a waiver never hides more than it names)",
                    'name them, e.g. findings: [{file: "prometheus/alerts/*.yml", rule: "NodeDown", '
                    'message: "not exported"}] — any other finding still fails the check',
                )
            )
        if entries and not failures:
            self.problems.append(
                doc.problem(
                    [*where, "findings"],
                    "findings: only a waiver that accepts failed or errored covers findings (a skip has none)",
                    "add accepts: [failed], or remove findings",
                )
            )
        matchers = []
        for mi, item in enumerate(entries):
            at = [*where, "findings", mi]
            for key in ("rule", "metric", "message"):
                self.pattern(doc, [*at, key], item.get(key))
            matchers.append(
                FindingMatcher(
                    item.get("file"), item.get("rule"), item.get("metric"), item.get("message"), doc.where(at)
                )
            )
        return tuple(matchers)

    def pattern(self, doc: Located, path: list[Any], value: str | None) -> str | None:
        """A regular expression of a waiver, refused at its line when it does not compile."""
        if value is None:
            return None
        try:
            re.compile(value)
        except re.error as exc:
            self.problems.append(doc.problem(path, f"{json_path(path)}: not a regular expression: {exc}"))
        return value

    def read_stack(self) -> StackDescription | None:
        """The stack description the spec names (`stack:`), else the default one when the project has it."""
        named = self.raw.get("stack")
        relpath = named or DEFAULT_STACK_PATH
        if not (self.root / relpath).is_file():
            if named:
                self.problem(["stack"], f"stack description {named!r} not found")
            return None
        try:
            return load_description(self.root, relpath)
        except InputError as exc:
            self.problems.extend(exc.problems)
            return None

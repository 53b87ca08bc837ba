"""`sealgate checks`: the check catalogue — every registered check, and one check's parameters and an example `with:`
block, read from the very JSON Schema the spec loader validates `with:` against (so the catalogue cannot describe
parameters the loader would refuse). `docs/checks.md` is this module's markdown; a test fails when it drifts.

A check's **stage kind** is derived from its id's room (`rules/alert-drill` suits a stage of kind `rules`): a check
belongs to no stage (the spec places it), and the room is the kind of stage the library wrote it for — the names
F9.10 gives its stages (preflight, containerize, rules, backup, env_config, dashboard, tests) are exactly the rooms.
No field is added to `@check` for it: one more thing to keep in step with the id would only drift from it.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sealgate.kernel.errors import InputError, Problem
from sealgate.kernel.schemas import load_schema
from sealgate.model.registry import Registry
from sealgate.model.results import CheckDef
from sealgate.sprint.spec import REPO_GLOB_FORMAT, REPO_PATH_FORMAT, params_validator

LIBRARY_MODULE = "sealgate.checks."
DOCS_PAGE = "docs/checks.md"
REGENERATE = f"sealgate checks --markdown > {DOCS_PAGE}"
# What an example says for a path parameter the check gives no `examples` for.
PLACEHOLDERS = {REPO_PATH_FORMAT: "path/to/file", REPO_GLOB_FORMAT: "path/to/*.yml"}
FORMAT_WORDS = {
    REPO_PATH_FORMAT: "repository path (must exist when the spec loads)",
    REPO_GLOB_FORMAT: "repository glob (must match a file when the spec loads)",
}
Printer = Callable[[str], None]


def languages() -> list[str]:
    """The languages a spec may be written in (its `language:`): those a check title may be shown in."""
    return list(load_schema("sealgate.sprint", "sprint.schema.json")["properties"]["language"]["enum"])


def stage_kind(check_id: str) -> str:
    """The kind of stage a check suits: its id's room (see the module docstring)."""
    return check_id.split("/", 1)[0]


def is_library(definition: CheckDef) -> bool:
    return definition.identity.startswith(LIBRARY_MODULE)


@dataclass(frozen=True)
class Param:
    """One parameter of a check's `with:` block, nested ones named by their path (`phases[].fault.stop`)."""

    name: str
    type: str
    required: bool
    default: Any = None
    has_default: bool = False
    description: str = ""


class ExampleError(ValueError):
    """The schema alone cannot make a valid example: the check's params schema needs `examples`."""


# --- reading a params schema --------------------------------------------------------------------------------------


def type_text(schema: dict[str, Any]) -> str:
    """A parameter's type in words: `list of repository glob (…), non-empty`, `integer ≥ 1`, `one of: a, b`."""
    if "const" in schema:
        return f"= {json.dumps(schema['const'])}"
    if "enum" in schema:
        return "one of: " + ", ".join(json.dumps(v) if not isinstance(v, str) else v for v in schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema and _alternatives(schema):
            return " or ".join(type_text(branch) for branch in schema[key])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "string":
        words = FORMAT_WORDS.get(str(schema.get("format")), "string")
        return f"{words} matching `{schema['pattern']}`" if "pattern" in schema else words
    if kind in ("integer", "number"):
        return kind + _bounds(schema)
    if kind == "object" and _one_key_of(schema):
        return f"mapping with exactly one of: {', '.join(_one_key_of(schema))}"
    if kind == "array":
        items = schema.get("items")
        text = f"list of {type_text(items)}" if isinstance(items, dict) and items else "list"
        least = int(schema.get("minItems", 0))
        text += ", non-empty" if least == 1 else f", at least {least}" if least > 1 else ""
        return text + (", no repeats" if schema.get("uniqueItems") else "")
    if kind == "object" or "properties" in schema or "additionalProperties" in schema:
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and not schema.get("properties"):
            names = schema.get("propertyNames", {})
            key = f"name matching `{names['pattern']}`" if "pattern" in names else "name"
            return f"map of {key} → {type_text(values)}"
        return "mapping"
    if kind:
        return str(kind)
    return "any"


def _one_key_of(schema: dict[str, Any]) -> list[str]:
    """The keys of a `oneOf: [{required: [a]}, {required: [b]}, …]` (or of a mapping of exactly one property): a
    mapping that needs exactly one of them."""
    if schema.get("minProperties") == schema.get("maxProperties") == 1 and schema.get("properties"):
        return list(schema["properties"])
    branches = schema.get("oneOf", [])
    if branches and all(set(b) == {"required"} and len(b["required"]) == 1 for b in branches):
        return [b["required"][0] for b in branches]
    return []


def _alternatives(schema: dict[str, Any]) -> bool:
    """A oneOf/anyOf that lists what the value may be (a string or a mapping), not constraints on a value the schema
    types itself (a step that needs one of get, post or wait)."""
    return "type" not in schema and "properties" not in schema


def _bounds(schema: dict[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f" {low}–{high}"
    if "exclusiveMinimum" in schema:
        return f" > {schema['exclusiveMinimum']}" + (f", ≤ {high}" if high is not None else "")
    if low is not None:
        return f" ≥ {low}"
    return f" ≤ {high}" if high is not None else ""


def parameters(schema: dict[str, Any]) -> list[Param]:
    """Every parameter the schema declares, nested ones after their parent, in the schema's order."""
    rows: list[Param] = []
    _walk(schema, "", rows)
    return rows


def _walk(schema: dict[str, Any], prefix: str, rows: list[Param]) -> None:
    required = set(schema.get("required", []))
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict):  # `false`: a key forbidden in one branch (if/then)
            continue
        path = f"{prefix}{name}"
        rows.append(
            Param(path, type_text(sub), name in required, sub.get("default"), "default" in sub,
                  str(sub.get("description", "")))
        )  # fmt: skip
        _descend(sub, path, rows)


def _descend(schema: dict[str, Any], path: str, rows: list[Param]) -> None:
    """The parameters inside one: an object's keys, a list's items, a map's values, each branch of a oneOf."""
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        _descend(branch, path, rows)
    if schema.get("properties"):
        _walk(schema, f"{path}.", rows)
    items = schema.get("items")
    if isinstance(items, dict):
        _descend(items, f"{path}[]", rows)
    values = schema.get("additionalProperties")
    if isinstance(values, dict) and not schema.get("properties"):
        _descend(values, f"{path}.<name>", rows)


# --- an example `with:` block -------------------------------------------------------------------------------------


def example_params(definition: CheckDef) -> dict[str, Any]:
    """A `with:` block the check's schema accepts: the schema's own `examples` where it has them, else one made from
    it — every required parameter, and each optional one whose schema gives a value of its own (`examples`, a
    default) and keeps the block valid; an invented value for an optional one would only mislead. ExampleError when
    no valid block comes out."""
    schema = definition.params_schema
    checker = params_validator(schema)  # structure only: an example's paths are the reader's to replace
    if schema.get("examples"):
        made = copy.deepcopy(schema["examples"][0])
    else:
        properties = schema.get("properties") or {}
        required = [n for n in schema.get("required", []) if n in properties]
        made = {name: _example(properties[name]) for name in required}
        if not list(checker.iter_errors(made)):
            for name, sub in properties.items():
                if name in made or not isinstance(sub, dict) or not ({"examples", "default"} & set(sub)):
                    continue
                trial = {**made, name: _example(sub)}
                if not list(checker.iter_errors(trial)):
                    made = trial
    errors = [f"{'.'.join(map(str, e.absolute_path)) or 'with'}: {e.message}" for e in checker.iter_errors(made)]
    if errors:
        raise ExampleError(f"{definition.id}: no valid example from its schema ({'; '.join(errors)}): add `examples`")
    return made


def _example(schema: dict[str, Any]) -> Any:
    if schema.get("examples"):
        return copy.deepcopy(schema["examples"][0])
    for key in ("const", "default"):
        if key in schema:
            return copy.deepcopy(schema[key])
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if key in schema and _alternatives(schema):
            return _example(schema[key][0])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "string":
        return PLACEHOLDERS.get(str(schema.get("format")), "example")
    if kind in ("integer", "number"):
        value = schema.get("minimum", schema["exclusiveMinimum"] + 1 if "exclusiveMinimum" in schema else 1)
        return min(value, schema["maximum"]) if "maximum" in schema else value
    if kind == "boolean":
        return False
    if kind == "array":
        items = schema.get("items")
        one = _example(items) if isinstance(items, dict) else "example"
        return [one] * max(int(schema.get("minItems", 1)), 1)
    if kind == "object" or "properties" in schema or "additionalProperties" in schema:
        properties = schema.get("properties") or {}
        values = schema.get("additionalProperties")
        made = {}
        for name in schema.get("required", []):  # a required key the map's values describe (`alertname`)
            sub = properties.get(name, values)
            if isinstance(sub, dict):
                made[name] = _example(sub)
        if not made and not properties and isinstance(values, dict):
            made["name"] = _example(values)
        return made
    return "example"


def example_block(definition: CheckDef) -> str:
    """The check as a spec places it: `- id: …` and its `with:` (YAML)."""
    entry: dict[str, Any] = {"id": definition.id}
    params = example_params(definition)
    if params:
        entry["with"] = params
    return yaml.dump([entry], Dumper=_SpecDumper, sort_keys=False, allow_unicode=True, width=100).rstrip("\n")


class _SpecDumper(yaml.SafeDumper):
    """YAML as the specs are written: lists indented under their key, a list of plain values on one line."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(not isinstance(item, (dict, list)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_SpecDumper.add_representer(list, _represent_list)


# --- the verbs ----------------------------------------------------------------------------------------------------


def checks_of(registry: Registry, *, library_only: bool = False) -> list[CheckDef]:
    """Registered checks, by stage kind then id (a stable order, whatever order the modules registered them in)."""
    chosen = [d for d in registry.values() if is_library(d) or not library_only]
    return sorted(chosen, key=lambda d: (stage_kind(d.id), d.id))


def find(registry: Registry, check_id: str) -> CheckDef:
    definition = registry.get(check_id)
    if definition is None:
        close = difflib.get_close_matches(check_id, list(registry), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "`sealgate checks` lists every check"
        raise InputError(Problem("", f"no check {check_id!r}", hint))
    return definition


def list_text(definitions: Iterable[CheckDef], language: str, out: Printer) -> None:
    rows = [(d.id, stage_kind(d.id), _yes(d.needs_stack), d.title_in(language)) for d in definitions]
    width = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(("CHECK", "STAGE KIND"))]
    out(f"{'CHECK':<{width[0]}}  {'STAGE KIND':<{width[1]}}  STACK  TITLE")
    for check_id, kind, stack, title in rows:
        out(f"{check_id:<{width[0]}}  {kind:<{width[1]}}  {stack:<5}  {title}")
    out(f"{len(rows)} checks; `sealgate checks ID` shows one's parameters and an example")


def detail_text(definition: CheckDef, language: str, out: Printer, asked: str | None = None) -> None:
    out(f"{definition.id} — {definition.title_in(language)}")
    if asked and asked != definition.id:
        out(f"  ({asked} is its former id)")
    for label, value in _facts(definition):
        out(f"  {label}: {value}")
    rows = parameters(definition.params_schema)
    if not rows:
        out("parameters: none")
    else:
        out("parameters (`with:`):")
        width = max(len(r.name) for r in rows)
        for row in rows:
            extra = [f"default {json.dumps(row.default)}"] if row.has_default else []
            extra += [row.description] if row.description else []
            out(
                f"  {row.name:<{width}}  {'required' if row.required else 'optional'}  {row.type}"
                + (f" — {'; '.join(extra)}" if extra else "")
            )
    out("example:")
    for line in example_block(definition).splitlines():
        out(f"  {line}")


def _facts(definition: CheckDef) -> list[tuple[str, str]]:
    facts = [
        ("stage kind", stage_kind(definition.id)),
        ("needs the stack", "yes (the stage brings it up)" if definition.needs_stack else "no (static)"),
    ]
    if definition.requires:
        facts.append(("requires", ", ".join(definition.requires) + " (placed before it)"))
    if definition.aliases:
        facts.append(("former ids", ", ".join(definition.aliases)))
    if definition.concurrent:
        facts.append(("concurrent", "runs on while later stages run"))
    if definition.volatile:
        facts.append(("volatile", "judges the environment: its stage's evidence is never reused"))
    return facts


def markdown(registry: Registry) -> str:
    """docs/checks.md: the library's checks, their parameters and an example each (English titles, pt-BR beside)."""
    definitions = checks_of(registry, library_only=True)
    lines = [
        "# The check library",
        "",
        f"Generated from the code by `{REGENERATE}` — do not edit: `tests/core/test_catalogue.py` fails",
        "when this page and the checks' definitions differ. Each parameter is read from the JSON Schema the spec",
        "loader validates `with:` against. A check's stage kind is its id's room; *needs the stack* means its stage",
        "brings the stack up. Repository paths and globs in `with:` are resolved when the spec loads: one that names",
        "nothing is bad input, at the spec's line.",
        "",
        f"{len(definitions)} checks.",
        "",
        "| check | stage kind | needs the stack | title |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{d.id}` | {stage_kind(d.id)} | {_yes(d.needs_stack)} | {_cell(d.title)} |" for d in definitions]
    kind = None
    for definition in definitions:
        if stage_kind(definition.id) != kind:
            kind = stage_kind(definition.id)
            lines += ["", f"## {kind}"]
        lines += ["", f"### `{definition.id}`", "", definition.title, ""]
        for language, title in sorted(definition.titles.items()):
            lines += [f"{language}: {title}", ""]
        lines += [f"- {label}: {value}" for label, value in _facts(definition)]
        rows = parameters(definition.params_schema)
        lines.append("")
        if rows:
            lines += ["| parameter | required | type | default | description |", "|---|---|---|---|---|"]
            lines += [
                f"| `{r.name}` | {'yes' if r.required else 'no'} | {_cell(r.type)} | "
                f"{_cell(json.dumps(r.default)) if r.has_default else ''} | {_cell(r.description)} |"
                for r in rows
            ]
        else:
            lines.append("No parameters.")
        lines += ["", "```yaml", example_block(definition), "```"]
    return "\n".join(lines) + "\n"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def load_registry(root: Path, sprint: str | None) -> Registry:
    """The library's checks, and with `sprint` also the plugins that spec loads (a team's own checks)."""
    from sealgate.api.registry import load_plugins
    from sealgate.checks import library
    from sealgate.sprint.spec import read_spec

    registry = library()
    if sprint:
        problems = load_plugins(root, read_spec(root, sprint).plugins())
        if problems:
            raise InputError(*problems)
    return registry


def checks(
    root: Path,
    check_id: str | None,
    *,
    language: str = "en",
    as_markdown: bool = False,
    sprint: str | None = None,
    out: Printer = print,
) -> int:
    """The `sealgate checks` verb: the list, one check's detail, or the markdown page."""
    if language not in languages():
        raise InputError(
            Problem("--language", f"{language!r} is not a language a spec may use", ", ".join(languages()))
        )
    registry = load_registry(root, sprint)
    if as_markdown:
        out(markdown(registry).rstrip("\n"))
    elif check_id:
        detail_text(find(registry, check_id), language, out, asked=check_id)
    else:
        list_text(checks_of(registry), language, out)
    return 0

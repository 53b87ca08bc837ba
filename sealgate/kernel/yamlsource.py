"""YAML loading that remembers where every value came from, so errors can say `file:line`.

PyYAML's composer gives nodes with marks; we build plain Python values from them ourselves and keep a
JSON-path → line map. Building it ourselves also bounds the work: aliases that expand into millions of nodes
(a "billion laughs" document) are refused instead of exhausting memory.
"""

from __future__ import annotations

import datetime
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sealgate.kernel.errors import InputError, Problem

if TYPE_CHECKING:  # validating imports jsonschema; reading YAML (every lint run) does not
    import jsonschema

MAX_BYTES = 2 * 1024 * 1024  # hand-written files (specs, waivers, configs); callers may lift it
MAX_NODES = 200_000  # at least; more for a larger text (see parse_yaml)
# libyaml's parser when PyYAML was built with it (10× faster on large rule sets); same nodes, same marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"


@dataclass
class Located:
    """A parsed document plus the line (1-based) of every value, keyed by JSON path tuple."""

    value: Any
    display: str  # path shown in messages, relative to the repository
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def line_of(self, path: tuple[Any, ...] | list[Any]) -> int | None:
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]  # a missing key: point at its parent
        return self.lines.get(path)

    def where(self, path: tuple[Any, ...] | list[Any]) -> str:
        line = self.line_of(path)
        return f"{self.display}:{line}" if line else self.display

    def problem(self, path: tuple[Any, ...] | list[Any], what: str, hint: str = "") -> Problem:
        return Problem(self.where(path), what, hint)


def load_yaml(path: Path, display: str, max_bytes: int | None = MAX_BYTES) -> Located:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(Problem(display, f"cannot read: {exc.strerror}")) from None
    if max_bytes is not None and size > max_bytes:
        raise InputError(Problem(display, f"file is {size} bytes, larger than the {max_bytes} allowed")) from None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(Problem(display, f"not UTF-8 text ({exc.reason} at byte {exc.start})")) from None
    return parse_yaml(text, display)


def parse_yaml(text: str, display: str) -> Located:
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{display}:{mark.line + 1}" if mark else display
        raise InputError(Problem(where, f"YAML syntax error: {exc.problem or exc.context}")) from None
    except yaml.YAMLError as exc:
        raise InputError(Problem(display, f"YAML error: {exc}")) from None
    located = Located(None, display)
    if node is None:
        return located
    # Without aliases a document holds at most about one value per character (`a:` is two, a key and its null): a
    # budget that grows with the text never refuses a real file, however large, and still stops aliases that
    # expand into millions of values.
    budget = [max(MAX_NODES, 2 * len(text))] * 2  # [left, limit]
    located.value = _build(node, (), located, budget, yaml.SafeLoader(""))
    return located


def _build(
    node: yaml.Node, path: tuple[Any, ...], located: Located, budget: list[int], constructor: yaml.SafeLoader
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise InputError(
            Problem(located.display, f"document expands to more than {budget[1]} values (YAML alias bomb?)")
        )
    located.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # `<<: *anchor` (Compose files use it): keys of the merged mappings, explicit keys win.
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    value = _build(source, path, located, budget, constructor)
                    if not isinstance(value, dict):
                        raise InputError(
                            Problem(f"{located.display}:{source.start_mark.line + 1}", "'<<' needs a mapping")
                        )
                    merged = {**value, **merged}
                continue
            key = _build(key_node, (*path, "<key>"), located, budget, constructor)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise InputError(
                    Problem(f"{located.display}:{key_node.start_mark.line + 1}", "mapping keys must be scalars")
                )
            if key in result:
                raise InputError(Problem(f"{located.display}:{key_node.start_mark.line + 1}", f"duplicate key {key!r}"))
            result[key] = _build(value_node, (*path, key), located, budget, constructor)
            located.lines[(*path, key)] = key_node.start_mark.line + 1  # errors about a value point at its key
        located.lines.pop((*path, "<key>"), None)
        located.lines[path] = node.start_mark.line + 1
        return {**{k: v for k, v in merged.items() if k not in result}, **result}
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), located, budget, constructor) for i, item in enumerate(node.value)]
    if node.tag == _STR:
        return node.value  # most scalars: nothing to construct
    try:
        value = constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise InputError(Problem(f"{located.display}:{node.start_mark.line + 1}", f"bad value: {exc}")) from None
    # Dates stay text: JSON Schema validates them as `format: date` strings, and JSON has no date type.
    return value.isoformat() if isinstance(value, (datetime.date, datetime.datetime)) else value


def json_path(path: tuple[Any, ...] | list[Any]) -> str:
    """`$.stages[0].checks[1].id` — the python-jsonschema style of naming a place in a document."""
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def schema_problems(doc: Located, validator: jsonschema.protocols.Validator) -> list[Problem]:
    """Every schema error of a located document as `file:line: $.path: what`, unknown keys with a "did you mean"."""
    import jsonschema

    problems = []
    for error in sorted(validator.iter_errors(doc.value), key=lambda e: list(map(str, e.absolute_path))):
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

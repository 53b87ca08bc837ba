"""JSON Schemas shipped as package data (no remote `$ref`), loaded once each, and validators for them — the one
schema loader of every room (sprint specs, evidence, the stack description)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from sealgate.kernel.errors import Problem
from sealgate.kernel.yamlsource import json_path


@cache
def load_schema(package: str, name: str) -> dict[str, Any]:
    """`<package>/schema/<name>`, parsed (treat it as read-only: it is shared)."""
    return json.loads((resources.files(package) / "schema" / name).read_text(encoding="utf-8"))


def validator(schema: dict[str, Any], *referable: dict[str, Any]) -> Any:
    """A validator of `schema` (its draft's class, formats checked) that resolves `$ref`s into the `referable`
    schemas by their `$id`."""
    registry: Registry = Registry().with_resources(
        (each["$id"], Resource.from_contents(each)) for each in referable if "$id" in each
    )
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def document_problems(document: Any, schema: dict[str, Any], display: str) -> list[Problem]:
    """Every schema error of a JSON document as `display: $.path: what`, in document order."""
    found = validator(schema).iter_errors(document)
    return [
        Problem(display, f"{json_path(list(e.absolute_path))}: {e.message}")
        for e in sorted(found, key=lambda e: list(map(str, e.absolute_path)))
    ]

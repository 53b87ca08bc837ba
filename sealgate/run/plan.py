"""Opening a sprint, nox's way: the check library first, then the spec's plugins into the same registry, then the
spec, validated against that registry. Every verb that reads a spec (seal, eixo, report, verify, new) opens it here.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from sealgate.api.registry import load_plugins
from sealgate.checks import library
from sealgate.kernel.errors import InputError
from sealgate.sprint.model import Spec
from sealgate.sprint.spec import load_spec, read_spec


def open_spec(
    root: Path, sprint_id: str | None = None, *, today: datetime.date | None = None, with_stack: bool = True
) -> Spec:
    """The spec `sprint_id` (the newest when None) with its checks resolved; InputError listing every problem."""
    registry = library()
    source = read_spec(root, sprint_id)
    problems = load_plugins(root, source.plugins())
    try:
        spec = load_spec(root, sprint_id, registry, today=today, with_stack=with_stack, source=source)
    except InputError as exc:
        raise InputError(*problems, *exc.problems) from None
    if problems:
        raise InputError(*problems)
    return spec

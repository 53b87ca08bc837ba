"""The check registry, filled by the @check decorator (the nox session-registry pattern).

A check is a plain function taking the run's Context. It passes by returning normally with no error-severity
finding; it fails through ctx.fail(...) or error findings; ctx.skip(...)/ctx.error(...) say it could not or did not
run. Its id (`room/name`) is what sprint specs, criteria and waivers refer to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sealgate.sprint.model import CheckDef, CheckFunc

CHECK_ID = re.compile(r"^[a-z0-9_]+(?:-[a-z0-9_]+)*/[a-z0-9_]+(?:-[a-z0-9_]+)*$")


REGISTRY: dict[str, CheckDef] = {}


def check(
    check_id: str,
    *,
    title: str,
    needs_stack: bool = False,
    requires: tuple[str, ...] | list[str] = (),
    params: dict[str, Any] | None = None,
    concurrent: bool = False,
    prepare: CheckFunc | None = None,
    volatile: bool = False,
) -> Callable[[CheckFunc], CheckFunc]:
    """Register `func` as check `check_id`. A check belongs to no stage: the sprint spec places it in one of its
    EIXOs, so the same library check serves any sprint's stage layout.

    `params` is a JSON Schema (object) for the parameters a spec passes under `with:`; the spec loader validates
    them, so a check can trust ctx.params.
    """
    if not CHECK_ID.match(check_id):
        raise ValueError(f"check id {check_id!r} must look like 'room/name' (lowercase, digits, '-', '_')")

    def register(func: CheckFunc) -> CheckFunc:
        existing = REGISTRY.get(check_id)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(
                f"check id {check_id!r} registered twice ({existing.func.__module__} and {func.__module__})"
            )
        REGISTRY[check_id] = CheckDef(
            id=check_id,
            title=title,
            func=func,
            needs_stack=needs_stack,
            requires=tuple(requires),
            params_schema=params or {"type": "object"},
            concurrent=concurrent,
            prepare=prepare,
            volatile=volatile,
        )
        return func

    return register


def load_builtin_checks() -> dict[str, CheckDef]:
    """Import every built-in check module (each registers its checks on import)."""
    import sealgate.checks  # noqa: F401  (import fills REGISTRY)

    return REGISTRY

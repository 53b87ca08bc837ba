"""The check registry, filled by the @check decorator (the nox session-registry pattern).

A check is a plain function taking the run's Context. It passes by returning normally with no error-severity
finding; it fails through ctx.fail(...) or error findings; ctx.skip(...)/ctx.error(...) say it could not or did not
run. Its id (`room/name`) is what sprint specs, criteria and waivers refer to.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sealgate import STAGES

if TYPE_CHECKING:
    from sealgate.sprint.context import Context

CheckFunc = Callable[["Context"], None]

CHECK_ID = re.compile(r"^[a-z0-9_]+(?:-[a-z0-9_]+)*/[a-z0-9_]+(?:-[a-z0-9_]+)*$")


@dataclass(frozen=True)
class CheckDef:
    id: str
    stage: int
    title: str
    func: CheckFunc
    needs_stack: bool = False
    requires: tuple[str, ...] = ()  # checks of the same stage that must pass first
    params_schema: dict[str, Any] = field(default_factory=dict)  # JSON Schema for the spec's `with:` block


REGISTRY: dict[str, CheckDef] = {}


def check(
    check_id: str,
    *,
    stage: int,
    title: str,
    needs_stack: bool = False,
    requires: tuple[str, ...] | list[str] = (),
    params: dict[str, Any] | None = None,
) -> Callable[[CheckFunc], CheckFunc]:
    """Register `func` as check `check_id` of stage `stage`.

    `params` is a JSON Schema (object) for the parameters a spec passes under `with:`; the spec loader validates
    them, so a check can trust ctx.params.
    """
    if not CHECK_ID.match(check_id):
        raise ValueError(f"check id {check_id!r} must look like 'room/name' (lowercase, digits, '-', '_')")
    if stage not in STAGES:
        raise ValueError(f"check {check_id!r}: stage {stage} is not one of {sorted(STAGES)}")

    def register(func: CheckFunc) -> CheckFunc:
        existing = REGISTRY.get(check_id)
        if existing is not None and existing.func.__qualname__ != func.__qualname__:
            raise ValueError(
                f"check id {check_id!r} registered twice ({existing.func.__module__} and {func.__module__})"
            )
        REGISTRY[check_id] = CheckDef(
            id=check_id,
            stage=stage,
            title=title,
            func=func,
            needs_stack=needs_stack,
            requires=tuple(requires),
            params_schema=params or {"type": "object"},
        )
        return func

    return register


def load_builtin_checks() -> dict[str, CheckDef]:
    """Import every built-in check module (each registers its checks on import)."""
    import sealgate.checks  # noqa: F401  (import fills REGISTRY)

    return REGISTRY

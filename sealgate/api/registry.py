"""Registering checks: the `@check` decorator fills the one registry (the nox session-registry pattern), and
`load_plugins` imports a project's own check modules, which register theirs the same way.

A check is a plain function taking the run's Context. It passes by returning normally with no error-severity
finding; it fails through ctx.fail(...) or error findings; ctx.skip(...)/ctx.error(...) say it could not or did not
run. Its id (`room/name`) is what sprint specs, criteria and waivers refer to.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sealgate.kernel.errors import Problem
from sealgate.model.registry import DuplicateCheck, Registry
from sealgate.model.results import CheckDef, CheckFunc

CHECK_ID = re.compile(r"^[a-z0-9_]+(?:-[a-z0-9_]+)*/[a-z0-9_]+(?:-[a-z0-9_]+)*$")
PLUGIN_MODULE_PREFIX = "sealgate_plugin_"

REGISTRY = Registry()


def check(
    check_id: str,
    *,
    title: str,
    titles: Mapping[str, str] | None = None,
    aliases: tuple[str, ...] = (),
    needs_stack: bool = False,
    requires: tuple[str, ...] | list[str] = (),
    params: dict[str, Any] | None = None,
    concurrent: bool = False,
    prepare: CheckFunc | None = None,
    volatile: bool = False,
) -> Callable[[CheckFunc], CheckFunc]:
    """Register `func` as check `check_id`. A check belongs to no stage: the sprint spec places it in one of its
    stages, so the same library check serves any sprint's stage layout.

    `title` is English; `titles` gives it in other languages (`{"pt-BR": "…"}`), shown by reports in a spec's
    language. `aliases` are former ids a spec may still name. `params` is a JSON Schema (object) for the parameters a
    spec passes under `with:`; the spec loader validates them, so a check can trust ctx.params.
    """
    for each in (check_id, *aliases):
        if not CHECK_ID.match(each):
            raise ValueError(f"check id {each!r} must look like 'room/name' (lowercase, digits, '-', '_')")

    def register(func: CheckFunc) -> CheckFunc:
        REGISTRY.add(
            CheckDef(
                id=check_id,
                title=title,
                func=func,
                needs_stack=needs_stack,
                requires=tuple(requires),
                params_schema=params or {"type": "object"},
                concurrent=concurrent,
                prepare=prepare,
                volatile=volatile,
                titles=dict(titles or {}),
                aliases=tuple(aliases),
            )
        )
        return func

    return register


def load_plugins(root: Path, plugins: list[tuple[str, str]]) -> list[Problem]:
    """Import each plugin — (repository-relative path, where the spec names it) — so its checks register. A plugin
    outside the repository, one that fails to import, or one that defines an id already held is bad input, said at
    the spec's line. A plugin is imported once per process under a name made from its relative path, so the same
    plugin read from another checkout of the repository (verify's copy of the judged commit) is the same plugin."""
    root = root.resolve()
    problems = []
    for relative, where in plugins:
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            problems.append(Problem(where, f"plugin {relative!r} is not a file inside the repository"))
            continue
        module_name = PLUGIN_MODULE_PREFIX + re.sub(r"\W", "_", relative)
        if module_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except DuplicateCheck as exc:
            del sys.modules[module_name]
            problems.append(
                Problem(
                    where,
                    f"plugin {relative} defines check {exc.check_id!r} at {_shown(root, exc.new.origin)}, which "
                    f"{_shown(root, exc.existing.origin)} already defines",
                    "a plugin adds checks, it never replaces one: give yours an id of its own",
                )
            )
        except Exception as exc:  # a plugin's own bug: report it as bad input, with where
            del sys.modules[module_name]
            problems.append(Problem(where, f"plugin {relative} failed to load: {type(exc).__name__}: {exc}"))
    return problems


def _shown(root: Path, origin: str) -> str:
    """A definition's place, repository-relative when it is in the repository (a plugin), else the library's."""
    path, _, line = origin.rpartition(":")
    try:
        return f"{Path(path).resolve().relative_to(root).as_posix()}:{line}"
    except ValueError:
        marker = "/sealgate/"
        return f"sealgate/{path.rsplit(marker, 1)[1]}:{line}" if marker in path else origin

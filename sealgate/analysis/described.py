"""What a library check reads from the project instead of naming it itself.

A check of the library names no service, file or variable of any particular stack: it gets them from its spec
parameters (`with:`) or from the stack description (services by *role*, the compose file that says how each runs).
This module holds the few derivations several checks share, and the one way to report a parameter that does not fit
the described stack: an error at the parameter's own line of the spec (`sprint/X.yaml:42: with.phases[0]...`).

Derived defaults (each overridable by the check's own parameter):

* the Prometheus configuration: the file behind the `--config.file` of the service with role `prometheus`
  (its image's default path otherwise), found through that service's bind mounts in the compose file;
* the rule files: that configuration's `rule_files`, mapped the same way;
* the Alertmanager configuration: as for Prometheus, for the service with role `alertmanager`.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from sealgate.backends.composefile import ComposeFile, flag_value, map_path
from sealgate.backends.errors import StackError
from sealgate.backends.http import Prometheus
from sealgate.kernel.errors import InputError
from sealgate.kernel.yamlsource import Located, json_path, load_yaml

if TYPE_CHECKING:
    from sealgate.api.context import Context
    from sealgate.backends.description import ServiceDecl

DEFAULT_CONFIG = {"prometheus": "/etc/prometheus/prometheus.yml", "alertmanager": "/etc/alertmanager/alertmanager.yml"}


# --- where a parameter sits in the spec ----------------------------------------------------------------------------


def spec_entry(ctx: Context) -> tuple[Located | None, tuple[Any, ...]]:
    """The spec with lines, and the path of this check's `with:` in it (for findings about parameters)."""
    try:
        located = load_yaml(ctx.spec.path, ctx.spec.relpath)
    except InputError:
        return None, ()
    for si, stage in enumerate(ctx.spec.raw.get("stages", [])):
        for ci, entry in enumerate(stage.get("checks", [])):
            if entry.get("id") == ctx.check_id:
                return located, ("stages", si, "checks", ci, "with")
    return located, ()


def param_where(ctx: Context, *path: Any) -> str:
    """`spec:line` of the parameter at `path` under this check's `with:` (its nearest written parent)."""
    located, base = spec_entry(ctx)
    line = located.line_of((*base, *path)) if located is not None else None
    return f"{ctx.spec.relpath}:{line}" if line else ctx.spec.relpath


def param_error(ctx: Context, path: tuple[Any, ...], what: str, hint: str = "") -> NoReturn:
    """A parameter that does not fit the described stack: the check cannot run; said at the parameter's line."""
    name = json_path(("with", *path)).removeprefix("$.")
    ctx.error(f"{param_where(ctx, *path)}: {name}: {what}" + (f" ({hint})" if hint else ""))


# --- services ------------------------------------------------------------------------------------------------------


def described_service(ctx: Context, name: str, path: tuple[Any, ...]) -> ServiceDecl:
    """The described service a parameter names; a clear error at the parameter when the description has none."""
    description = ctx.description
    if name not in description.services:
        param_error(
            ctx, path, f"no service {name!r} in {description.path}", f"described: {', '.join(description.services)}"
        )
    return description.services[name]


def service_by_role(ctx: Context, role: str, param: str | None = None) -> str:
    """The service a parameter names (checked against the description), else the one service with `role`."""
    if param is not None and ctx.params.get(param) is not None:
        return described_service(ctx, str(ctx.params[param]), (param,)).name
    try:
        return ctx.description.role(role).name
    except InputError as exc:
        hint = f"; or name it with `with.{param}`" if param else ""
        ctx.error(f"{exc}{hint}")


def prometheus(ctx: Context) -> Prometheus:
    """The running stack's Prometheus (the service with role `prometheus`)."""
    return Prometheus(ctx.stack.url(service_by_role(ctx, "prometheus")))


# --- files of the described stack ---------------------------------------------------------------------------------


def _compose(ctx: Context) -> ComposeFile:
    description = ctx.description
    try:
        return ComposeFile(ctx.root / description.compose_file, dict(os.environ), description.compose_file)
    except StackError as exc:
        ctx.error(str(exc))


def _relative(ctx: Context, host: str) -> str | None:
    try:
        return Path(host).resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return None


def _service_config(ctx: Context, role: str) -> tuple[str, str, ComposeFile]:
    """(repository path, container path, compose file) of the configuration file the service with `role` reads."""
    service = service_by_role(ctx, role)
    compose = _compose(ctx)
    svc = compose.services[service]
    container = flag_value([*svc.entrypoint(), *svc.command()], "--config.file") or DEFAULT_CONFIG[role]
    host = map_path(container, svc.mounts(compose.base))
    relative = _relative(ctx, host) if host else None
    if relative is None:
        ctx.error(
            f"{ctx.description.compose_file}: the {role} service {service!r} reads {container}, which no bind mount "
            "takes from the repository: name the file with `with.config`"
        )
    return relative, container, compose


def prometheus_config(ctx: Context) -> str:
    """The repository's Prometheus configuration: `with.config`, else the file the Prometheus service mounts."""
    if ctx.params.get("config"):
        return str(ctx.params["config"])
    return _service_config(ctx, "prometheus")[0]


def alertmanager_config(ctx: Context) -> str:
    """The repository's Alertmanager configuration: `with.config`, else the file the Alertmanager service mounts."""
    if ctx.params.get("config"):
        return str(ctx.params["config"])
    return _service_config(ctx, "alertmanager")[0]


def rule_file_patterns(ctx: Context) -> list[str]:
    """The rule files a check judges: `with.rules` (globs), else the `rule_files` of the Prometheus configuration
    the Prometheus service mounts, mapped through its bind mounts to the repository."""
    if ctx.params.get("rules"):
        return [str(p) for p in ctx.params["rules"]]
    relative, container, compose = _service_config(ctx, "prometheus")
    path = ctx.judge(relative)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        ctx.error(f"{relative}: not valid YAML ({exc}): name the rule files with `with.rules`")
    mounts = compose.services[service_by_role(ctx, "prometheus")].mounts(compose.base)
    patterns: list[str] = []
    for entry in (config.get("rule_files") if isinstance(config, dict) else None) or []:
        inside = str(entry) if str(entry).startswith("/") else str(PurePosixPath(container).parent / str(entry))
        host = map_path(inside, mounts)
        mapped = _relative(ctx, host) if host else None
        if mapped is None:
            ctx.error(
                f"{relative}: rule_files entry {entry!r} is under no bind mount: name the files with `with.rules`"
            )
        patterns.append(mapped)
    if not patterns:
        ctx.error(f"{relative} loads no rule_files: name the rule files with `with.rules`")
    return patterns

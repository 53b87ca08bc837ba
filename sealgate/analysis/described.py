"""What a library check reads from the project instead of naming it itself.

A check of the library names no service, file or variable of any particular stack: it gets them from its spec
parameters (`with:`) or from the stack description (services by *role*, the compose file that says how each runs).
This module holds the few derivations several checks share, and the one way to report a parameter that does not fit
the described stack: an error at the parameter's own line of the spec (`sprint/X.yaml:42: with.phases[0]...`).

Derived defaults (each overridable by the check's own parameter):

* the Prometheus configuration: the file behind the `--config.file` of the service with role `prometheus`
  (its image's default path otherwise), found where the compose file gives it to that service's container — a bind
  mount of the file or of a directory above it, or a `configs:` entry (`ComposeFile.file_at`);
* the rule files: that configuration's `rule_files`, mapped the same way;
* the Alertmanager configuration: as for Prometheus, for the service with role `alertmanager`.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from sealgate.backends.composefile import ComposeFile, flag_value
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
    relative = repository_file(ctx, compose, service, container)
    if relative is None:
        ctx.error(
            f"{ctx.description.compose_file}: the {role} service {service!r} reads {container}, which no bind mount "
            "or config takes from the repository: name the file with `with.config`"
        )
    return relative, container, compose


def repository_file(ctx: Context, compose: ComposeFile, service: str, container_path: str) -> str | None:
    """The repository file (repository-relative) service `service`'s container reads at `container_path`, through
    whatever the compose file gives it there (`ComposeFile.file_at`); None when that is not a file of the
    repository (the image's own, a named volume, a host path outside the repository)."""
    mounted = compose.file_at(service, container_path)
    return _relative(ctx, mounted.host) if mounted is not None and mounted.host is not None else None


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
    service = service_by_role(ctx, "prometheus")
    patterns: list[str] = []
    for entry in (config.get("rule_files") if isinstance(config, dict) else None) or []:
        inside = str(entry) if str(entry).startswith("/") else str(PurePosixPath(container).parent / str(entry))
        mapped = [_relative(ctx, host) for host in compose.host_patterns(service, inside)]
        if not mapped or None in mapped:
            ctx.error(
                f"{relative}: rule_files entry {entry!r} is under no bind mount or config of the repository: name "
                "the files with `with.rules`"
            )
        patterns.extend(str(m) for m in mapped)
    if not patterns:
        ctx.error(f"{relative} loads no rule_files: name the rule files with `with.rules`")
    return patterns


# How long a check waits for every target's first scrape of this stack: Prometheus's default scrape interval (1m)
# and a little; a target still unscraped then is judged as it is.
SCRAPED_WAIT_S = 65.0


def judged_since_start(ctx: Context, prom: Prometheus) -> None:
    """Wait (bounded) until Prometheus has scraped every active target since the stack started, so a metric is
    judged on this stack's samples — not missed because its target's first scrape is still to come."""
    if ctx.stack.started_at is None:
        return
    waited = prom.wait_all_scraped_after(ctx.stack.started_at, SCRAPED_WAIT_S, sleep=ctx.sleep)
    ctx.note_wait("every target scraped since the stack started", waited)


def unjudged_values(ctx: Context) -> tuple[str, ...]:
    """Labels whose values this backend changes: the local backend scrapes 127.0.0.1:<port> where the compose file
    says exporter:9100, so an `instance` value in a rule is the compose file's and cannot be judged here."""
    return ("instance",) if ctx.stack.rewrites_scrape_addresses else ()

"""The stack description: a project's own file (named by the sprint spec's `stack:`, else `stack.yaml` at its root)
saying what sealgate needs beyond the compose file — each service's role, container port and readiness probe, how the
local backend runs it as a process, how to send its scraped target real work, and the stack's backup procedure.

What the compose file already says is derived from it and need not be repeated: a service's container port (the one
it publishes, else the one it `expose`s), a target's scrape job (from the Prometheus configuration the compose file
gives its container: a bind mount of the file or of its directory, or a `configs:` entry), a Python service's local
command.
The backends, readiness, the drills and the checks read services from here by role; nothing in the framework names a
service of any particular stack.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sealgate.backends.composefile import ComposeFile, flag_value
from sealgate.kernel.errors import InputError, Problem
from sealgate.kernel.schemas import load_schema, validator
from sealgate.kernel.yamlsource import Located, load_yaml, schema_problems

# Where a spec with no `stack:` finds its stack description: what `sealgate init` writes for a compose file at the
# repository's root. A project whose compose file lives elsewhere names its description in every spec (`stack:`).
DEFAULT_PATH = "stack.yaml"
LOCAL_KINDS = ("prometheus", "alertmanager", "postgres", "python", "command", "unavailable")
DEFAULT_PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
_PLACEHOLDER = re.compile(r"\{([a-z_]+(?::[A-Za-z0-9_.-]+)*)\}")


@dataclass(frozen=True)
class Traffic:
    """One request that makes a target do real work; every traffic generator of sealgate sends this."""

    path: str
    method: str = "POST"
    body: Any = None


@dataclass(frozen=True)
class LocalRecipe:
    kind: str  # one of LOCAL_KINDS
    reason: str = ""  # unavailable: why it cannot run as a local process
    host_flag: str = "--host"  # python: the flags its listen address and port are set with
    port_flag: str = "--port"
    command: tuple[str, ...] = ()  # command: the argv, with {placeholders}
    env: dict[str, str] = field(default_factory=dict)  # command: extra variables, with {placeholders}
    # The oldest version of its program the local backend may run ("2.40"); below it, or unreadable, it refuses to
    # start. `min_version_at` is where the description says so (file:line), for that refusal.
    min_version: str | None = None
    min_version_at: str = ""


@dataclass(frozen=True)
class ServiceDecl:
    name: str
    role: str
    port: int | None  # inside its container
    ready: str | None  # HTTP path answering 200 when ready
    local: LocalRecipe
    optional: bool = False
    job: str | None = None  # target: its scrape job
    metrics_path: str = "/metrics"
    traffic: Traffic | None = None
    published: bool = False  # the compose file publishes a host port for it

    @property
    def scheme(self) -> str:
        return "postgresql" if self.local.kind == "postgres" else "http"


@dataclass(frozen=True)
class BackupDecl:
    script: str
    args: dict[str, list[str]]  # backend name -> argv template
    volumes: dict[str, str] = field(default_factory=dict)  # volume key -> service whose data it holds


@dataclass(frozen=True)
class StackDescription:
    path: str  # repository-relative
    compose_file: str
    services: dict[str, ServiceDecl]  # in start order
    offline_env: str | None = None
    offline_build: str | None = None
    backup: BackupDecl | None = None
    # Where it does not match its compose file (unreadable, a service or port it names missing): no stack starts.
    problems: tuple[Problem, ...] = ()

    def service(self, name: str) -> ServiceDecl:
        try:
            return self.services[name]
        except KeyError:
            raise InputError(
                Problem(self.path, f"no service {name!r} is described", f"described: {', '.join(self.services)}")
            ) from None

    def with_role(self, role: str) -> list[ServiceDecl]:
        return [s for s in self.services.values() if s.role == role]

    def role(self, role: str) -> ServiceDecl:
        """The one service with `role`; a clear error when there is none (or more than one)."""
        found = self.with_role(role)
        if len(found) != 1:
            which = ", ".join(s.name for s in found) or "none"
            raise InputError(Problem(self.path, f"exactly one service with role {role!r} is needed, found {which}"))
        return found[0]

    def main_target(self) -> ServiceDecl:
        """The scraped target that accepts traffic (the first one declared with `traffic:`), else the first target."""
        targets = self.with_role("target")
        if not targets:
            raise InputError(Problem(self.path, "no service with role 'target' (a scraped service) is described"))
        return next((t for t in targets if t.traffic is not None), targets[0])


def load_description(root: Path, relpath: str = DEFAULT_PATH, env: Mapping[str, str] | None = None) -> StackDescription:
    """Load, validate and complete a stack description; every problem is reported as `file:line: what`."""
    root = root.resolve()
    path = root / relpath
    if not path.is_file():
        raise InputError(
            Problem(relpath, "no stack description", "write one (`sealgate init` infers it from a compose file)")
        )
    doc = load_yaml(path, relpath)
    if not isinstance(doc.value, dict):
        raise InputError(Problem(f"{relpath}:1", "a stack description must be a YAML mapping"))
    problems = schema_problems(doc, validator(load_schema("sealgate.backends", "stack.schema.json")))
    if problems:
        raise InputError(*problems)
    raw: dict[str, Any] = doc.value
    compose_rel = str(raw["compose"]["file"])
    # What does not match the compose file is kept, not raised: the compose file is the governed project's, and a
    # defect there (a service or port removed, a file that does not parse) is for the checks to judge and report.
    # The backends refuse to start a stack whose description does not match (StackBackend.__init__).
    mismatches: list[Problem] = []
    compose, compose_problem = _compose_file(root, compose_rel, env)
    if compose_problem:
        mismatches.append(Problem(doc.where(["compose", "file"]), f"cannot read {compose_rel}: {compose_problem}"))
    services: dict[str, ServiceDecl] = {}
    for name, entry in raw["services"].items():
        if compose is None:  # nothing can be derived from it
            services[name] = _service(name, entry or {}, None, doc, [])
            continue
        if name not in compose.services:
            mismatches.append(
                doc.problem(
                    ["services", name],
                    f"service {name!r} is not in {compose_rel}",
                    f"it has: {', '.join(compose.services)}",
                )
            )
            continue
        services[name] = _service(name, entry or {}, compose, doc, problems, mismatches)
    for role in ("prometheus", "alertmanager"):
        if len([s for s in services.values() if s.role == role]) > 1:
            problems.append(doc.problem(["services"], f"more than one service has role {role!r}"))
    prometheus = next((s for s in services.values() if s.role == "prometheus"), None)
    jobs = _scrape_jobs(root, compose, prometheus.name) if prometheus and compose is not None else {}
    for name, service in list(services.items()):
        if service.role == "target" and service.job is None and compose is not None:
            job = jobs.get(name)
            if job is None:
                mismatches.append(
                    doc.problem(
                        ["services", name],
                        f"target {name!r}: no scrape job of the Prometheus configuration targets it",
                        "set `job:`",
                    )
                )
            services[name] = ServiceDecl(**{**service.__dict__, "job": job})
    backup = _backup(raw.get("backup"), compose, services, doc, problems, mismatches)
    if problems:
        raise InputError(*problems)
    return StackDescription(
        relpath,
        compose_rel,
        services,
        raw["compose"].get("offline_env"),
        raw["compose"].get("offline_build"),
        backup,
        tuple(mismatches),
    )


def _compose_file(root: Path, compose_rel: str, env: Mapping[str, str] | None) -> tuple[Any, str | None]:
    """The compose file, or (None, why) when it cannot be read: a broken compose file is the project's defect, which
    the checks judge and report (a failed check, not bad input to sealgate); nothing is derived from it then."""
    from sealgate.backends.errors import StackError

    try:
        return ComposeFile(root / compose_rel, dict(env if env is not None else os.environ), compose_rel), None
    except StackError as exc:
        return None, str(exc)


def _service(
    name: str,
    entry: dict[str, Any],
    compose: Any,
    doc: Located,
    problems: list[Problem],
    mismatches: list[Problem] | None = None,
) -> ServiceDecl:
    at = ["services", name]
    svc = compose.services[name] if compose is not None else None
    published = svc.published_ports() if svc is not None else []
    port = entry.get("port")
    if port is None and len({p[2] for p in published}) == 1:
        port = published[0][2]
    exposed = set(svc.exposed_ports()) if svc is not None else set()
    if port is None and not published and len(exposed) == 1:
        # A service reached only on the stack's network says its port with `expose:` (exporters often do).
        port = next(iter(exposed))
    role = str(entry.get("role", "other"))
    if port is None and role != "other" and svc is not None and mismatches is not None:
        mismatches.append(doc.problem(at, f"service {name!r}: its container port is not published", "set `port:`"))
    local_raw = entry.get("local") or {}
    kind = local_raw.get("kind") or _default_kind(role, svc)
    reason = local_raw.get("reason") or (
        f"no local-process recipe for a service of role {role!r} (set `local.kind`)" if kind == "unavailable" else ""
    )
    local = LocalRecipe(
        kind,
        reason,
        local_raw.get("host_flag", "--host"),
        local_raw.get("port_flag", "--port"),
        tuple(str(a) for a in local_raw.get("command", [])),
        {str(k): str(v) for k, v in (local_raw.get("env") or {}).items()},
        str(local_raw["min_version"]) if local_raw.get("min_version") is not None else None,
        doc.where([*at, "local", "min_version"]),
    )
    if kind == "command" and not local.command:
        problems.append(doc.problem([*at, "local"], f"service {name!r}: kind `command` needs a `command:` argv"))
    traffic_raw = entry.get("traffic")
    traffic = (
        Traffic(str(traffic_raw["path"]), str(traffic_raw.get("method", "POST")), traffic_raw.get("body"))
        if traffic_raw
        else None
    )
    if traffic is not None and role != "target":
        problems.append(doc.problem([*at, "traffic"], f"service {name!r}: only a target takes `traffic:`"))
    return ServiceDecl(
        name=name,
        role=role,
        port=port,
        ready=entry.get("ready"),
        local=local,
        optional=bool(entry.get("optional", False)) or bool(svc is not None and svc.profiles),
        job=entry.get("job"),
        metrics_path=str(entry.get("metrics_path", "/metrics")),
        traffic=traffic,
        published=bool(published),
    )


def _default_kind(role: str, svc: Any) -> str:
    if role in ("prometheus", "alertmanager"):
        return role
    if role == "database":
        return "postgres"
    if svc is None:
        return "unavailable"
    command = [*svc.entrypoint(), *svc.command()]
    if command and Path(command[0]).name.startswith("python"):
        return "python"
    return "unavailable"


def _scrape_jobs(root: Path, compose: Any, prometheus: str) -> dict[str, str]:
    """service name -> the scrape job whose static target is that service, read from the Prometheus config the
    compose file gives the Prometheus container (a missing or unreadable config simply derives nothing)."""
    svc = compose.services[prometheus]
    container_path = flag_value([*svc.entrypoint(), *svc.command()], "--config.file") or DEFAULT_PROMETHEUS_CONFIG
    mounted = compose.file_at(prometheus, container_path)
    host = mounted.host if mounted is not None else None
    if host is None:
        return {}
    try:
        config = yaml.safe_load(Path(host).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    jobs: dict[str, str] = {}
    for scrape in config.get("scrape_configs") or []:
        for static in (scrape or {}).get("static_configs") or []:
            for target in (static or {}).get("targets") or []:
                host_name = str(target).rsplit(":", 1)[0]
                if host_name in compose.services:
                    jobs.setdefault(host_name, str(scrape.get("job_name")))
    return jobs


def _backup(
    raw: dict[str, Any] | None,
    compose: Any,
    services: dict[str, ServiceDecl],
    doc: Located,
    problems: list[Problem],
    mismatches: list[Problem],
) -> BackupDecl | None:
    if not raw:
        return None
    volumes = {str(k): str(v) for k, v in (raw.get("volumes") or {}).items()}
    known = compose.volume_keys() if compose is not None else list(volumes)
    for key, service in volumes.items():
        if key not in known:
            mismatches.append(
                doc.problem(["backup", "volumes", key], f"volume {key!r} is not declared in the compose file")
            )
        if service not in doc.value["services"]:
            problems.append(
                doc.problem(["backup", "volumes", key], f"volume {key!r} names service {service!r}, not described")
            )
    return BackupDecl(str(raw["script"]), {k: [str(a) for a in v] for k, v in raw["args"].items()}, volumes)


def render(template: list[str], facts: Mapping[str, str], where: str) -> list[str]:
    """Fill `{placeholder}`s of an argv template from a backend's facts; an unknown one is a clear error."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in facts:
            raise InputError(
                Problem(where, f"unknown placeholder {{{key}}}", f"known here: {', '.join(sorted(facts)) or 'none'}")
            )
        return facts[key]

    return [_PLACEHOLDER.sub(fill, item) for item in template]

"""Containerization: the services a stack description names declared in its compose file the way a containerized
stack should be (pinned images, one network, named data volumes, configuration mounted from the repository, ports
on loopback, no host-root escape hatches), then running healthy. For F9.10 (EIXO 1): Prometheus, Alertmanager and
Grafana with the API, PostgreSQL and the console-log sink, in stack/docker-compose.yml.

The compose file is the stack description's (`compose.file`); services are named by the spec's parameters or found
by their role in the description, never by this module.

Static checks judge the committed compose file with its **default** values: `docker compose config` (the real
Compose resolves anchors, merges, profiles and `${VAR:-default}`) run with every variable the file reads unset and
no env file, so the images judged are the defaults a user gets; where Compose is not installed the file is parsed
as YAML and interpolated the same way. Either way the result is read through the one compose-file model,
`sealgate.backends.composefile.ComposeFile`. Findings point at the line of the committed file.

Live checks look at the running stack through `ctx.stack`. On the local backend there are no containers: the
containerized checks then fail with "stack ran as local processes" — a containerization seal must not pass without
containers — after recording what they saw.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from sealgate.backends.base import StackError
from sealgate.backends.composefile import ComposeFile, Service, flag_value
from sealgate.backends.http import Answer, HttpAnswerError, Prometheus, request
from sealgate.errors import InputError, Problem
from sealgate.sprint.context import Context
from sealgate.sprint.model import Severity
from sealgate.sprint.registry import check

HTTP_TIMEOUT = 5.0
LOCAL_REASON = (
    "stack ran as local processes (backend {backend}): no container exists to prove containerization "
    "(install a Docker engine and Compose v2 where the seal runs, and seal again)"
)

_ENV_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


# --- the compose file, resolved and located -----------------------------------------------------------------------


def referenced_variables(text: str) -> list[str]:
    return sorted(set(_ENV_REFERENCE.findall(text.replace("$$", ""))))


def _profiles(raw: dict[str, Any]) -> list[str]:
    """Every profile the file names, so `docker compose config` resolves all services; a malformed `services:` or
    `profiles:` is left to Compose, which refuses it with its own message."""
    found: set[str] = set()
    services = raw.get("services")
    for spec in services.values() if isinstance(services, dict) else []:
        profiles = spec.get("profiles") if isinstance(spec, dict) else None
        if isinstance(profiles, list):
            found.update(str(p) for p in profiles)
    return sorted(found)


# One `docker compose config` per stage run: keyed by the stage's recorder (kept alive here, so its id is not
# reused) and the file's digest, so every run still records the command in its own evidence.
_RESOLVED: dict[tuple[int, str], tuple[object, ComposeFile, str]] = {}


def load_compose(ctx: Context) -> ComposeFile:
    """The stack description's compose file resolved with its defaults, through `docker compose config` when
    Compose v2 is installed (recorded in evidence), else by parsing it here the way Compose interpolates it."""
    relative = ctx.description.compose_file
    path = ctx.judge(relative)
    text = path.read_text()
    recorder = ctx._recorder  # the stage's shared recorder: the one thing all checks of one stage run share
    key = (id(recorder), hashlib.sha256(text.encode()).hexdigest())
    if key not in _RESOLVED:
        if len(_RESOLVED) > 32:
            _RESOLVED.clear()
        _RESOLVED[key] = (recorder, *_resolve(ctx, path, relative, text))
    _recorder, compose, resolver = _RESOLVED[key]
    ctx.record("resolver", resolver)
    return compose


def _problems_text(exc: StackError) -> str:
    shown = "; ".join(map(str, exc.problems[:5]))
    return shown + (f" (+{len(exc.problems) - 5} more)" if len(exc.problems) > 5 else "")


def _resolve(ctx: Context, path: Path, relative: str, text: str) -> tuple[ComposeFile, str]:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        ctx.fail(f"{relative}{':' + str(mark.line + 1) if mark else ''}: not valid YAML: {exc}")
    if not isinstance(raw, dict):
        ctx.fail(f"{relative}:1: a compose file is a YAML mapping (services:, volumes:, ...), not {raw!r:.40}")
    variables = referenced_variables(text)
    profiles = _profiles(raw)
    probe = ctx.run(["docker", "compose", "version", "--short"], timeout=30) if shutil.which("docker") else None
    if probe is not None and probe.ok:
        # Unset every variable the file reads and read no env file: the defaults are what is judged.
        argv = ["env", *[a for v in variables for a in ("-u", v)], "docker", "compose", "-p", "sealgate-judge"]
        argv += ["-f", str(path), "--env-file", os.devnull, *[a for p in profiles for a in ("--profile", p)]]
        result = ctx.run([*argv, "config", "--format", "json"], timeout=60)
        if not result.ok:
            ctx.fail(f"{relative}: `docker compose config` refused the file: {result.stderr.strip()[-800:]}")
        try:
            model = json.loads(result.stdout)
        except ValueError as exc:
            ctx.error(f"`docker compose config --format json` printed no JSON: {exc}")
        version = probe.stdout.strip()
        ctx.tool_version("docker-compose", version)
        try:
            compose = ComposeFile(path, {}, relative, resolved=model)
        except StackError as exc:
            ctx.fail(_problems_text(exc))
        return compose, f"docker compose {version} config (defaults, all profiles)"
    try:
        # What Compose would refuse (`${VAR:?message}` with no default, a key of the wrong type) is refused here
        # too, where `docker compose config` cannot run.
        compose = ComposeFile(path, {}, relative)
    except StackError as exc:
        ctx.fail(_problems_text(exc))
    return compose, "YAML parsed here (Compose v2 not installed)"


def _repo_relative(ctx: Context, source: str) -> str | None:
    try:
        return Path(source).resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return None


def _described(ctx: Context, service: str) -> Any:
    """The stack description's entry of `service`, or None when the description does not name it."""
    return ctx.description.services.get(service)


STRING_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}

# --- static checks ------------------------------------------------------------------------------------------------


@check(
    "containerize/compose-services",
    title="Compose declares the required services",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "services": {**STRING_LIST, "description": "services that must be declared (default: every described one)"}
        },
    },
)
def compose_services(ctx: Context) -> None:
    compose = load_compose(ctx)
    declared = sorted(compose.services)
    ctx.record("services", declared)
    wanted = [str(s) for s in ctx.params.get("services", list(ctx.description.services))]
    for name in wanted:
        if name not in compose.services:
            ctx.finding(
                f"service {name!r} is missing (declared: {', '.join(declared)})",
                file=compose.display,
                line=compose.line("services"),
            )


_VERSION_TAG = re.compile(r"\d")


def image_problem(image: str) -> str | None:
    """Why `image` is not pinned to a version (None when it is): a digest, or a tag that names a version."""
    if "@sha256:" in image:
        return None
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return "has no tag (Docker reads it as :latest)"
    tag = name.rsplit(":", 1)[1]
    if tag in ("latest", "") or tag.endswith("-latest"):
        return f"uses the floating tag :{tag}"
    if not _VERSION_TAG.search(tag):
        return f"tag :{tag} names no version"
    return None


@check("containerize/images-pinned", title="Every image pinned to a version (no latest, no untagged)")
def images_pinned(ctx: Context) -> None:
    compose = load_compose(ctx)
    images = {}
    for name, service in sorted(compose.services.items()):
        image = service.image
        if not image:
            where = compose.line("services", name, "build") or compose.line("services", name)
            ctx.finding(
                f"service {name} has no image: it is built, so no version pin can be judged here",
                file=compose.display,
                line=where,
                severity=Severity.WARNING,
            )
            continue
        images[name] = image
        problem = image_problem(image)
        if problem:
            ctx.finding(
                f"service {name}: default image {image} {problem}; pin a version tag or a digest",
                file=compose.display,
                line=compose.line("services", name, "image"),
            )
    ctx.record("images", images)


@check(
    "containerize/network",
    title="Every service on the stack's network",
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["network"],
        "properties": {"network": {"type": "string", "minLength": 1, "description": "the network every service joins"}},
    },
)
def network(ctx: Context) -> None:
    compose = load_compose(ctx)
    wanted = str(ctx.params["network"])
    if wanted not in (compose.raw.get("networks") or {}):
        ctx.finding(
            f"network {wanted!r} is not declared under the top-level `networks:`",
            file=compose.display,
            line=compose.line("networks"),
        )
    for name, service in sorted(compose.services.items()):
        joined = sorted(service.networks())
        mode = service.raw.get("network_mode")
        if mode:
            ctx.finding(
                f"service {name} uses network_mode {mode!r}, not network {wanted}",
                file=compose.display,
                line=compose.line("services", name, "network_mode"),
            )
        elif wanted not in joined:
            ctx.finding(
                f"service {name} is not on network {wanted} (on: {', '.join(joined) or 'the default'})",
                file=compose.display,
                line=compose.line("services", name, "networks"),
            )
    ctx.record("network", wanted)


# Where each product keeps its data inside its container: the flag or variable its binary reads, and the image's
# default. A service's product is known from its role in the stack description (or its local recipe's kind).
DATA_DIRS: dict[str, tuple[str, str, str]] = {
    "prometheus": ("flag", "--storage.tsdb.path", "/prometheus"),
    "alertmanager": ("flag", "--storage.path", "/alertmanager"),
    "postgres": ("env", "PGDATA", "/var/lib/postgresql/data"),
    "grafana": ("env", "GF_PATHS_DATA", "/var/lib/grafana"),
}


def product_of(decl: Any) -> str | None:
    """The product a described service runs, as far as sealgate knows products: by role, or by local recipe."""
    if decl is None:
        return None
    if decl.role in ("prometheus", "alertmanager"):
        return str(decl.role)
    if decl.local.kind == "postgres":
        return "postgres"
    if decl.role == "dashboards":
        return "grafana"
    return None


def data_dir(product: str | None, service: Service) -> str | None:
    """Where the service keeps its data inside the container, read from its command/environment as its binary
    would (the image's default otherwise); None for a product sealgate does not know."""
    if product not in DATA_DIRS:
        return None
    source, name, default = DATA_DIRS[product]
    if source == "flag":
        return flag_value(service.command(), name) or default
    return service.environment().get(name) or default


VOLUME_PARAM = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["volume"],
            "properties": {
                "volume": {"type": "string", "minLength": 1},
                "path": {"type": "string", "pattern": "^/", "description": "the data directory in the container"},
            },
        },
    ]
}


@check(
    "containerize/volumes",
    title="Named volumes for every data directory",
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["volumes"],
        "properties": {
            "volumes": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": VOLUME_PARAM,
                "description": "service -> the named volume holding its data (or {volume, path}: where the data "
                "directory is, for a service whose role does not tell)",
            }
        },
    },
)
def volumes(ctx: Context) -> None:
    compose = load_compose(ctx)
    declared = compose.raw.get("volumes") or {}
    seen = {}
    for service_name, wanted in sorted(ctx.params["volumes"].items()):
        volume, directory = (wanted, None) if isinstance(wanted, str) else (wanted["volume"], wanted.get("path"))
        service = compose.services.get(service_name)
        if service is None:
            ctx.finding(
                f"service {service_name} (expected to keep its data in volume {volume}) is not declared",
                file=compose.display,
                line=compose.line("services"),
            )
            continue
        directory = directory or data_dir(product_of(_described(ctx, service_name)), service)
        if directory is None:
            raise InputError(
                Problem(
                    ctx.spec.relpath,
                    f"{ctx.check_id}: cannot tell where service {service_name} keeps its data (its role in "
                    f"{ctx.description.path} names no product sealgate knows)",
                    f"give it as `{service_name}: {{volume: {volume}, path: /its/data/dir}}`",
                )
            )
        mounts = [(i, m) for i, m in enumerate(service.mounts(compose.base)) if m.target == directory]
        if not mounts:
            ctx.finding(
                f"service {service_name}: its data directory {directory} is not mounted: data is lost with the "
                "container",
                file=compose.display,
                line=compose.line("services", service_name, "volumes"),
            )
            continue
        index, mount = mounts[0]
        line = compose.line("services", service_name, "volumes", index)
        if mount.type != "volume" or not mount.source:
            ctx.finding(
                f"service {service_name}: data directory {directory} is a {mount.type} mount, not the "
                f"named volume {volume}",
                file=compose.display,
                line=line,
            )
        elif mount.source != volume:
            ctx.finding(
                f"service {service_name}: data directory {directory} is on volume {mount.source}, expected {volume}",
                file=compose.display,
                line=line,
            )
        elif volume not in declared:
            ctx.finding(
                f"volume {volume} is not declared under the top-level `volumes:`",
                file=compose.display,
                line=compose.line("volumes"),
            )
        else:
            seen[service_name] = f"{volume} -> {directory}"
    ctx.record("data_volumes", seen)


@check(
    "containerize/config-mounts",
    title="Config mounts point at files that exist in the repository",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "expected": {
                "type": "object",
                "description": "service -> {container path: repository path} that must be bind-mounted",
                "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
            }
        },
    },
)
def config_mounts(ctx: Context) -> None:
    compose = load_compose(ctx)
    mounted: dict[str, dict[str, str]] = {}
    for name, service in sorted(compose.services.items()):
        for index, mount in enumerate(service.mounts(compose.base)):
            if not mount.bind:
                continue
            line = compose.line("services", name, "volumes", index)
            relative = _repo_relative(ctx, mount.source)
            if relative is None:
                ctx.finding(
                    f"service {name}: bind mount {mount.source} -> {mount.target} is outside "
                    "the repository: the stack must not depend on host paths",
                    file=compose.display,
                    line=line,
                )
                continue
            source = ctx.root / relative
            if not source.exists():
                ctx.finding(
                    f"service {name}: bind mount source {relative} does not exist in the repository "
                    f"(mounted at {mount.target})",
                    file=compose.display,
                    line=line,
                )
                continue
            if not mount.read_only:
                ctx.finding(
                    f"service {name}: {relative} is mounted read-write; configuration should be `:ro`",
                    file=compose.display,
                    line=line,
                    severity=Severity.WARNING,
                )
            mounted.setdefault(name, {})[mount.target] = relative
            _judge_tree(ctx, relative)
    for service, wanted in (ctx.params.get("expected") or {}).items():
        for target, relative in wanted.items():
            actual = mounted.get(service, {}).get(target)
            if actual != relative:
                ctx.finding(
                    f"service {service}: expected {relative} mounted at {target}, "
                    + (f"found {actual}" if actual else "no such bind mount"),
                    file=compose.display,
                    line=compose.line("services", service, "volumes"),
                )
    ctx.record("bind_mounts", mounted)


def _judge_tree(ctx: Context, relative: str) -> None:
    """Make every tracked file a mount exposes an evidence subject (what the containers read is what was judged)."""
    path = ctx.root / relative
    if path.is_file():
        ctx.judge(relative)
        return
    listed = ctx.run(["git", "ls-files", "-z", "--", relative], timeout=30)
    for name in filter(None, listed.stdout.split("\0")):
        if (ctx.root / name).is_file():
            ctx.judge(name)


@check("containerize/ports-loopback", title="Published ports bound to 127.0.0.1")
def ports_loopback(ctx: Context) -> None:
    compose = load_compose(ctx)
    published = {}
    for name, service in sorted(compose.services.items()):
        for index, (host_ip, host_port, target) in enumerate(service.ports()):
            entry = f"{host_ip or '0.0.0.0'}:{host_port or '?'}->{target}"
            published.setdefault(name, []).append(entry)
            if host_ip != "127.0.0.1":
                ctx.finding(
                    f"service {name}: port {entry} is reachable from other hosts; bind it to 127.0.0.1",
                    file=compose.display,
                    line=compose.line("services", name, "ports", index),
                )
    ctx.record("published", published)


# Capabilities that make a container root-equivalent on the host (or close to it).
_HOST_ROOT_CAPS = {"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "NET_ADMIN", "DAC_READ_SEARCH"}
# Grafana's own admin-password variable (Grafana's documentation, not any one stack's): an image of Grafana falls
# back to admin/admin without it.
_GRAFANA_PASSWORD = "GF_SECURITY_ADMIN_PASSWORD"


@check(
    "containerize/hardening",
    title="No privileged container, host namespace, root capability or engine socket; Grafana's admin password "
    "never a default nor committed",
)
def hardening(ctx: Context) -> None:
    compose = load_compose(ctx)
    for name, service in sorted(compose.services.items()):
        spec = service.raw

        def finding(text: str, *keys: Any, service: str = name) -> None:
            ctx.finding(
                f"service {service}: {text}", file=compose.display, line=compose.line("services", service, *keys)
            )

        if spec.get("privileged"):
            finding("privileged: true gives it every device and capability of the host; remove it", "privileged")
        for key in ("network_mode", "pid", "ipc", "userns_mode"):
            if str(spec.get(key) or "") == "host":
                finding(f"{key}: host shares the host's namespace; remove it", key)
        caps = sorted({str(c).upper().removeprefix("CAP_") for c in spec.get("cap_add") or []} & _HOST_ROOT_CAPS)
        if caps:
            finding(f"cap_add {caps} makes it root-equivalent on the host; drop them", "cap_add")
        for index, mount in enumerate(service.mounts(compose.base)):
            if mount.source.endswith("docker.sock"):
                finding(f"mounts the Docker engine's socket ({mount.source}): root on the host", "volumes", index)
    _grafana_password(ctx, compose)


def _grafana_password(ctx: Context, compose: ComposeFile) -> None:
    """Every service running a Grafana image. Read from the file as written (the resolved model would hold the
    operator's value when it is exported)."""
    raw = compose.source.get("services") or {}
    grafanas = [n for n, s in sorted(compose.services.items()) if "grafana" in str(s.image or "")]
    for name in grafanas:
        line = compose.line("services", name, "environment")
        environment = (raw.get(name) or {}).get("environment") or {}
        if isinstance(environment, list):
            pairs = [str(e).split("=", 1) for e in environment]
            environment = {p[0]: (p[1] if len(p) > 1 else None) for p in pairs}
        passed = {k for k in environment if k in (_GRAFANA_PASSWORD, f"{_GRAFANA_PASSWORD}__FILE")}
        literal = environment.get(_GRAFANA_PASSWORD)
        if literal is not None and not _ENV_REFERENCE.search(str(literal)):
            what = "Grafana's default 'admin'" if str(literal) == "admin" else "a password committed to git"
            ctx.finding(
                f"service {name}: {_GRAFANA_PASSWORD} is set in the file ({what}); pass it through from the "
                "environment (or a secret file) instead",
                file=compose.display,
                line=line,
            )
        elif not passed:
            ctx.finding(
                f"service {name}: {_GRAFANA_PASSWORD} is not passed to Grafana, so it starts with admin/admin",
                file=compose.display,
                line=line,
            )
        guard = " ".join(compose.services[name].entrypoint())
        if passed and _GRAFANA_PASSWORD not in guard:
            ctx.finding(
                f"service {name}: nothing refuses to start Grafana when {_GRAFANA_PASSWORD} is unset or 'admin' "
                "(Grafana then falls back to admin/admin); guard it in the entrypoint",
                file=compose.display,
                line=compose.line("services", name, "entrypoint") or compose.line("services", name),
            )
    ctx.record("grafana_services", grafanas)


# --- live checks --------------------------------------------------------------------------------------------------


def _probe(ctx: Context, url: str, expect: int = 200) -> Answer | None:
    """GET url; a finding (naming the URL) when it does not answer `expect`."""
    try:
        answer = request("GET", url, timeout=HTTP_TIMEOUT)
    except StackError:
        ctx.finding(f"GET {url}: no answer", json_path=url)
        return None
    if answer.status != expect:
        ctx.finding(f"GET {url}: HTTP {answer.status}, expected {expect}", json_path=url)
    return answer


def _api(prometheus: Prometheus, path: str) -> dict[str, Any]:
    """`data` of a Prometheus API endpoint; empty when it does not answer or answers an error (the checks say what
    they then miss)."""
    try:
        data = prometheus.api(path)
    except (StackError, HttpAnswerError):
        return {}
    return data if isinstance(data, dict) else {}


def _local_fail(ctx: Context) -> None:
    if not ctx.stack.containerized:
        ctx.fail(LOCAL_REASON.format(backend=ctx.stack.name))


# Command whose output names the version of a service's binary inside its container, by the kind of process the
# stack description says it runs.
VERSION_COMMANDS = {
    "prometheus": ["{entrypoint}", "--version"],
    "alertmanager": ["{entrypoint}", "--version"],
    "postgres": ["psql", "--version"],
    "python": ["python3", "--version"],
}


@check(
    "containerize/containers-healthy",
    title="Each container running and healthy, with its image id and binary version",
    needs_stack=True,
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "services": {
                **STRING_LIST,
                "description": "services that must run healthy (default: every described service not optional)",
            }
        },
    },
)
def containers_healthy(ctx: Context) -> None:
    stack = ctx.stack
    states = stack.services()
    default = [name for name, decl in ctx.description.services.items() if not decl.optional]
    wanted = [str(s) for s in ctx.params.get("services", default)]
    seen: dict[str, dict[str, Any]] = {}
    for name in wanted:
        state = states.get(name)
        if state is None:
            ctx.finding(f"service {name}: the backend reports no such service", json_path=f"services.{name}")
            continue
        seen[name] = {
            "running": state.running,
            "healthy": state.healthy,
            "container_id": (state.container_id or "")[:12] or None,
            "image": state.image,
            "image_id": state.image_id,
            "pid": state.pid,
        }
        if not state.running:
            ctx.finding(f"service {name} is not running: {state.detail}", json_path=f"services.{name}")
        elif state.healthy is False:
            ctx.finding(f"service {name} is running but unhealthy: {state.detail}", json_path=f"services.{name}")
        elif state.healthy is None and stack.containerized:
            ctx.finding(
                f"service {name}: container has no healthcheck", json_path=f"services.{name}", severity=Severity.WARNING
            )
        if stack.containerized and state.running and state.container_id:
            seen[name]["version"] = _container_version(ctx, name, state.container_id)
    ctx.record("containers", seen)
    _local_fail(ctx)


def _container_version(ctx: Context, service: str, container_id: str) -> str | None:
    decl = _described(ctx, service)
    template = VERSION_COMMANDS.get(decl.local.kind) if decl is not None else None
    if template is None:
        return None
    argv = list(template)
    if "{entrypoint}" in argv:
        inspect = ctx.run(["docker", "inspect", "--format", "{{json .Config.Entrypoint}}", container_id], timeout=30)
        try:
            entrypoint = json.loads(inspect.stdout or "null") or []
        except ValueError:
            entrypoint = []
        if not entrypoint:
            return None
        argv = [entrypoint[0] if a == "{entrypoint}" else a for a in argv]
    result = ctx.run(["docker", "exec", container_id, *argv], timeout=30)
    if not result.ok:
        ctx.finding(
            f"service {service}: `{' '.join(argv)}` in its container exited {result.exit_code}",
            json_path=f"services.{service}",
            severity=Severity.WARNING,
        )
        return None
    text = (result.stdout or result.stderr).strip().splitlines()
    version = text[0][:120] if text else None
    if version:
        ctx.tool_version(f"{service} (container)", version)
    return version


@check(
    "containerize/prometheus-live",
    title="Prometheus /-/healthy and /-/ready, its scrape targets up, Alertmanager discovered",
    needs_stack=True,
)
def prometheus_live(ctx: Context) -> None:
    url = ctx.stack.url(ctx.description.role("prometheus").name)
    ctx.record("url", url)
    for path in ("/-/healthy", "/-/ready"):
        answer = _probe(ctx, url + path)
        ctx.record(path, answer.status if answer is not None else None)
    prometheus = Prometheus(url, timeout=HTTP_TIMEOUT)
    build = _api(prometheus, "status/buildinfo")
    if build:
        version = build.get("version")
        ctx.record("version", version)
        ctx.tool_version("prometheus (stack)", str(version))
    active = _api(prometheus, "targets").get("activeTargets", [])
    health = {
        f"{t.get('labels', {}).get('job')}/{t.get('labels', {}).get('instance')}": t.get("health") for t in active
    }
    ctx.record("targets", health)
    if not any(h == "up" for h in health.values()):
        where = f"{url}/api/v1/targets $.data.activeTargets"
        ctx.finding(f"no scrape target is up: {health or 'none'}", json_path=where)
    discovered = [a.get("url") for a in _api(prometheus, "alertmanagers").get("activeAlertmanagers", [])]
    ctx.record("alertmanagers", discovered)
    if not discovered:
        ctx.finding(
            "Prometheus has discovered no Alertmanager",
            json_path=f"{url}/api/v1/alertmanagers $.data.activeAlertmanagers",
        )
    _local_fail(ctx)


@check(
    "containerize/alertmanager-live",
    title="Alertmanager /-/ready and /api/v2/status, running the repository's config",
    needs_stack=True,
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["config"],
        "properties": {
            "config": {"type": "string", "minLength": 1, "description": "the Alertmanager config file, repo-relative"}
        },
    },
)
def alertmanager_live(ctx: Context) -> None:
    url = ctx.stack.url(ctx.description.role("alertmanager").name)
    ctx.record("url", url)
    _probe(ctx, f"{url}/-/ready")
    status = _probe(ctx, f"{url}/api/v2/status")
    config_file = str(ctx.params["config"])
    if status is not None and status.ok and isinstance(status.body, dict):
        body = status.body
        ctx.record("version", (body.get("versionInfo") or {}).get("version"))
        ctx.record("cluster", (body.get("cluster") or {}).get("status"))
        ctx.record("uptime", body.get("uptime"))
        try:
            live = yaml.safe_load((body.get("config") or {}).get("original") or "") or {}
        except yaml.YAMLError:
            live = {}
        repo = yaml.safe_load(ctx.judge(config_file).read_text()) or {}
        # The running config must be the repository's: same receivers, same routing tree.
        if _receivers(live) != _receivers(repo) or _routes(live) != _routes(repo):
            ctx.finding(
                f"the running Alertmanager's config differs from {config_file}: receivers {_receivers(live)} vs "
                f"{_receivers(repo)}, routes {_routes(live)} vs {_routes(repo)}",
                json_path=f"{url}/api/v2/status $.config.original",
            )
    _local_fail(ctx)


def _receivers(config: dict[str, Any]) -> list[str]:
    return sorted(str(r.get("name")) for r in config.get("receivers") or [])


def _routes(config: dict[str, Any]) -> list[str]:
    found: list[str] = []

    def walk(route: dict[str, Any], depth: int) -> None:
        matchers = list(route.get("matchers") or []) + [f"{k}={v}" for k, v in (route.get("match") or {}).items()]
        normalised = sorted(re.sub(r"[\s\"']", "", str(m)) for m in matchers)
        found.append(f"{depth}:{','.join(normalised)}->{route.get('receiver')}")
        for child in route.get("routes") or []:
            walk(child, depth + 1)

    walk(config.get("route") or {}, 0)
    return found


@check(
    "containerize/grafana-live",
    title="Grafana /api/health answers (skipped with the reason where no Grafana can run)",
    needs_stack=True,
)
def grafana_live(ctx: Context) -> None:
    from sealgate.backends.base import ServiceNotRunning

    try:
        url = ctx.stack.url(ctx.description.role("dashboards").name)
    except ServiceNotRunning as exc:
        ctx.skip(f"Grafana does not run on this stack ({ctx.stack.name}): {exc.reason}")
    ctx.record("url", url)
    answer = _probe(ctx, f"{url}/api/health")
    if answer is not None and answer.ok and isinstance(answer.body, dict):
        body = answer.body
        ctx.record("version", body.get("version"))
        ctx.record("database", body.get("database"))
        if body.get("database") != "ok":
            ctx.finding(f"Grafana reports database {body.get('database')!r}", json_path=f"{url}/api/health $.database")
    _local_fail(ctx)

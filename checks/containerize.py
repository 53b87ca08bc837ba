"""EIXO 1 — containerization: Prometheus, Alertmanager and Grafana (with the API, PostgreSQL and the console-log
sink) declared in stack/docker-compose.yml the way the seed promises, then running healthy.

Static checks judge the committed compose file with its **default** values: `docker compose config` (the real
Compose resolves anchors, merges, profiles and `${VAR:-default}`) run with every variable the file reads unset and
no env file, so the images judged are the defaults a user gets; where Compose is not installed the file is parsed
as YAML and interpolated the same way. Findings point at the line of the committed file.

Live checks look at the running stack through its backend. On the local backend there are no containers: the
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

import requests
import yaml

from sealgate.sprint.context import Context
from sealgate.sprint.model import Severity
from sealgate.sprint.registry import check

COMPOSE_FILE = "stack/docker-compose.yml"
HTTP_TIMEOUT = 5.0
LOCAL_REASON = "stack ran as local processes (backend {backend}): no container exists to prove containerization"

_ENV_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


# --- the compose file, resolved and located -----------------------------------------------------------------------


def yaml_lines(text: str) -> dict[tuple[Any, ...], int]:
    """1-based line of every mapping key / sequence item, keyed by path, in a YAML document that may use anchors
    and `<<` merge keys (compose files do). An inherited key points at the `<<:` line of the mapping that merges it.
    """
    lines: dict[tuple[Any, ...], int] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node: yaml.Node, path: tuple[Any, ...], depth: int) -> None:
        if depth > 50:
            return  # anchors can nest; a compose file never needs this deep
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            merged: list[tuple[yaml.Node, int]] = []
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
                    merged += [(source, key.start_mark.line + 1) for source in sources]
                    continue
                name = key.value
                lines[(*path, name)] = key.start_mark.line + 1
                walk(value, (*path, name), depth + 1)
            for source, line in merged:
                if isinstance(source, yaml.MappingNode):
                    for key, _value in source.value:
                        lines.setdefault((*path, key.value), line)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index), depth + 1)

    if root is not None:
        walk(root, (), 0)
    return lines


class Compose:
    """The committed compose file resolved with its defaults (`model`, Compose's JSON shape) plus where each
    service's keys are in the source (`line(...)`)."""

    def __init__(self, root: Path, model: dict[str, Any], resolver: str, lines: dict[tuple[Any, ...], int]) -> None:
        self.root = root
        self.model = model
        self.resolver = resolver
        self._lines = lines

    @property
    def services(self) -> dict[str, dict[str, Any]]:
        return dict(self.model.get("services") or {})

    def line(self, *path: Any) -> int | None:
        while path and path not in self._lines:
            path = path[:-1]
        return self._lines.get(path) if path else None


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
_RESOLVED: dict[tuple[int, str], tuple[object, Compose]] = {}


def load_compose(ctx: Context) -> Compose:
    """Resolve stack/docker-compose.yml with its defaults, through `docker compose config` when Compose v2 is
    installed (recorded in evidence), else by parsing it here the way Compose interpolates it."""
    path = ctx.judge(COMPOSE_FILE)
    text = path.read_text()
    recorder = ctx._recorder  # the stage's shared recorder: the one thing all checks of one stage run share
    key = (id(recorder), hashlib.sha256(text.encode()).hexdigest())
    if key not in _RESOLVED:
        if len(_RESOLVED) > 32:
            _RESOLVED.clear()
        _RESOLVED[key] = (recorder, _resolve(ctx, path, text))
    compose = _RESOLVED[key][1]
    ctx.record("resolver", compose.resolver)
    return compose


def _resolve(ctx: Context, path: Path, text: str) -> Compose:
    try:
        raw = yaml.safe_load(text) or {}
        lines = yaml_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        ctx.fail(f"{COMPOSE_FILE}{':' + str(mark.line + 1) if mark else ''}: not valid YAML: {exc}")
    if not isinstance(raw, dict):
        ctx.fail(f"{COMPOSE_FILE}:1: a compose file is a YAML mapping (services:, volumes:, ...), not {raw!r:.40}")
    variables = referenced_variables(text)
    profiles = _profiles(raw)
    if shutil.which("docker") and ctx.run(["docker", "compose", "version", "--short"], timeout=30).ok:
        # Unset every variable the file reads and read no env file: the defaults are what is judged.
        argv = ["env", *[a for v in variables for a in ("-u", v)], "docker", "compose", "-p", "sealgate-judge"]
        argv += ["-f", str(path), "--env-file", os.devnull, *[a for p in profiles for a in ("--profile", p)]]
        result = ctx.run([*argv, "config", "--format", "json"], timeout=60)
        if not result.ok:
            ctx.fail(f"{COMPOSE_FILE}: `docker compose config` refused the file: {result.stderr.strip()[-800:]}")
        try:
            model = json.loads(result.stdout)
        except ValueError as exc:
            ctx.error(f"`docker compose config --format json` printed no JSON: {exc}")
        version = ctx.run(["docker", "compose", "version", "--short"], timeout=30).stdout.strip()
        ctx.tool_version("docker-compose", version)
        return Compose(ctx.root, model, f"docker compose {version} config (defaults, all profiles)", lines)
    from sealgate.stack.backends.base import StackError
    from sealgate.stack.backends.composefile import interpolate_tree, shape_problems

    try:
        model = interpolate_tree({k: v for k, v in raw.items() if not str(k).startswith("x-")}, {}, COMPOSE_FILE)
    except StackError as exc:  # `${VAR:?message}` with no default: the file cannot be resolved with its defaults
        ctx.fail(str(exc))
    if not isinstance(model.get("services"), dict):
        ctx.fail(f"{COMPOSE_FILE}: no `services:` mapping")
    problems = shape_problems(model, COMPOSE_FILE)  # what Compose would refuse, where `docker compose config` cannot
    if problems:
        ctx.fail("; ".join(map(str, problems[:5])) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
    for name, spec in (model.get("services") or {}).items():
        spec = spec or {}
        spec.pop("<<", None)
        model["services"][name] = _normalise_service(spec, ctx.root / "stack")
    return Compose(ctx.root, model, "YAML parsed here (Compose v2 not installed)", lines)


def _normalise_service(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    """Short syntax → Compose's long JSON shape, for the parts the checks read (volumes, ports, networks)."""
    volumes = []
    for entry in spec.get("volumes") or []:
        if isinstance(entry, dict):
            volumes.append(entry)
            continue
        parts = str(entry).split(":")
        source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
        bind = source.startswith((".", "/", "~"))
        volumes.append(
            {
                "type": "bind" if bind else "volume",
                "source": str((base / source).resolve()) if bind and not source.startswith("/") else source,
                "target": target,
                "read_only": len(parts) > 2 and "ro" in parts[2].split(","),
            }
        )
    ports = []
    for entry in spec.get("ports") or []:
        if isinstance(entry, dict):
            ports.append(entry)
            continue
        bits = str(entry).split("/")[0].split(":")
        host_ip = bits[0] if len(bits) == 3 else ""
        published = bits[-2] if len(bits) >= 2 else ""
        ports.append({"host_ip": host_ip, "published": published, "target": int(bits[-1])})
    networks = spec.get("networks") or {}
    if isinstance(networks, list):
        networks = {n: None for n in networks}
    environment = spec.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(str(e).partition("=")[::2] for e in environment)
    return {**spec, "volumes": volumes, "ports": ports, "networks": networks, "environment": environment}


def _repo_relative(compose: Compose, source: str) -> str | None:
    try:
        return Path(source).resolve().relative_to(compose.root.resolve()).as_posix()
    except ValueError:
        return None


def _mount_index(spec: dict[str, Any], mount: dict[str, Any]) -> int:
    return (spec.get("volumes") or []).index(mount)


def _list_param(ctx: Context, key: str, default: list[str]) -> list[str]:
    return [str(item) for item in ctx.params.get(key, default)]


STRING_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}

# --- static checks ------------------------------------------------------------------------------------------------


@check(
    "containerize/compose-services",
    stage=1,
    title="Compose declares prometheus, alertmanager, grafana, api and postgres",
    params={"type": "object", "additionalProperties": False, "properties": {"services": STRING_LIST}},
)
def compose_services(ctx: Context) -> None:
    compose = load_compose(ctx)
    declared = sorted(compose.services)
    ctx.record("services", declared)
    for name in _list_param(ctx, "services", ["prometheus", "alertmanager", "grafana", "api", "postgres"]):
        if name not in compose.services:
            ctx.finding(
                f"service {name!r} is missing (declared: {', '.join(declared)})",
                file=COMPOSE_FILE,
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


@check("containerize/images-pinned", stage=1, title="Every image pinned to a version (no latest, no untagged)")
def images_pinned(ctx: Context) -> None:
    compose = load_compose(ctx)
    images = {}
    for name, spec in sorted(compose.services.items()):
        image = spec.get("image")
        if not image:
            where = compose.line("services", name, "build") or compose.line("services", name)
            ctx.finding(
                f"service {name} has no image: it is built, so no version pin can be judged here",
                file=COMPOSE_FILE,
                line=where,
                severity=Severity.WARNING,
            )
            continue
        images[name] = image
        problem = image_problem(str(image))
        if problem:
            ctx.finding(
                f"service {name}: default image {image} {problem}; pin a version tag or a digest",
                file=COMPOSE_FILE,
                line=compose.line("services", name, "image"),
            )
    ctx.record("images", images)


@check(
    "containerize/network",
    stage=1,
    title="Every service on techno-network",
    params={"type": "object", "additionalProperties": False, "properties": {"network": {"type": "string"}}},
)
def network(ctx: Context) -> None:
    compose = load_compose(ctx)
    wanted = str(ctx.params.get("network", "techno-network"))
    if wanted not in (compose.model.get("networks") or {}):
        ctx.finding(
            f"network {wanted!r} is not declared under the top-level `networks:`",
            file=COMPOSE_FILE,
            line=compose.line("networks"),
        )
    for name, spec in sorted(compose.services.items()):
        joined = sorted(spec.get("networks") or {})
        if spec.get("network_mode"):
            ctx.finding(
                f"service {name} uses network_mode {spec['network_mode']!r}, not network {wanted}",
                file=COMPOSE_FILE,
                line=compose.line("services", name, "network_mode"),
            )
        elif wanted not in joined:
            ctx.finding(
                f"service {name} is not on network {wanted} (on: {', '.join(joined) or 'the default'})",
                file=COMPOSE_FILE,
                line=compose.line("services", name, "networks"),
            )
    ctx.record("network", wanted)


def data_dir(service: str, spec: dict[str, Any]) -> str | None:
    """Where the service keeps its data inside the container, read from its command/environment as its binary
    would (image defaults otherwise)."""
    command = (
        [str(c) for c in (spec.get("command") or [])]
        if isinstance(spec.get("command"), list)
        else str(spec.get("command") or "").split()
    )
    environment = spec.get("environment") or {}

    def flag(name: str) -> str | None:
        for index, arg in enumerate(command):
            if arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
            if arg == name and index + 1 < len(command):
                return command[index + 1]
        return None

    if service == "prometheus":
        return flag("--storage.tsdb.path") or "/prometheus"
    if service == "alertmanager":
        return flag("--storage.path") or "/alertmanager"
    if service == "postgres":
        return environment.get("PGDATA") or "/var/lib/postgresql/data"
    if service == "grafana":
        return environment.get("GF_PATHS_DATA") or "/var/lib/grafana"
    return None


@check(
    "containerize/volumes",
    stage=1,
    title="Named volumes for every data directory",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {"volumes": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}},
    },
)
def volumes(ctx: Context) -> None:
    compose = load_compose(ctx)
    expected = dict(
        ctx.params.get(
            "volumes",
            {
                "prometheus": "prometheus_data",
                "alertmanager": "alertmanager_data",
                "grafana": "grafana_data",
                "postgres": "postgres_data",
            },
        )
    )
    declared = compose.model.get("volumes") or {}
    seen = {}
    for service, volume in sorted(expected.items()):
        spec = compose.services.get(service)
        if spec is None:
            ctx.finding(
                f"service {service} (expected to keep its data in volume {volume}) is not declared",
                file=COMPOSE_FILE,
                line=compose.line("services"),
            )
            continue
        directory = data_dir(service, spec)
        mounts = [m for m in spec.get("volumes") or [] if m.get("target") == directory]
        if not mounts:
            ctx.finding(
                f"service {service}: its data directory {directory} is not mounted: data is lost with the container",
                file=COMPOSE_FILE,
                line=compose.line("services", service, "volumes"),
            )
            continue
        mount = mounts[0]
        line = compose.line("services", service, "volumes", _mount_index(spec, mount))
        if mount.get("type") != "volume" or not mount.get("source"):
            ctx.finding(
                f"service {service}: data directory {directory} is a {mount.get('type')} mount, not the "
                f"named volume {volume}",
                file=COMPOSE_FILE,
                line=line,
            )
        elif mount["source"] != volume:
            ctx.finding(
                f"service {service}: data directory {directory} is on volume {mount['source']}, expected {volume}",
                file=COMPOSE_FILE,
                line=line,
            )
        elif volume not in declared:
            ctx.finding(
                f"volume {volume} is not declared under the top-level `volumes:`",
                file=COMPOSE_FILE,
                line=compose.line("volumes"),
            )
        else:
            seen[service] = f"{volume} -> {directory}"
    ctx.record("data_volumes", seen)


@check(
    "containerize/config-mounts",
    stage=1,
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
    for name, spec in sorted(compose.services.items()):
        for mount in spec.get("volumes") or []:
            if mount.get("type") != "bind":
                continue
            line = compose.line("services", name, "volumes", _mount_index(spec, mount))
            relative = _repo_relative(compose, str(mount.get("source")))
            if relative is None:
                ctx.finding(
                    f"service {name}: bind mount {mount.get('source')} -> {mount.get('target')} is outside "
                    "the repository: the stack must not depend on host paths",
                    file=COMPOSE_FILE,
                    line=line,
                )
                continue
            source = ctx.root / relative
            if not source.exists():
                ctx.finding(
                    f"service {name}: bind mount source {relative} does not exist in the repository "
                    f"(mounted at {mount.get('target')})",
                    file=COMPOSE_FILE,
                    line=line,
                )
                continue
            if not mount.get("read_only"):
                ctx.finding(
                    f"service {name}: {relative} is mounted read-write; configuration should be `:ro`",
                    file=COMPOSE_FILE,
                    line=line,
                    severity=Severity.WARNING,
                )
            mounted.setdefault(name, {})[str(mount.get("target"))] = relative
            _judge_tree(ctx, relative)
    for service, wanted in (ctx.params.get("expected") or {}).items():
        for target, relative in wanted.items():
            actual = mounted.get(service, {}).get(target)
            if actual != relative:
                ctx.finding(
                    f"service {service}: expected {relative} mounted at {target}, "
                    + (f"found {actual}" if actual else "no such bind mount"),
                    file=COMPOSE_FILE,
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


@check("containerize/ports-loopback", stage=1, title="Published ports bound to 127.0.0.1")
def ports_loopback(ctx: Context) -> None:
    compose = load_compose(ctx)
    published = {}
    for name, spec in sorted(compose.services.items()):
        for index, port in enumerate(spec.get("ports") or []):
            host_ip = str(port.get("host_ip") or "")
            entry = f"{host_ip or '0.0.0.0'}:{port.get('published') or '?'}->{port.get('target')}"
            published.setdefault(name, []).append(entry)
            if host_ip != "127.0.0.1":
                ctx.finding(
                    f"service {name}: port {entry} is reachable from other hosts; bind it to 127.0.0.1",
                    file=COMPOSE_FILE,
                    line=compose.line("services", name, "ports", index),
                )
    ctx.record("published", published)


# Capabilities that make a container root-equivalent on the host (or close to it).
_HOST_ROOT_CAPS = {"ALL", "SYS_ADMIN", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO", "NET_ADMIN", "DAC_READ_SEARCH"}
_GRAFANA_PASSWORD = "GF_SECURITY_ADMIN_PASSWORD"


@check(
    "containerize/hardening",
    stage=1,
    title="No privileged container, host namespace, root capability or engine socket; Grafana's admin password "
    "never a default nor committed",
)
def hardening(ctx: Context) -> None:
    compose = load_compose(ctx)
    for name, spec in sorted(compose.services.items()):

        def finding(text: str, *keys: Any, service: str = name) -> None:
            ctx.finding(f"service {service}: {text}", file=COMPOSE_FILE, line=compose.line("services", service, *keys))

        if spec.get("privileged"):
            finding("privileged: true gives it every device and capability of the host; remove it", "privileged")
        for key in ("network_mode", "pid", "ipc", "userns_mode"):
            if str(spec.get(key) or "") == "host":
                finding(f"{key}: host shares the host's namespace; remove it", key)
        caps = sorted({str(c).upper().removeprefix("CAP_") for c in spec.get("cap_add") or []} & _HOST_ROOT_CAPS)
        if caps:
            finding(f"cap_add {caps} makes it root-equivalent on the host; drop them", "cap_add")
        for index, volume in enumerate(spec.get("volumes") or []):
            source = str(volume.get("source") or "") if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.endswith("docker.sock"):
                finding(f"mounts the Docker engine's socket ({source}): root on the host", "volumes", index)
    _grafana_password(ctx, compose)


def _grafana_password(ctx: Context, compose: Compose) -> None:
    """Read from the file as written (the resolved model would hold the operator's value when it is exported)."""
    raw = (yaml.safe_load((ctx.root / COMPOSE_FILE).read_text()) or {}).get("services") or {}
    grafanas = [n for n, s in sorted(compose.services.items()) if "grafana" in str(s.get("image") or "")]
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
                file=COMPOSE_FILE,
                line=line,
            )
        elif not passed:
            ctx.finding(
                f"service {name}: {_GRAFANA_PASSWORD} is not passed to Grafana, so it starts with admin/admin",
                file=COMPOSE_FILE,
                line=line,
            )
        guard = " ".join(str(a) for a in (compose.services[name].get("entrypoint") or []))
        if passed and _GRAFANA_PASSWORD not in guard:
            ctx.finding(
                f"service {name}: nothing refuses to start Grafana when {_GRAFANA_PASSWORD} is unset or 'admin' "
                "(Grafana then falls back to admin/admin); guard it in the entrypoint",
                file=COMPOSE_FILE,
                line=compose.line("services", name, "entrypoint") or compose.line("services", name),
            )
    ctx.record("grafana_services", grafanas)


# --- live checks --------------------------------------------------------------------------------------------------


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=HTTP_TIMEOUT)
    except requests.RequestException:
        return None


def _probe(ctx: Context, url: str, expect: int = 200) -> requests.Response | None:
    """GET url; a finding (naming the URL) when it does not answer `expect`."""
    response = _get(url)
    if response is None:
        ctx.finding(f"GET {url}: no answer", json_path=url)
    elif response.status_code != expect:
        ctx.finding(f"GET {url}: HTTP {response.status_code}, expected {expect}", json_path=url)
    return response


def _local_fail(ctx: Context) -> None:
    if not ctx.stack.containerized:
        ctx.fail(LOCAL_REASON.format(backend=ctx.stack.name))


# Command whose output names the version of each service's binary (inside its container).
VERSION_COMMANDS = {
    "prometheus": ["{entrypoint}", "--version"],
    "alertmanager": ["{entrypoint}", "--version"],
    "postgres": ["psql", "--version"],
    "api": ["python3", "--version"],
    "console-log": ["python3", "--version"],
}


@check(
    "containerize/containers-healthy",
    stage=1,
    title="Each container running and healthy, with its image id and binary version",
    needs_stack=True,
    params={"type": "object", "additionalProperties": False, "properties": {"services": STRING_LIST}},
)
def containers_healthy(ctx: Context) -> None:
    stack = ctx.stack
    states = stack.services()
    wanted = _list_param(ctx, "services", ["api", "console-log", "postgres", "prometheus", "alertmanager"])
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
    template = VERSION_COMMANDS.get(service)
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
    stage=1,
    title="Prometheus /-/healthy and /-/ready, scraping the API, Alertmanager discovered",
    needs_stack=True,
)
def prometheus_live(ctx: Context) -> None:
    url = ctx.stack.url("prometheus")
    ctx.record("url", url)
    for path in ("/-/healthy", "/-/ready"):
        response = _probe(ctx, url + path)
        ctx.record(path, response.status_code if response is not None else None)
    build = _get(f"{url}/api/v1/status/buildinfo")
    if build is not None and build.ok:
        version = build.json().get("data", {}).get("version")
        ctx.record("version", version)
        ctx.tool_version("prometheus (stack)", str(version))
    targets = _get(f"{url}/api/v1/targets")
    active = targets.json().get("data", {}).get("activeTargets", []) if targets is not None and targets.ok else []
    health = {
        f"{t.get('labels', {}).get('job')}/{t.get('labels', {}).get('instance')}": t.get("health") for t in active
    }
    ctx.record("targets", health)
    if not any(h == "up" for h in health.values()):
        where = f"{url}/api/v1/targets $.data.activeTargets"
        ctx.finding(f"no scrape target is up: {health or 'none'}", json_path=where)
    managers = _get(f"{url}/api/v1/alertmanagers")
    discovered = (
        [a.get("url") for a in managers.json().get("data", {}).get("activeAlertmanagers", [])]
        if managers is not None and managers.ok
        else []
    )
    ctx.record("alertmanagers", discovered)
    if not discovered:
        ctx.finding(
            "Prometheus has discovered no Alertmanager",
            json_path=f"{url}/api/v1/alertmanagers $.data.activeAlertmanagers",
        )
    _local_fail(ctx)


@check(
    "containerize/alertmanager-live",
    stage=1,
    title="Alertmanager /-/ready and /api/v2/status, running the repository's config",
    needs_stack=True,
    params={"type": "object", "additionalProperties": False, "properties": {"config": {"type": "string"}}},
)
def alertmanager_live(ctx: Context) -> None:
    url = ctx.stack.url("alertmanager")
    ctx.record("url", url)
    _probe(ctx, f"{url}/-/ready")
    status = _probe(ctx, f"{url}/api/v2/status")
    config_file = str(ctx.params.get("config", "stack/prometheus/alertmanager.yml"))
    if status is not None and status.ok:
        body = status.json()
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
    stage=1,
    title="Grafana /api/health answers (skipped with the reason where no Grafana can run)",
    needs_stack=True,
)
def grafana_live(ctx: Context) -> None:
    from sealgate.stack.backends.base import ServiceNotRunning

    try:
        url = ctx.stack.url("grafana")
    except ServiceNotRunning as exc:
        ctx.skip(f"Grafana does not run on this stack ({ctx.stack.name}): {exc.reason}")
    ctx.record("url", url)
    response = _probe(ctx, f"{url}/api/health")
    if response is not None and response.ok:
        body = response.json()
        ctx.record("version", body.get("version"))
        ctx.record("database", body.get("database"))
        if body.get("database") != "ok":
            ctx.finding(f"Grafana reports database {body.get('database')!r}", json_path=f"{url}/api/health $.database")
    _local_fail(ctx)

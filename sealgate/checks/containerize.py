"""Containerization: the services a stack description names declared in its compose file the way a containerized
stack should be (pinned images, one network, named data volumes, configuration mounted from the repository, ports
on loopback, no host-root escape hatches), then running healthy.

The compose file is the stack description's (`compose.file`); services are named by the spec's parameters or found
by their role in the description, never by this module.

These checks judge the committed compose file with its **default** values (analysis/compose.py); the running
stack is judged by containerize_live.py.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from sealgate.analysis.compose import ENV_REFERENCE, load_compose
from sealgate.api.context import Context
from sealgate.api.params import REPO_PATH, STRING_LIST
from sealgate.api.registry import check
from sealgate.backends.composefile import ComposeFile, Mount, MountedFile, Service, flag_value
from sealgate.kernel.errors import InputError, Problem
from sealgate.model.results import Severity

# --- the compose file, resolved and located -----------------------------------------------------------------------


def _repo_relative(ctx: Context, source: str) -> str | None:
    try:
        return Path(source).resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return None


def _described(ctx: Context, service: str) -> Any:
    """The stack description's entry of `service`, or None when the description does not name it."""
    return ctx.description.services.get(service)


# --- static checks ------------------------------------------------------------------------------------------------


@check(
    "containerize/compose-services",
    title="Compose declares the required services",
    titles={"pt-BR": "Compose declara os serviços exigidos"},
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


@check(
    "containerize/images-pinned",
    title="Every image pinned to a version (no latest, no untagged)",
    titles={"pt-BR": "Toda imagem fixada em uma versão (sem latest, sem imagem sem tag)"},
)
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
    titles={"pt-BR": "Todos os serviços na rede da stack"},
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
    titles={"pt-BR": "Volumes nomeados para todo diretório de dados"},
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
    titles={"pt-BR": "Montagens de configuração apontam para arquivos que existem no repositório"},
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "expected": {
                "type": "object",
                "description": "service -> {container path: repository path} the container must read there (through "
                "a bind mount of the file or of a directory above it, or a `configs:` entry)",
                "additionalProperties": {"type": "object", "additionalProperties": REPO_PATH},
                "examples": [{"prometheus": {"/etc/prometheus/prometheus.yml": "prometheus/prometheus.yml"}}],
            }
        },
    },
)
def config_mounts(ctx: Context) -> None:
    compose = load_compose(ctx)
    mounted: dict[str, dict[str, str]] = {}
    host: dict[str, dict[str, str]] = {}
    for name, service in sorted(compose.services.items()):
        for index, mount in enumerate(service.mounts(compose.base)):
            if not mount.bind:
                continue
            line = compose.line("services", name, "volumes", index)
            relative = _repo_relative(ctx, mount.source)
            if relative is None and _written_as_host_path(compose, name, index):
                # `/proc:/host/proc`, `/:/rootfs`: the host itself, which an exporter of host metrics reads by design
                # — no configuration of the project. The dangerous ones (the engine's socket, directories above it)
                # are containerize/hardening's findings.
                host.setdefault(name, {})[mount.target] = mount.source
                continue
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
        _config_files(ctx, compose, name, service, mounted)
    for service, wanted in (ctx.params.get("expected") or {}).items():
        for target, relative in wanted.items():
            # What the container reads at `target`, however the compose file puts it there (ComposeFile.file_at).
            found = compose.file_at(service, target) if service in compose.services else None
            actual = _repo_relative(ctx, found.host) if found is not None and found.host is not None else None
            if actual != relative:
                where = f"found {actual}" if actual else _not_there(found)
                ctx.finding(
                    f"service {service}: expected {relative} mounted at {target}, {where}",
                    file=compose.display,
                    line=(
                        compose.line("services", service, found.key, found.index)
                        if found is not None
                        else compose.line("services", service, "volumes")
                    ),
                )
    ctx.record("bind_mounts", mounted)
    ctx.record("host_mounts", host)


def _written_as_host_path(compose: ComposeFile, service: str, index: int) -> bool:
    """Whether the `volumes:` entry at `index` names its source as an absolute host path (`/proc`, `~/x`) in the file
    as written — a host path on purpose — rather than as a path of the project (`./prometheus`, `../config`), which
    Compose resolves from the compose file's directory and which must then be a file of the repository."""
    written = ((compose.source.get("services") or {}).get(service) or {}).get("volumes") or []
    if not isinstance(written, list) or index >= len(written):
        return False
    entry = written[index]
    source = str(entry.get("source", "")) if isinstance(entry, dict) else str(entry).split(":", 1)[0]
    return source.startswith(("/", "~"))


def _not_there(found: MountedFile | None) -> str:
    """What is at an expected container path instead of the repository file, in words."""
    if found is None:
        return "no such bind mount"
    if found.host is None:
        return f"it is on a {found.kind} mount ({found.target}), not a file of the repository"
    return f"it is {found.host}, outside the repository"


def _config_files(
    ctx: Context, compose: ComposeFile, name: str, service: Service, mounted: dict[str, dict[str, str]]
) -> None:
    """The service's `configs:` that Compose makes from a file: the file must be in the repository and exist (a
    config made from `content:` or `environment:` is written in the compose file itself)."""
    declared = compose.raw.get("configs") or {}
    for index, ref in enumerate(service.configs()):
        line = compose.line("services", name, "configs", index)
        spec = declared.get(ref.name)
        if not isinstance(spec, dict):
            ctx.finding(
                f"service {name}: config {ref.name!r} is not declared under the top-level `configs:`",
                file=compose.display,
                line=line,
            )
            continue
        host = compose.object_file("configs", ref.name)
        if host is None:
            if spec.get("external"):
                ctx.finding(
                    f"service {name}: config {ref.name!r} is external, which Compose cannot mount outside Swarm",
                    file=compose.display,
                    line=line,
                )
            continue
        relative = _repo_relative(ctx, host)
        top = compose.line("configs", ref.name, "file") or line
        if relative is None:
            ctx.finding(
                f"config {ref.name} (service {name}, at {ref.target}) is made from {host}, outside the repository: "
                "the stack must not depend on host paths",
                file=compose.display,
                line=top,
            )
        elif not (ctx.root / relative).is_file():
            ctx.finding(
                f"config {ref.name} (service {name}, at {ref.target}) is made from {relative}, which does not exist "
                "in the repository",
                file=compose.display,
                line=top,
            )
        else:
            mounted.setdefault(name, {})[ref.target] = relative
            ctx.judge(relative)


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


@check(
    "containerize/ports-loopback",
    title="Published ports bound to 127.0.0.1",
    titles={"pt-BR": "Portas publicadas ligadas a 127.0.0.1"},
)
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
    titles={
        "pt-BR": (
            "Nenhum container privilegiado, namespace do host, capability de root ou socket do engine; senha "
            "de admin do Grafana nunca padrão nem commitada"
        )
    },
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
            host = _host_source(compose, mount)
            if host is None:
                continue
            # A socket is used through connect(), which a read-only mount does not stop: `:ro` is said not to help.
            read_only = (
                " (read-only does not help: connecting to a socket is not writing to it)" if mount.read_only else ""
            )
            if host.endswith(_SOCKET_NAMES):
                finding(f"mounts the {_engine(host)} socket ({host}): root on the host{read_only}", "volumes", index)
                continue
            socket = engine_socket_below(host)
            if socket is not None:
                inside = posixpath.normpath(posixpath.join(mount.target, posixpath.relpath(socket, host)))
                finding(
                    f"mounts {host} at {mount.target}, and with it the {_engine(socket)} socket {socket} (at {inside} "
                    f"in the container): root on the host{read_only}; mount only the files it needs",
                    "volumes",
                    index,
                )
    _grafana_password(ctx, compose)


# The container engines' API sockets on a Linux host (Docker, rootful and rootless, containerd, Podman): whoever can
# write to one runs containers as root on the host. `/var/run` is `/run` on current hosts; both are listed. `*` is one
# path segment (a user id).
ENGINE_SOCKETS = (
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/user/*/docker.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/containerd.sock",
    "/var/run/podman/podman.sock",
    "/run/podman/podman.sock",
    "/run/user/*/podman/podman.sock",
)
_SOCKET_NAMES = ("docker.sock", "containerd.sock", "podman.sock")


def _engine(socket: str) -> str:
    name = posixpath.basename(socket).removesuffix(".sock")
    return "Docker engine's" if name == "docker" else f"{name} engine's"


def engine_socket_below(host_dir: str) -> str | None:
    """The engine socket a mount of host directory `host_dir` exposes (`/`, `/var/run`, `/run/user/1000`, ...) —
    a parent-directory mount gives the container the socket as surely as mounting the socket itself; None when it
    holds none."""
    parts = [p for p in posixpath.normpath(host_dir).split("/") if p]
    for socket in ENGINE_SOCKETS:
        segments = [p for p in socket.split("/") if p]
        if len(parts) < len(segments) and all(w == "*" or w == p for p, w in zip(parts, segments, strict=False)):
            concrete = [p if w == "*" else w for p, w in zip([*parts, *segments[len(parts) :]], segments, strict=True)]
            return "/" + "/".join(concrete)
    return None


def _host_source(compose: ComposeFile, mount: Mount) -> str | None:
    """The host path a mount gives the container: a bind mount's source, or the `device` of a named volume the local
    driver binds (`driver_opts: {type: none, o: bind, device: /var/run}`); None for anything else."""
    if mount.bind:
        return posixpath.normpath(mount.source) if mount.source else None
    spec = (compose.raw.get("volumes") or {}).get(mount.source) if mount.source else None
    options = (spec.get("driver_opts") or {}) if isinstance(spec, dict) else {}
    if isinstance(options, dict) and "bind" in str(options.get("o", "")).split(",") and options.get("device"):
        device = str(options["device"])
        return posixpath.normpath(device) if device.startswith("/") else None
    return None


# A variable as a compose service is given it: its value as written (None: passed through from the environment), the
# repository file that sets it and the line.
_Written = tuple[str | None, str, int | None]


def _grafana_password(ctx: Context, compose: ComposeFile) -> None:
    """Every service running a Grafana image. Read from the files as written (the resolved model would hold the
    operator's value when it is exported): the service's `env_file:` files of the repository, then its `environment:`,
    which Compose lets override them."""
    raw = compose.source.get("services") or {}
    grafanas = [n for n, s in sorted(compose.services.items()) if "grafana" in str(s.image or "")]
    for name in grafanas:
        line = compose.line("services", name, "environment")
        # variable -> (its value as written, or None when passed through from the environment; file; line)
        written = _env_file_variables(ctx, compose, name)
        environment = (raw.get(name) or {}).get("environment") or {}
        if isinstance(environment, list):
            pairs = [str(e).split("=", 1) for e in environment]
            environment = {p[0]: (p[1] if len(p) > 1 else None) for p in pairs}
        for key, value in environment.items():
            written[str(key)] = (None if value is None else str(value), compose.display, line)
        passed = {k for k in written if k in (_GRAFANA_PASSWORD, f"{_GRAFANA_PASSWORD}__FILE")}
        literal, where, at = written.get(_GRAFANA_PASSWORD, (None, compose.display, line))
        if literal is not None and not ENV_REFERENCE.search(literal):
            what = "Grafana's default 'admin'" if literal == "admin" else "a password committed to git"
            ctx.finding(
                f"service {name}: {_GRAFANA_PASSWORD} is set in {'the file' if where == compose.display else where} "
                f"({what}); pass it through from the environment (or a secret file) instead",
                file=where,
                line=at,
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


def _env_file_variables(ctx: Context, compose: ComposeFile, service: str) -> dict[str, _Written]:
    """The variables the service's `env_file:` entries (a path, a list of paths or of `{path, required}`, relative to
    the compose file) set, each with its value as written, the repository file and the line; later files override
    earlier ones, as in Compose. A file outside the repository or missing sets nothing here."""
    declared = ((compose.source.get("services") or {}).get(service) or {}).get("env_file") or []
    found: dict[str, _Written] = {}
    for entry in declared if isinstance(declared, list) else [declared]:
        path = str(entry.get("path", "")) if isinstance(entry, dict) else str(entry)
        relative = _repo_relative(ctx, str(compose.base / path)) if path else None
        if relative is None or not (ctx.root / relative).is_file():
            continue
        text = ctx.judge(relative).read_text(encoding="utf-8", errors="replace")
        for number, row in enumerate(text.splitlines(), 1):
            key, sep, value = row.strip().removeprefix("export ").partition("=")
            if sep and key.strip() and not key.lstrip().startswith("#"):
                found[key.strip()] = (value.strip().strip("\"'"), relative, number)
    return found

"""Containerization: the services a stack description names declared in its compose file the way a containerized
stack should be (pinned images, one network, named data volumes, configuration mounted from the repository, ports
on loopback, no host-root escape hatches), then running healthy. The reference project's: Prometheus, Alertmanager and
Grafana with the API, PostgreSQL and the console-log sink, in stack/docker-compose.yml.

The compose file is the stack description's (`compose.file`); services are named by the spec's parameters or found
by their role in the description, never by this module.

These checks judge the committed compose file with its **default** values (analysis/compose.py); the running
stack is judged by containerize_live.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sealgate.analysis.compose import ENV_REFERENCE, load_compose
from sealgate.api.context import Context
from sealgate.api.params import STRING_LIST
from sealgate.api.registry import check
from sealgate.backends.composefile import ComposeFile, Service, flag_value
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
        if literal is not None and not ENV_REFERENCE.search(str(literal)):
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

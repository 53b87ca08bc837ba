"""Containerization, live: the running stack seen through `ctx.stack` — every described service's container running
and healthy with its image id and binary version, Prometheus healthy and ready with its targets up and Alertmanager
discovered, Alertmanager running the repository's configuration, Grafana answering (skipped, with the reason, where
no Grafana can run). On the local backend there are no containers: the containerized checks fail with "stack ran as
local processes" — a containerization seal must not pass without containers — after recording what they saw.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from sealgate.api.context import Context
from sealgate.api.params import REPO_PATH, STRING_LIST
from sealgate.api.registry import check
from sealgate.backends.errors import StackError
from sealgate.backends.http import Answer, HttpAnswerError, Prometheus, request
from sealgate.model.results import Severity

HTTP_TIMEOUT = 5.0


LOCAL_REASON = (
    "stack ran as local processes (backend {backend}): no container exists to prove containerization "
    "(install a Docker engine and Compose v2 where the seal runs, and seal again)"
)


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
    titles={"pt-BR": "Cada container rodando e saudável, com id da imagem e versão do binário"},
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
    decl = ctx.description.services.get(service)
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
    titles={"pt-BR": "Prometheus /-/healthy e /-/ready, alvos de scrape up, Alertmanager descoberto"},
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
    titles={"pt-BR": "Alertmanager /-/ready e /api/v2/status, rodando a configuração do repositório"},
    needs_stack=True,
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["config"],
        "properties": {"config": {**REPO_PATH, "description": "the Alertmanager config file, repo-relative"}},
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
    titles={"pt-BR": "Grafana responde /api/health (pulado com o motivo onde nenhum Grafana pode rodar)"},
    needs_stack=True,
)
def grafana_live(ctx: Context) -> None:
    from sealgate.backends.errors import ServiceNotRunning

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

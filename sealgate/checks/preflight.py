"""Preflight: the state of the world before the stack is containerized, and the environment facts every later stage
relies on (a sprint's first stage). Nothing here needs the stack; the stage runs before it is brought up.

* `preflight/standalone-prometheus` — the seed's `curl localhost:9090/-/healthy`, made a decision: nothing answers →
  FRESH_INSTALL_MODE; a Prometheus answers → MIGRATION_MODE with its version and TSDB size, failed until the spec
  records a migration decision (never start a fresh Prometheus over someone's history). A Prometheus of this
  project's own stack (the stack description's Prometheus) is told apart (Docker labels / process command line) and
  is not a standalone.
* `preflight/tools`, `preflight/ports-free`, `preflight/worktree`, `preflight/base-tag`, `preflight/disk-space`.
* `preflight/ports-free` — each host port the compose file publishes is free or held by this project's own stack;
  under SEALGATE_PORTS=free the compose backend chooses its ports from the kernel at start time, which is recorded.

What this stage needs to know about the backend the run will use (which one `auto` picks, the compose project the
compose backend will name) comes from `sealgate.backends`, never recomputed here.
"""

from __future__ import annotations

import datetime
import errno
import os
import re
import shutil
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sealgate.api.context import Context
from sealgate.api.registry import check
from sealgate.backends.errors import StackError
from sealgate.backends.http import HttpAnswerError, Prometheus, request
from sealgate.kernel.errors import InputError, Problem
from sealgate.kernel.gitrepo import Repo
from sealgate.kernel.ports import describe_owner, docker_client, free_ports_requested, port_owner
from sealgate.kernel.text import first_line
from sealgate.model.results import Severity
from sealgate.sprint import seals

HTTP_TIMEOUT = 3.0
DEFAULT_PROMETHEUS_URL = "http://localhost:9090"  # Prometheus's own default address
_LAST_DATE_MS = 253402300799000  # 9999-12-31T23:59:59Z: the last instant a datetime can show


# --- whose is a port (who holds one: sealgate.kernel.ports) ----------------------------------------------------------


def is_ours(owner: dict[str, Any], root: Path, service: str | None = None, same_project: bool = False) -> bool:
    """True when the port's owner is this project's own stack: a container created from this repository's compose
    file (for `service`, when given; with `same_project`, only of the compose project the backend will use — another
    project of the same checkout would still collide on the port), or a local-backend process whose command line
    points into this repository."""
    from sealgate.backends.compose import default_project

    if owner.get("kind") == "container":
        working_dir = owner.get("compose_working_dir") or ""
        from_here = bool(working_dir) and Path(working_dir).resolve().is_relative_to(root.resolve())
        project_matches = owner.get("compose_project") == default_project(root)
        mine = project_matches if same_project else (project_matches or from_here)
        return mine and (service is None or owner.get("compose_service") == service)
    return str(root.resolve()) in str(owner.get("cmdline") or "")


# --- preflight/standalone-prometheus ------------------------------------------------------------------------------


def _status(prometheus: Prometheus, what: str) -> dict[str, Any] | None:
    """`data` of /api/v1/status/<what>; None when nothing answers there or it is not a Prometheus API."""
    try:
        data = prometheus.api(f"status/{what}")
    except (StackError, HttpAnswerError):
        return None
    return data if isinstance(data, dict) else None


def _self_metrics(url: str) -> dict[str, float]:
    """A few TSDB gauges from the Prometheus's own /metrics (they include the persisted blocks, not only the head)."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = {
        "prometheus_tsdb_lowest_timestamp",
        "prometheus_tsdb_storage_blocks_bytes",
        "prometheus_tsdb_head_series",
        "prometheus_tsdb_blocks_loaded",
    }
    try:
        answer = request("GET", f"{url}/metrics", timeout=HTTP_TIMEOUT)
        if not answer.ok or not isinstance(answer.body, str):
            return {}
        families = list(text_string_to_metric_families(answer.body))
    except (StackError, ValueError):
        return {}
    return {s.name: s.value for f in families for s in f.samples if s.name in wanted}


def _iso_ms(ms: float) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(timespec="seconds")


STANDALONE_PARAMS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "url": {
            "type": "string",
            "pattern": "^https?://",
            "description": f"where a standalone Prometheus would be (default: {DEFAULT_PROMETHEUS_URL})",
        },
        "migration_decision": {
            "type": "object",
            "additionalProperties": False,
            "required": ["decision", "approver", "justification"],
            "properties": {
                "decision": {"type": "string", "enum": ["migrate", "discard", "keep-standalone"]},
                "approver": {"type": "string", "minLength": 3},
                "justification": {"type": "string", "minLength": 10},
            },
        },
    },
}


@check(
    "preflight/standalone-prometheus",
    volatile=True,
    title="Standalone Prometheus probed: FRESH_INSTALL_MODE or MIGRATION_MODE with a decision",
    titles={"pt-BR": "Prometheus standalone sondado: FRESH_INSTALL_MODE, ou MIGRATION_MODE com decisão registrada"},
    params=STANDALONE_PARAMS,
)
def standalone_prometheus(ctx: Context) -> None:
    url = str(ctx.params.get("url", DEFAULT_PROMETHEUS_URL)).rstrip("/")
    ctx.record("url", url)
    try:
        healthy = request("GET", f"{url}/-/healthy", timeout=HTTP_TIMEOUT)
    except StackError as exc:
        ctx.record("mode", "FRESH_INSTALL_MODE")
        ctx.record("probe", f"GET {url}/-/healthy: {exc.problems[0].what} (nothing answers)")
        return
    ctx.record("probe", f"GET {url}/-/healthy: HTTP {healthy.status}")
    prometheus = Prometheus(url, timeout=HTTP_TIMEOUT)
    buildinfo = _status(prometheus, "buildinfo")
    if buildinfo is None:
        # Something answers that is not a Prometheus API: no history to migrate, but say what was seen.
        ctx.record("mode", "FRESH_INSTALL_MODE")
        ctx.finding(
            f"{url} answers (HTTP {healthy.status}) but {url}/api/v1/status/buildinfo is not a Prometheus API",
            json_path=f"{url}/api/v1/status/buildinfo",
            severity=Severity.WARNING,
        )
        return

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    owner = port_owner(port, docker_client())
    ctx.record("version", str(buildinfo.get("version", "?")))
    if owner is not None:
        ctx.record("answering", describe_owner(owner))
    if owner is not None and is_ours(owner, ctx.root, _described_prometheus(ctx)):
        # Our own containerized Prometheus from an earlier run: not a standalone, its data stays in its volume.
        ctx.record("mode", "FRESH_INSTALL_MODE")
        ctx.record("standalone", False)
        ctx.finding(
            f"{url} is this project's own stack ({describe_owner(owner)}), not a standalone Prometheus: "
            "no migration needed, its data stays in its volume",
            json_path=f"{url}/-/healthy",
            severity=Severity.INFO,
        )
        return

    ctx.record("mode", "MIGRATION_MODE")
    ctx.record("standalone", True)
    tsdb = _status(prometheus, "tsdb") or {}
    head = tsdb.get("headStats") or {}
    series = int(head.get("numSeries", 0))
    ctx.record("tsdb_head_series", series)
    gauges = _self_metrics(url)
    # An empty TSDB reports int64 bounds (head minTime, prometheus_tsdb_lowest_timestamp): no sample, not a date.
    candidates = [float(head.get("minTime") or 0), float(gauges.get("prometheus_tsdb_lowest_timestamp", 0))]
    oldest_candidates = [ms for ms in candidates if 0 < ms < _LAST_DATE_MS]
    if oldest_candidates:
        ctx.record("tsdb_oldest_sample", _iso_ms(min(oldest_candidates)))
    if "prometheus_tsdb_storage_blocks_bytes" in gauges:
        ctx.record("tsdb_blocks_bytes", int(gauges["prometheus_tsdb_storage_blocks_bytes"]))
    flags = _status(prometheus, "flags") or {}
    if flags.get("storage.tsdb.path"):
        ctx.record("tsdb_path", flags["storage.tsdb.path"])

    decision = ctx.params.get("migration_decision")
    summary = (
        f"a standalone Prometheus {buildinfo.get('version', '?')} answers at {url} (MIGRATION_MODE: "
        f"{series} head series, oldest sample {ctx.data.get('tsdb_oldest_sample', 'unknown')}"
        + (f", held by {describe_owner(owner)}" if owner else "")
        + ")"
    )
    if decision:
        ctx.record("migration_decision", f"{decision['decision']} (approved by {decision['approver']})")
        ctx.finding(
            f"{summary}; decision recorded: {decision['decision']}",
            severity=Severity.INFO,
            json_path=f"{url}/api/v1/status/tsdb",
        )
        return
    ctx.finding(
        f"{summary}: starting a fresh containerized Prometheus would orphan its history; record a "
        "`migration_decision` for preflight/standalone-prometheus in the spec (or a waiver)",
        json_path=f"{url}/api/v1/status/tsdb",
    )


def _described_prometheus(ctx: Context) -> str | None:
    """The stack description's Prometheus service (whose container, of this checkout, is not a standalone); None
    when the project describes no stack or no Prometheus in it."""
    if ctx.spec.stack is None:
        return None
    found = ctx.spec.stack.with_role("prometheus")
    return found[0].name if len(found) == 1 else None


def chosen_backend(ctx: Context) -> tuple[str, str]:
    """(backend, why) the run will use, as `sealgate.backends` will choose it for the run's `--backend`."""
    from sealgate.backends import choose_backend

    _requested, chosen, why = choose_backend(ctx.options.backend)
    return chosen, why


# --- preflight/tools ----------------------------------------------------------------------------------------------


def _version_token(text: str) -> str:
    match = re.search(r"\d+\.\d+(?:\.\d+)?(?:[-+~][\w.+~-]*)?", text)
    return match.group(0) if match else first_line(text)[:80]


@check(
    "preflight/tools",
    volatile=True,
    title="Tools the stages need are installed, with their versions",
    titles={"pt-BR": "Ferramentas de que os EIXOs precisam instaladas, com suas versões"},
    params={"type": "object", "additionalProperties": False, "properties": {}},
)
def tools(ctx: Context) -> None:
    """promtool, amtool and git always; then the chosen backend's own: a Docker engine and Compose, or the binaries
    the local backend runs the described services with (Prometheus, Alertmanager, Python). For `auto` the choice is
    the one the run makes."""
    backend, why = chosen_backend(ctx)
    ctx.record("backend", backend)
    ctx.record("backend_reason", why)

    found: dict[str, str] = {}

    def version(tool: str, argv: list[str], required: bool = True) -> None:
        if shutil.which(argv[0]) is None:
            if required:
                ctx.finding(
                    f"{tool}: `{argv[0]}` is not installed (needed by the {backend} backend or the rules checks)"
                )
            return
        result = ctx.run(argv, timeout=30)
        text = result.stdout.strip() or result.stderr.strip()
        if not result.ok or not text:
            if required:
                ctx.finding(f"{tool}: `{' '.join(argv)}` exited {result.exit_code}: {first_line(result.output)}")
            return
        found[tool] = _version_token(text)
        ctx.tool_version(tool, found[tool])

    version("git", ["git", "--version"])
    version("promtool", ["promtool", "--version"])
    version("amtool", ["amtool", "--version"])
    if backend == "compose":
        version("docker-engine", ["docker", "version", "--format", "{{.Server.Version}}"])
        if shutil.which("docker") and ctx.run(["docker", "compose", "version", "--short"], timeout=30).ok:
            version("docker-compose", ["docker", "compose", "version", "--short"])
        else:
            version("docker-compose", ["docker-compose", "version", "--short"])
    else:
        from sealgate.backends.provision import RELEASES, find_binary

        for name in _local_kinds(ctx, RELEASES):
            try:
                binary = find_binary(name)
            except Exception as exc:  # a bad SEALGATE_*_BIN: say so, as a finding
                ctx.finding(f"{name}: {exc}")
                continue
            if binary is None:
                ctx.finding(f"{name}: no binary for the local backend (PATH, SEALGATE_{name.upper()}_BIN, cache)")
                continue
            version(name, [str(binary.path), "--version"])
        version("python3", ["python3", "--version"])
    ctx.record("versions", dict(sorted(found.items())))


def _local_kinds(ctx: Context, provisioned: Any) -> list[str]:
    """The binaries the local backend provisions (RELEASES) that the described services run as; all of them when
    the project describes no stack."""
    if ctx.spec.stack is None:
        return sorted(provisioned)
    kinds = {decl.local.kind for decl in ctx.spec.stack.services.values()}
    return [name for name in provisioned if name in kinds]


# --- preflight/ports-free -----------------------------------------------------------------------------------------


def stack_ports(root: Path, compose_file: str, services: list[str]) -> list[tuple[str, str, int, int | None]]:
    """(service, host ip, host port, line in the compose file) the stack will publish, as the backend resolves
    the compose file (repository-relative `compose_file`): the process environment (the host-port variables the file
    reads) over the file's defaults."""
    from sealgate.backends.composefile import ComposeFile

    compose = ComposeFile(root / compose_file, dict(os.environ), compose_file)
    found = []
    for name in services:
        service = compose.services.get(name)
        if service is None:
            continue
        for index, (host_ip, host_port, _target) in enumerate(service.ports()):
            if host_port is not None:
                found.append((name, host_ip or "0.0.0.0", host_port, compose.line("services", name, "ports", index)))
    return found


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port. SO_REUSEADDR, as every server sets it: connections of a stack that
    just stopped linger in TIME_WAIT for a minute and must not count as the port being taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


@check(
    "preflight/ports-free",
    volatile=True,
    title="The stack's host ports are free (or held by this project's own stack)",
    titles={"pt-BR": "Portas da stack no host livres (ou ocupadas pela própria stack do projeto)"},
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "services": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "description": "services whose published ports must be free (default: every described service)",
            }
        },
    },
)
def ports_free(ctx: Context) -> None:
    description = ctx.description
    compose_file = description.compose_file
    ctx.judge(compose_file)
    services = [str(s) for s in ctx.params.get("services", list(description.services))]
    unknown = [name for name in services if name not in description.services]
    if unknown:
        raise InputError(
            Problem(
                ctx.spec.relpath,
                f"{ctx.check_id}: `services` names {', '.join(unknown)}, not in the stack description "
                f"{description.path}",
                f"described: {', '.join(description.services)}",
            )
        )
    try:
        ports = stack_ports(ctx.root, compose_file, services)
    except Exception as exc:  # StackError / InputError from reading the compose file
        ctx.error(f"{compose_file}: cannot read the published ports: {exc}")
    backend, _why = chosen_backend(ctx)
    ctx.record("backend", backend)
    try:
        chosen_at_start = backend == "compose" and free_ports_requested()
    except InputError as exc:
        ctx.error(str(exc))
    if chosen_at_start:
        # SEALGATE_PORTS=free: the backend asks the kernel for every host port right before `compose up` (and
        # retries once if one is taken in between), so no port named by the file or environment is used now.
        ctx.record("port_choice", "free: chosen by the kernel at start time (SEALGATE_PORTS=free)")
        ctx.record("ports", {service: "chosen free at start time" for service, _host, _port, _line in ports})
        if not ports:
            ctx.fail(f"{compose_file}: none of the services {services} publishes a port")
        return
    ctx.record("port_choice", "fixed: the compose file's ports, with SEALGATE_*_PORT overrides")
    client = docker_client()
    # The local backend picks free ports when it starts: a taken compose port is then worth a note, not a failure.
    conflict = Severity.ERROR if backend == "compose" else Severity.WARNING
    checked = {}
    for service, host, port, line in ports:
        bind_host = "127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0"
        key = f"{host}:{port}"
        if not port_in_use(bind_host, port):
            checked[key] = f"{service}: free"
            continue
        owner = port_owner(port, client)
        if owner is not None and is_ours(owner, ctx.root, service, same_project=True):
            checked[key] = f"{service}: held by this project's own stack ({describe_owner(owner)})"
            ctx.finding(
                f"port {key} ({service}) is held by this project's own stack ({describe_owner(owner)}), which "
                "the backend reuses",
                file=compose_file,
                line=line,
                severity=Severity.INFO,
            )
            continue
        holder = describe_owner(owner) if owner else "an unknown owner"
        checked[key] = f"{service}: in use by {holder}"
        ctx.finding(
            f"port {key} that service {service} publishes is already in use by {holder}",
            file=compose_file,
            line=line,
            severity=conflict,
        )
    ctx.record("ports", checked)
    if not ports:
        ctx.fail(f"{compose_file}: none of the services {services} publishes a port")


# --- preflight/worktree -------------------------------------------------------------------------------------------


@check(
    "preflight/worktree",
    title="Working tree state recorded (a dirty tree blocks only the tag)",
    volatile=True,
    titles={"pt-BR": "Estado da árvore de trabalho registrado (árvore suja bloqueia só a tag)"},
)
def worktree(ctx: Context) -> None:
    status = ctx.run(["git", "status", "--porcelain=v1", "--untracked-files=all", "--branch"], timeout=60)
    if not status.ok:
        ctx.error(f"git status exited {status.exit_code}: {first_line(status.output)}")
    lines = status.stdout.splitlines()
    branch_line = lines[0][3:] if lines and lines[0].startswith("## ") else ""
    changed = [line[3:] for line in lines if line and not line.startswith("## ")]
    branch = branch_line.split("...", 1)[0]
    head = ctx.run(["git", "rev-parse", "HEAD"], timeout=30)
    ctx.record("head", head.stdout.strip())
    ctx.record("branch", branch)
    ctx.record("dirty", bool(changed))
    ctx.record("changed_files", changed[:50])
    spec_branch = ctx.spec.raw.get("branch")
    if spec_branch and branch and branch != spec_branch:
        ctx.finding(f"on branch {branch}; the spec names {spec_branch}", file=ctx.spec.relpath, severity=Severity.INFO)
    if changed:
        shown = ", ".join(changed[:10]) + (f" (+{len(changed) - 10} more)" if len(changed) > 10 else "")
        ctx.finding(
            f"working tree has {len(changed)} uncommitted change(s): {shown} — recorded; the seal's tag will be "
            "refused until the tree is clean",
            severity=Severity.WARNING,
        )


# --- preflight/base-tag -------------------------------------------------------------------------------------------


@check(
    "preflight/base-tag",
    title="Base tag present and an ancestor of HEAD",
    volatile=True,
    titles={"pt-BR": "Tag base presente e ancestral de HEAD"},
)
def base_tag(ctx: Context) -> None:
    tag = ctx.spec.base_tag
    if not tag:
        if ctx.spec.first_in_chain:
            ctx.skip("the spec declares this sprint the first of its chain (first_in_chain: true): no base tag")
        ctx.fail("the spec names no base_tag")
    ctx.record("base_tag", tag)
    resolved = ctx.run(["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}"], timeout=30)
    in_history = None if resolved.ok else seals.in_history(Repo(ctx.root), tag)
    if in_history is not None:
        # No tag here (a tag-less clone), but HEAD's history holds the base's seal commit, whose record names it.
        ctx.record("base_found", f"seal commit {in_history.seal_commit[:12]} in HEAD's history (tag not present)")
    elif not resolved.ok:
        external = ctx.spec.raw.get("base_external")
        if external:
            ctx.record("base_external", external)
            ctx.skip(
                f"base tag {tag} does not exist in this repository; the spec declares it external "
                f"({external.get('repository', '?')}: {external.get('reason', 'no reason given')}), so its "
                "ancestry cannot be proven here"
            )
        ctx.fail(f"base tag {tag} (sprint spec base_tag) does not exist in this repository")
    commit = in_history.seal_commit if in_history is not None else resolved.stdout.strip()
    ctx.record("base_commit", commit)
    expected = str(ctx.spec.raw.get("base_commit") or "")
    if expected and not commit.startswith(expected):
        ctx.finding(
            f"base tag {tag} points at {commit[:12]}, the spec's base_commit is {expected}",
            file=ctx.spec.relpath,
            severity=Severity.WARNING,
        )
    ancestor = ctx.run(["git", "merge-base", "--is-ancestor", commit, "HEAD"], timeout=30)
    if ancestor.exit_code == 1:
        ctx.fail(f"base tag {tag} ({commit[:12]}) is not an ancestor of HEAD")
    if not ancestor.ok:
        ctx.error(f"git merge-base exited {ancestor.exit_code}: {first_line(ancestor.output)}")
    count = ctx.run(["git", "rev-list", "--count", f"{commit}..HEAD"], timeout=30)
    if count.ok:
        ctx.record("commits_since_base", int(count.stdout.strip() or 0))


# --- preflight/disk-space -----------------------------------------------------------------------------------------


@check(
    "preflight/disk-space",
    volatile=True,
    title="Free disk space for backups and the stack's data",
    titles={"pt-BR": "Espaço livre em disco para backups e para os dados da stack"},
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {"min_free_mb": {"type": "integer", "minimum": 1}},
    },
)
def disk_space(ctx: Context) -> None:
    """The repository's filesystem (artifacts and backups land there) and, when Docker answers, the engine's data
    root (volumes live there; a backup reads them)."""
    minimum = int(ctx.params.get("min_free_mb", 1024))
    places = {"repository": ctx.root}
    if shutil.which("docker"):
        info = ctx.run(["docker", "info", "--format", "{{.DockerRootDir}}"], timeout=30)
        if info.ok and info.stdout.strip() and Path(info.stdout.strip()).exists():
            places["docker_root"] = Path(info.stdout.strip())
    measured = {}
    for what, path in places.items():
        usage = shutil.disk_usage(path)
        free_mb = usage.free // (1024 * 1024)
        measured[what] = {"path": str(path), "free_mb": int(free_mb), "total_mb": int(usage.total // (1024 * 1024))}
        if free_mb < minimum:
            ctx.finding(f"{what} ({path}): {free_mb} MB free, fewer than the {minimum} MB required")
    ctx.record("min_free_mb", minimum)
    ctx.record("disk", measured)

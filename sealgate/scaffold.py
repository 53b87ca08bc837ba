"""`sealgate init`: what a repository needs to start sealing its sprints, written without touching anything it has.

- `noxfile.py` — a few lines: the sessions come from `sealgate.noxsessions`;
- `sprint/<ID>.yaml` — a spec skeleton that loads and plans: the first stages run library checks that need nothing
  but the stack description, and the criteria name them;
- `sprint/<ID>.waivers.yaml` — an empty waiver file;
- a stack description (`stack.yaml` next to the compose file) inferred from the compose file: each service's role
  from its image and from who refers to it (Prometheus' scrape targets, Alertmanager's webhook receivers), its port
  and readiness path from what it publishes and its healthcheck.

Existing files are never overwritten: init refuses, naming them, and writes nothing. Generated outputs are added to
`.gitignore` (appended, never rewritten), so a run never dirties the tree it judges.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sealgate.backends.composefile import ComposeFile, flag_value, map_path
from sealgate.backends.errors import StackError
from sealgate.kernel.errors import InputError, Problem

COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
IGNORED = ("/artifacts/", "/reports/SEAL_*.md", "/reports/out/", "/.sealgate/", ".nox/")
# What an image says about a service's role, in the order tried (an exporter is a target, not a Prometheus).
IMAGE_ROLES = (
    (re.compile(r"alertmanager"), "alertmanager"),
    (re.compile(r"exporter"), "target"),
    (re.compile(r"prometheus"), "prometheus"),
    (re.compile(r"grafana"), "dashboards"),
    (re.compile(r"postgres"), "database"),
    (re.compile(r"minio|s3"), "storage"),
)
ROLE_READY = {"prometheus": "/-/ready", "alertmanager": "/-/ready", "dashboards": "/api/health"}
DATABASE_PORTS = {"database": 5432}
_HEALTH_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost|0\.0\.0\.0)(?::(?P<port>\d+))?(?P<path>/[^\s'\"]*)")

NOXFILE = '''"""Nox sessions: `nox -s seal`, `nox -s eixo_<N>` (one per EIXO of the specs in sprint/), `nox -s report`,
`nox -s verify -- TAG`. They run the sealgate installed beside Nox (`pip install sealgate`)."""

from sealgate.noxsessions import sealgate_sessions

sealgate_sessions(install_args=None)
'''


@dataclass
class Plan:
    files: dict[str, str]  # repository-relative path -> content
    stack_path: str


def find_compose(root: Path, given: str | None) -> str:
    if given:
        if not (root / given).is_file():
            raise InputError(Problem(given, "compose file not found"))
        return given
    for candidate in COMPOSE_NAMES:
        if (root / candidate).is_file():
            return candidate
    raise InputError(
        Problem(str(root), "no compose file found (compose.yaml, docker-compose.yml, …)", "name one with --compose")
    )


def infer_stack(root: Path, compose_rel: str) -> dict[str, Any]:
    """A stack description (as a YAML-ready mapping) inferred from the compose file and the configs it mounts."""
    try:
        compose = ComposeFile(root / compose_rel, dict(os.environ), compose_rel)
    except StackError as exc:
        raise InputError(*exc.problems) from None
    roles = {name: _image_role(str(svc.image or "")) for name, svc in compose.services.items()}
    prometheus = next((n for n, r in roles.items() if r == "prometheus"), None)
    alertmanager = next((n for n, r in roles.items() if r == "alertmanager"), None)
    for name in _config_hosts(compose, prometheus, "/etc/prometheus/prometheus.yml", _scrape_hosts):
        if roles.get(name) in (None, "other"):
            roles[name] = "target"
    for name in _config_hosts(compose, alertmanager, "/etc/alertmanager/alertmanager.yml", _webhook_hosts):
        if roles.get(name) in (None, "other"):
            roles[name] = "receiver"
    services: dict[str, Any] = {}
    for name in _start_order(compose):
        svc = compose.services[name]
        role = roles[name] or "other"
        entry: dict[str, Any] = {"role": role}
        health_port, health_path = _healthcheck_url(svc.raw.get("healthcheck"))
        published = {p[2] for p in svc.published_ports()}
        if len(published) != 1:
            port = health_port or DATABASE_PORTS.get(role)
            if port:
                entry["port"] = port
        ready = ROLE_READY.get(role) or health_path
        if ready:
            entry["ready"] = ready
        if svc.profiles:
            entry["optional"] = True
        services[name] = entry
    return {"sealgate_stack": 1, "compose": {"file": compose_rel}, "services": services}


def _image_role(image: str) -> str | None:
    name = image.rsplit("/", 1)[-1].split(":", 1)[0].lower()
    return next((role for pattern, role in IMAGE_ROLES if pattern.search(name)), None)


def _config_hosts(compose: ComposeFile, service: str | None, default: str, hosts: Any) -> list[str]:
    """Service names a mounted config refers to (scrape targets, webhook hosts)."""
    if service is None:
        return []
    svc = compose.services[service]
    host_path = map_path(flag_value(svc.command(), "--config.file") or default, svc.mounts(compose.base))
    try:
        config = yaml.safe_load(Path(host_path).read_text(encoding="utf-8")) if host_path else None
    except (OSError, yaml.YAMLError):
        return []
    return [h for h in hosts(config if isinstance(config, dict) else {}) if h in compose.services]


def _scrape_hosts(config: dict[str, Any]) -> list[str]:
    return [
        str(target).rsplit(":", 1)[0]
        for scrape in config.get("scrape_configs") or []
        for static in (scrape or {}).get("static_configs") or []
        for target in (static or {}).get("targets") or []
    ]


def _webhook_hosts(config: dict[str, Any]) -> list[str]:
    """Hosts Alertmanager posts to: every integration's `url` / `api_url` written in the configuration (webhooks, and
    e.g. a PagerDuty events URL pointing at a service of the stack)."""
    urls = [
        str(hook.get(key, ""))
        for receiver in config.get("receivers") or []
        for name, hooks in (receiver or {}).items()
        if str(name).endswith("_configs") and isinstance(hooks, list)
        for hook in hooks
        if isinstance(hook, dict)
        for key in ("url", "api_url")
    ]
    return [re.sub(r"^[a-z]+://([^/:]+).*$", r"\1", url) for url in urls if url]


def _healthcheck_url(healthcheck: Any) -> tuple[int | None, str | None]:
    test = (healthcheck or {}).get("test") if isinstance(healthcheck, dict) else None
    text = " ".join(map(str, test)) if isinstance(test, list) else str(test or "")
    match = _HEALTH_URL.search(text)
    if not match:
        return None, None
    return (int(match.group("port")) if match.group("port") else None), match.group("path")


def _start_order(compose: ComposeFile) -> list[str]:
    """Services ordered so that each comes after what it depends on (compose `depends_on`), else file order."""
    order: list[str] = []

    def visit(name: str, trail: tuple[str, ...] = ()) -> None:
        if name in order or name in trail:
            return
        depends = compose.services[name].raw.get("depends_on") or []
        for dependency in depends if isinstance(depends, list) else list(depends):
            if dependency in compose.services:
                visit(str(dependency), (*trail, name))
        order.append(name)

    for name in compose.services:
        visit(name)
    return order


def spec_skeleton(sprint_id: str, stack_rel: str, title: str) -> str:
    return f"""# Sprint {sprint_id}: what it must deliver and the evidence that proves it (see the sealgate README).
sealgate: 1
id: {sprint_id}
title: {title}
language: en
first_in_chain: true  # or: base_tag: <the previous sprint's seal tag>
tag: {sprint_id}-SEALED
stack: {stack_rel}
objective: Describe what this sprint delivers.
expected_results:
  - The stack runs and answers, every image pinned, published ports on 127.0.0.1 only
stages:
  - number: 0
    name: preflight
    title: Preflight
    checks:
      - id: preflight/tools
      - id: preflight/worktree
  - number: 1
    name: stack
    title: The stack runs
    checks:
      - id: containerize/images-pinned
      - id: containerize/ports-loopback
      - id: containerize/containers-healthy
criteria:
  - id: C1
    title: The stack runs and answers
    stages: [0, 1]
"""


def plan(root: Path, sprint_id: str, compose: str | None = None) -> Plan:
    compose_rel = find_compose(root, compose)
    stack = infer_stack(root, compose_rel)
    parent = Path(compose_rel).parent
    stack_rel = (parent / "stack.yaml").as_posix() if parent.as_posix() != "." else "stack.yaml"
    header = (
        f"# The stack of this repository, described for sealgate (inferred from {compose_rel} by `sealgate init`;\n"
        "# review the roles, and add `traffic:` to a target and a `backup:` section if your sprints need them).\n"
    )
    files = {
        "noxfile.py": NOXFILE,
        f"sprint/{sprint_id}.yaml": spec_skeleton(sprint_id, stack_rel, f"Sprint {sprint_id}"),
        f"sprint/{sprint_id}.waivers.yaml": "# Accepted exceptions, each with justification, approver and expiry.\n"
        "waivers: []\n",
        stack_rel: header + yaml.safe_dump(stack, sort_keys=False, allow_unicode=True),
    }
    return Plan(files, stack_rel)


def init(root: Path, sprint_id: str, compose: str | None = None) -> list[str]:
    """Write the plan's files; refuse (writing nothing) when any exists. Returns what was written."""
    if not (root / ".git").exists():
        raise InputError(Problem(str(root), "not a git repository", "run `git init` first: seals are git tags"))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", sprint_id):
        raise InputError(Problem("--sprint", f"{sprint_id!r} is not a sprint id (letters, digits, '.', '_', '-')"))
    planned = plan(root, sprint_id, compose)
    existing = [name for name in planned.files if (root / name).exists()]
    if existing:
        raise InputError(*(Problem(name, "already exists: sealgate init never overwrites a file") for name in existing))
    for name, content in planned.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    written = list(planned.files)
    if _append_ignores(root):
        written.append(".gitignore (appended)")
    return written


def _append_ignores(root: Path) -> bool:
    path = root / ".gitignore"
    present = set(path.read_text(encoding="utf-8").splitlines()) if path.is_file() else set()
    missing = [line for line in IGNORED if line not in present]
    if not missing:
        return False
    with path.open("a", encoding="utf-8") as handle:
        handle.write(
            "\n# sealgate: generated by runs, never part of the tree a seal judges\n" + "\n".join(missing) + "\n"
        )
    return True

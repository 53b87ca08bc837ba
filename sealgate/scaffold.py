"""`sealgate init`: what a repository needs to start sealing its sprints, written without touching anything it has.

- `noxfile.py` — a few lines: the sessions come from `sealgate.noxsessions`;
- `sprint/<ID>.yaml` — a spec skeleton that loads and plans: the first stages run library checks that need nothing
  but the stack description, and the criteria name them. In a repository with no compose file, a stack-less
  skeleton instead: static checks that need no stack (and promtool's unit tests, when the repository has some).
  With `--example NAME`, one of the example specs shipped with sealgate (`sealgate/examples/NAME.yaml`), commented
  stage by stage and check by check;
- `sprint/<ID>.waivers.yaml` — an empty waiver file;
- a stack description (`stack.yaml` next to the compose file) inferred from the compose file: each service's role
  from its image and from who refers to it (Prometheus' scrape targets, Alertmanager's webhook receivers), its port
  and readiness path from what it publishes, exposes and its healthcheck — or, failing those, the image's
  well-known port; a port it had to infer is said, in the file and on the console.

Existing files are never overwritten: init refuses, naming them, and writes nothing. Generated outputs are added to
`.gitignore` (appended, never rewritten), so a run never dirties the tree it judges.
"""

from __future__ import annotations

import glob
import os
import re
import string
import subprocess
import textwrap
from dataclasses import dataclass, field
from importlib import resources
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
# The port an image listens on when nothing in the compose file says (its documented default), in the order tried:
# an exporter's image name also holds the name of what it exports.
IMAGE_PORTS = (
    (re.compile(r"postgres.?exporter"), 9187),
    (re.compile(r"node.?exporter"), 9100),
    (re.compile(r"blackbox.?exporter"), 9115),
    (re.compile(r"pushgateway"), 9091),
    (re.compile(r"alertmanager"), 9093),
    (re.compile(r"prometheus"), 9090),
    (re.compile(r"grafana"), 3000),
    (re.compile(r"loki"), 3100),
    (re.compile(r"postgres"), 5432),
    (re.compile(r"mysql|mariadb"), 3306),
    (re.compile(r"redis"), 6379),
    (re.compile(r"minio"), 9000),
)
NO_PORT = "no container port found (not published, exposed, in its healthcheck or known for its image): set `port:`"
EXAMPLES_FOLDER = "examples"  # package data of `sealgate`: <name>.yaml, a spec with ${sprint} and ${stack} to fill
# Files a stack-less repository's promtool unit tests are looked for in (a test file names its `rule_files:`).
UNIT_TEST = re.compile(r"^rule_files:", re.MULTILINE)
UNIT_TEST_CASES = re.compile(r"^tests:", re.MULTILINE)
MAX_SCANNED = 2000  # YAML files read looking for unit tests: a bound for large repositories
_HEALTH_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost|0\.0\.0\.0)(?::(?P<port>\d+))?(?P<path>/[^\s'\"]*)")

NOXFILE = '''"""Nox sessions: `nox -s seal`, `nox -s eixo_<N>` (one per EIXO of the specs in sprint/), `nox -s report`,
`nox -s verify -- TAG`. They run the sealgate installed beside Nox (`pip install sealgate`)."""

from sealgate.noxsessions import sealgate_sessions

sealgate_sessions(install_args=None)
'''


@dataclass
class Plan:
    files: dict[str, str]  # repository-relative path -> content
    stack_path: str | None  # None: a stack-less project
    notes: list[str] = field(default_factory=list)  # what was inferred and should be reviewed


@dataclass(frozen=True)
class PortGuess:
    """A service's container port init had to infer, and from what (said beside it in the stack description)."""

    port: int
    source: str


def find_compose(root: Path, given: str | None) -> str | None:
    """The compose file: the one named (which must exist), else the first of the usual names, else None."""
    if given:
        if not (root / given).is_file():
            raise InputError(Problem(given, "compose file not found"))
        return given
    return next((candidate for candidate in COMPOSE_NAMES if (root / candidate).is_file()), None)


def examples() -> dict[str, str]:
    """Example spec name -> its text (with `${sprint}` and `${stack}` to fill), as shipped in the wheel."""
    folder = resources.files("sealgate") / EXAMPLES_FOLDER
    found = {
        entry.name.removesuffix(".yaml"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }
    return dict(sorted(found.items()))


def example_needs_stack(text: str) -> bool:
    return "${stack}" in text


def infer_stack(root: Path, compose_rel: str) -> dict[str, Any]:
    """A stack description (as a YAML-ready mapping) inferred from the compose file and the configs it mounts."""
    return infer_stack_with_notes(root, compose_rel)[0]


def infer_stack_with_notes(root: Path, compose_rel: str) -> tuple[dict[str, Any], dict[str, PortGuess | None]]:
    """The stack description, and the port of each service that init inferred (rather than read as published):
    None for one whose port nothing says, which the stack cannot start without (any role but `other`)."""
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
    guesses: dict[str, PortGuess | None] = {}
    for name in _start_order(compose):
        svc = compose.services[name]
        role = roles[name] or "other"
        entry: dict[str, Any] = {"role": role}
        health_port, health_path = _healthcheck_url(svc.raw.get("healthcheck"))
        guess = infer_port(svc.raw, [p[2] for p in svc.published_ports()], health_port, str(svc.image or ""))
        if guess is not None:
            entry["port"] = guess.port
            guesses[name] = guess
        elif role != "other" and len(set(svc.published_ports())) != 1:
            guesses[name] = None
        ready = ROLE_READY.get(role) or health_path
        if ready:
            entry["ready"] = ready
        if svc.profiles:
            entry["optional"] = True
        services[name] = entry
    return {"sealgate_stack": 1, "compose": {"file": compose_rel}, "services": services}, guesses


def infer_port(raw: dict[str, Any], published: list[int], health_port: int | None, image: str) -> PortGuess | None:
    """The container port of a service whose compose entry does not publish exactly one (then the description
    derives it): the one port it `expose:`s, else its healthcheck's, else the image's well-known port, else the
    first of those it publishes or exposes. None when nothing says."""
    if len(set(published)) == 1:
        return None
    exposed = exposed_ports(raw.get("expose"))
    if len(exposed) == 1 and not published:
        return PortGuess(exposed[0], "from its `expose:` in the compose file")
    candidates = sorted(set(published)) or exposed
    if health_port and (not candidates or health_port in candidates):
        return PortGuess(health_port, "from its healthcheck")
    well_known = image_port(image)
    if well_known and (not candidates or well_known in candidates):
        return PortGuess(well_known, f"inferred: the well-known port of image {_image_name(image)}, not said in the "
                         "compose file — check it")  # fmt: skip
    if candidates:
        shown = ", ".join(map(str, candidates))
        return PortGuess(candidates[0], f"inferred: the first of its ports ({shown}) — check it")
    return None


def exposed_ports(expose: Any) -> list[int]:
    """The container ports of a compose `expose:` list (`"9187"`, `9187`, `"9187/tcp"`; a range counts its first)."""
    ports = []
    for item in expose if isinstance(expose, list) else []:
        match = re.match(r"^\s*(\d+)", str(item))
        if match and 0 < int(match.group(1)) < 65536 and int(match.group(1)) not in ports:
            ports.append(int(match.group(1)))
    return ports


def image_port(image: str) -> int | None:
    name = _image_name(image)
    return next((port for pattern, port in IMAGE_PORTS if pattern.search(name)), None)


def _image_name(image: str) -> str:
    """`registry/org/name:tag` -> `name` (variables left by the compose file resolved to their defaults already)."""
    return image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()


def _image_role(image: str) -> str | None:
    name = _image_name(image)
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
# `sealgate checks` lists the check library; `sealgate checks ID` shows a check's parameters and an example.
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


def stackless_skeleton(sprint_id: str, title: str, unit_tests: list[str], rule_files: list[str]) -> str:
    """A spec for a repository with no compose file: static checks that need no stack and no stack description —
    the working tree and disk space, and promtool's unit tests when the repository has some (with the rule files
    they load: without a stack description, nothing else says which rule files are the project's)."""
    rules_stage = ""
    rules_criterion = ""
    if unit_tests and rule_files:
        tests = "\n".join(f"            - {path}" for path in unit_tests)
        rules = "\n".join(f"            - {path}" for path in rule_files)
        rules_stage = f"""  - number: 1
    name: rules
    title: Alert rules
    checks:
      # Every promtool unit test of the repository passes; an alert of these rule files no test covers is said.
      - id: rules/promtool-test
        with:
          tests:
{tests}
          rules:
{rules}
"""
        rules_criterion = """  - id: C2
    title: Every alert rule's unit tests pass
    checks: [rules/promtool-test]
"""
    return f"""# Sprint {sprint_id}: what it must deliver and the evidence that proves it (see the sealgate README).
# No compose file was found, so this spec runs only checks that need no stack: grow it with the library's static
# checks (`sealgate checks` lists them, `sealgate checks ID` shows one's parameters), or describe a stack later
# (`stack:`) for the checks that bring one up. `sealgate init --example NAME` writes a complete, commented example.
sealgate: 1
id: {sprint_id}
title: {title}
language: en
first_in_chain: true  # or: base_tag: <the previous sprint's seal tag>
tag: {sprint_id}-SEALED
objective: Describe what this sprint delivers.
expected_results:
  - The repository is in a known state and has room for the evidence
stages:
  - number: 0
    name: preflight
    title: Preflight
    checks:
      - id: preflight/worktree  # the working tree's state, recorded (a dirty tree blocks only the tag)
      - id: preflight/disk-space  # free disk space where the evidence is written
{rules_stage}criteria:
  - id: C1
    title: The repository is in a known state and has room for the evidence
    stages: [0]
{rules_criterion}"""


def rule_files_of(root: Path, unit_tests: list[str]) -> list[str]:
    """The repository files the unit tests' `rule_files:` load (relative to each test file, as promtool reads them)."""
    found: set[str] = set()
    for test in unit_tests:
        try:
            document = yaml.safe_load((root / test).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        patterns = document.get("rule_files") if isinstance(document, dict) else None
        for pattern in patterns if isinstance(patterns, list) else []:
            relative = os.path.normpath(os.path.join(os.path.dirname(test), str(pattern)))
            if not relative.startswith(".."):
                found.update(
                    Path(match).as_posix()
                    for match in glob.glob(relative, root_dir=root, recursive=True)
                    if (root / match).is_file()
                )
    return sorted(found)


def find_unit_tests(root: Path) -> list[str]:
    """Repository files that are promtool unit tests (top-level `rule_files:` and `tests:`), tracked or not yet."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.yml", "*.yaml"],
        cwd=root,
        capture_output=True,
        check=False,
    )
    found = []
    for name in sorted(filter(None, listed.stdout.decode(errors="replace").split("\0")))[:MAX_SCANNED]:
        if name.startswith("sprint/"):
            continue
        try:
            text = (root / name).read_text(encoding="utf-8", errors="replace")[:200_000]
        except OSError:
            continue
        if UNIT_TEST.search(text) and UNIT_TEST_CASES.search(text):
            found.append(name)
    return found


def stack_text(stack: dict[str, Any], guesses: dict[str, PortGuess | None], compose_rel: str) -> str:
    """The stack description as YAML, each inferred port followed by where it came from."""
    header = (
        f"# The stack of this repository, described for sealgate (inferred from {compose_rel} by `sealgate init`;\n"
        "# review the roles and ports, and add `traffic:` to a target and a `backup:` section if your sprints need "
        "them).\n"
    )
    top = {key: value for key, value in stack.items() if key != "services"}
    text = header + yaml.safe_dump(top, sort_keys=False, allow_unicode=True) + "services:\n"
    for name, entry in stack["services"].items():
        block = yaml.safe_dump({name: entry}, sort_keys=False, allow_unicode=True)
        if name in guesses:  # dumped as `  port: N` under its service: say where N came from, or that none did
            guess = guesses[name]
            old, new = (
                (f"\n  port: {guess.port}\n", f"\n  port: {guess.port}  # {guess.source}\n")
                if guess is not None
                else ("\n  role: ", f"\n  # port: ?  {NO_PORT}\n  role: ")
            )
            block = block.replace(old, new, 1)
        text += textwrap.indent(block, "  ")
    return text


def plan(root: Path, sprint_id: str, compose: str | None = None, example: str | None = None) -> Plan:
    compose_rel = find_compose(root, compose)
    title = f"Sprint {sprint_id}"
    chosen = _example(example, compose_rel) if example else None
    files = {"noxfile.py": NOXFILE}
    notes: list[str] = []
    stack_rel = None
    if compose_rel is not None and (chosen is None or example_needs_stack(chosen)):
        stack, guesses = infer_stack_with_notes(root, compose_rel)
        parent = Path(compose_rel).parent
        stack_rel = (parent / "stack.yaml").as_posix() if parent.as_posix() != "." else "stack.yaml"
        files[stack_rel] = stack_text(stack, guesses, compose_rel)
        notes += [
            f"{stack_rel}: service {name}: " + (f"port {g.port} {g.source}" if g is not None else NO_PORT)
            for name, g in guesses.items()
        ]
    if chosen is not None:
        spec = string.Template(chosen).safe_substitute(sprint=sprint_id, stack=stack_rel or "stack.yaml")
    elif stack_rel is not None:
        spec = spec_skeleton(sprint_id, stack_rel, title)
    else:
        unit_tests = find_unit_tests(root)
        spec = stackless_skeleton(sprint_id, title, unit_tests, rule_files_of(root, unit_tests))
        notes.append(f"no compose file found: sprint/{sprint_id}.yaml runs static checks that need no stack")
    files[f"sprint/{sprint_id}.yaml"] = spec
    files[f"sprint/{sprint_id}.waivers.yaml"] = (
        "# Accepted exceptions, each with justification, approver and expiry.\nwaivers: []\n"
    )
    # Written in this order: the spec names the stack description.
    order = ["noxfile.py", f"sprint/{sprint_id}.yaml", f"sprint/{sprint_id}.waivers.yaml"]
    return Plan({name: files[name] for name in [*order, *(n for n in files if n not in order)]}, stack_rel, notes)


def _example(name: str, compose_rel: str | None) -> str:
    shipped = examples()
    if name not in shipped:
        raise InputError(Problem("--example", f"no example {name!r}", f"examples: {', '.join(shipped)}"))
    text = shipped[name]
    if compose_rel is None and example_needs_stack(text):
        stackless = [n for n, t in shipped.items() if not example_needs_stack(t)]
        raise InputError(
            Problem(
                "--example",
                f"example {name!r} brings a stack up, and no compose file was found (compose.yaml, "
                "docker-compose.yml, …)",
                "name yours with --compose" + (f", or use --example {stackless[0]}" if stackless else ""),
            )
        )
    return text


@dataclass
class InitResult:
    written: list[str]
    notes: list[str]
    stack_path: str | None


def init(root: Path, sprint_id: str, compose: str | None = None, example: str | None = None) -> InitResult:
    """Write the plan's files; refuse (writing nothing) when any exists. Says what was written and inferred."""
    if not (root / ".git").exists():
        raise InputError(Problem(str(root), "not a git repository", "run `git init` first: seals are git tags"))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", sprint_id):
        raise InputError(Problem("--sprint", f"{sprint_id!r} is not a sprint id (letters, digits, '.', '_', '-')"))
    planned = plan(root, sprint_id, compose, example)
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
    return InitResult(written, planned.notes, planned.stack_path)


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

"""The backends bring up whatever a project describes, not only the F9.10 stack: a tiny stack of another team (one
web service run by a `command` recipe) comes up on the local backend, and a bad description is refused with
`file:line` errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests
from conftest import init_repo

from sealgate.backends.description import load_description
from sealgate.backends.errors import StackError
from sealgate.backends.local import LocalBackend
from sealgate.kernel.errors import InputError

COMPOSE = """\
services:
  web:
    image: python:3.11-slim
    command: ["python3", "-m", "http.server", "8080"]
    ports: ["127.0.0.1:${WEB_PORT:-8080}:8080"]
  cache:
    image: redis:7
"""

DESCRIPTION = """\
sealgate_stack: 1
compose: {file: deploy/compose.yaml}
services:
  web:
    role: other
    ready: /
    local:
      kind: command
      command: [python3, -m, http.server, "{port}", --bind, 127.0.0.1, --directory, "{data_dir}"]
      env: {GREETING: "served on {port}"}
"""


def other_team(path: Path, description: str = DESCRIPTION) -> Path:
    root = init_repo(path)
    (root / "deploy").mkdir()
    (root / "deploy" / "compose.yaml").write_text(COMPOSE)
    (root / "deploy" / "stack.yaml").write_text(description)
    return root


def test_a_command_recipe_runs_another_teams_service_locally(tmp_path: Path) -> None:
    root = other_team(tmp_path / "team")
    description = load_description(root, "deploy/stack.yaml")
    assert description.services["web"].port == 8080  # derived: the container port it publishes
    backend = LocalBackend(root, tmp_path / "run", progress=lambda _line: None, description=description)
    try:
        backend.up(timeout=30)
        url = backend.url("web")
        (tmp_path / "run" / "data" / "web" / "hello.txt").write_text("hello")
        assert requests.get(f"{url}/hello.txt", timeout=5).text == "hello"  # served from its {data_dir}
        facts = backend.facts()
        assert facts["url:web"] == url and facts["port:web"] == url.rsplit(":", 1)[1]
        state = backend.services()["web"]
        assert state.running and state.healthy and state.pid
        environ = Path(f"/proc/{state.pid}/environ").read_bytes().split(b"\0")
        assert f"GREETING=served on {facts['port:web']}".encode() in environ
    finally:
        backend.down(remove_volumes=True)
    assert not backend.services()["web"].running
    assert subprocess.run(["pgrep", "-f", f"http.server {facts['port:web']}"], capture_output=True).returncode == 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d.replace("role: other", "role: sidecar"),
            "deploy/stack.yaml:5: $.services.web.role: 'sidecar' is not one of",
        ),
        (
            lambda d: d.replace(
                '      command: [python3, -m, http.server, "{port}", --bind, 127.0.0.1, --directory, "{data_dir}"]\n',
                "",
            ),
            "service 'web': kind `command` needs a `command:` argv",
        ),
        (lambda d: d.replace("ready: /", "ready: health"), "$.services.web.ready: 'health' does not match '^/'"),
    ],
    ids=["unknown role", "command without argv", "relative probe"],
)
def test_a_bad_description_is_refused_with_file_and_line(tmp_path: Path, edit, message: str) -> None:
    root = other_team(tmp_path / "team", edit(DESCRIPTION))
    with pytest.raises(InputError) as info:
        load_description(root, "deploy/stack.yaml")
    problems = [str(p) for p in info.value.problems]
    assert any(message in p for p in problems), problems


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d.replace("  web:\n    role: other", "  webb:\n    role: other"),
            "deploy/stack.yaml:4: service 'webb' is not in deploy/compose.yaml (it has: web, cache)",
        ),
        (
            lambda d: d.replace("role: other", "role: target"),
            "target 'web': no scrape job of the Prometheus configuration targets it (set `job:`)",
        ),
        (
            lambda d: d + "  cache:\n    role: database\n",
            "service 'cache': its container port is not published (set `port:`)",
        ),
    ],
    ids=["unknown service", "target without job", "no port"],
)
def test_a_description_that_does_not_match_its_compose_file_starts_no_stack(tmp_path: Path, edit, message) -> None:
    """The compose file is the project's (a defect there is for the checks to judge): the description still loads,
    names the mismatch, and no backend starts on it."""
    root = other_team(tmp_path / "team", edit(DESCRIPTION))
    description = load_description(root, "deploy/stack.yaml")
    assert any(message in str(p) for p in description.problems), description.problems
    with pytest.raises(StackError) as info:
        LocalBackend(root, tmp_path / "run", description=description)
    assert "deploy/stack.yaml does not match its compose file: no stack is started" in str(info.value)


def test_an_unknown_placeholder_names_itself_and_what_is_known(tmp_path: Path) -> None:
    root = other_team(tmp_path / "team", DESCRIPTION.replace('"{data_dir}"', '"{datadir}"'))
    backend = LocalBackend(
        root, tmp_path / "run", progress=lambda _line: None, description=load_description(root, "deploy/stack.yaml")
    )
    message = r"deploy/stack.yaml: services.web.local: unknown placeholder \{datadir\} \(known here: data_dir, port"
    with pytest.raises(InputError, match=message):
        backend.up(timeout=30)
    backend.down()


def test_stack_copies_start_in_parallel_on_their_own_ports_and_leave_nothing(tmp_path: Path) -> None:
    """A run's isolated copies of a stack (a drill's): started in the background, each on kernel-chosen ports with
    its own data, all removed when the run closes its stack."""
    from sealgate.run.runner import StackManager

    root = other_team(tmp_path / "team")
    description = load_description(root, "deploy/stack.yaml")
    lines: list[str] = []
    manager = StackManager(root, "local", tmp_path / "run", progress=lines.append, description=description)
    manager.start_copy("one")
    manager.start_copy("two")
    try:
        one, two = manager.copy("one"), manager.copy("two")
        assert one.url("web") != two.url("web")
        for copy in (one, two):
            assert requests.get(copy.url("web") + "/", timeout=5).status_code == 200
        pids = [one.services()["web"].pid, two.services()["web"].pid]
        assert any(line.startswith("[one] stack: ") for line in lines), lines  # each copy's lines say whose
        assert manager.backend is not None and manager.backend.started_at is None  # the main stack never started
    finally:
        manager.close()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
    assert not (tmp_path / "run" / "copies" / "one" / "data").exists()


def test_the_main_stack_starts_when_asked_after_a_copy_was_started_first(tmp_path: Path) -> None:
    """A drill's `prepare` starts its copies when the run begins, which constructs the main backend as their
    template: the main stack must still start when the first check asks for it (and only once)."""
    from sealgate.run.runner import StackManager

    root = other_team(tmp_path / "team")
    description = load_description(root, "deploy/stack.yaml")
    lines: list[str] = []
    manager = StackManager(root, "local", tmp_path / "run", progress=lines.append, description=description)
    manager.start_copy("early")
    try:
        copy = manager.copy("early")
        main = manager.get()
        assert main is manager.get() and main.started_at is not None
        assert main.url("web") != copy.url("web")
        assert requests.get(main.url("web") + "/", timeout=5).status_code == 200
        assert sum(1 for line in lines if line.startswith("stack: starting local processes")) == 1, lines
    finally:
        manager.close()

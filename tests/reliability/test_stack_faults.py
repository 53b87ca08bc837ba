"""Faults of the stack's parts during a run (and the operator's Ctrl-C), each ending in a clear refusal: exit ≠ 0, a message naming the stage and
the cause, no tag, no half-written evidence, and the stack stopped or left as it was.

* the Docker engine not answering when the seal starts, and going away mid-stage (`faults.DockerSocketProxy`);
* SIGINT / SIGTERM during the alert drill of a real seal (its phases on their own copies of the stack, while the
  later EIXOs run on the main stack): every copy removed, nothing of the drill's EIXO written;
* a copy of the stack that cannot start: the drill errored, naming the phase and the copy;
* one container killed mid-stage (for real, with the engine, between two checks of the stage);
* Prometheus answering HTTP 500 to everything, or accepting requests and never answering (`faults.FaultyHTTPServer`
  standing at Prometheus's address for the stage's checks).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checkrun import explain, run_checks, run_stages
from conftest import PROJECT_ROOT, git, make_project_copy, need_docker, need_tool
from faults import docker_socket_proxy, faulty_http
from leaks import marked_processes, remove_compose_project, remove_compose_projects
from stack_fixtures import new_compose_backend, new_run_dir

from sealgate.api.context import RunOptions
from sealgate.evidence.store import EvidenceStore
from sealgate.model.results import CheckResult, Status

pytestmark = pytest.mark.stack

# The seals these tests run are of the open sprint, F9.11 (F9.10 is sealed in the history they copy).
SPRINT, SLUG = "F9.11", "f9_11"
SEALED_TAG = "F9.11-SEALED"


def sealgate(root: Path, env: dict[str, str], *args: str, on_line: Any = None) -> tuple[int, str, str]:
    """Run the CLI in `root`; `on_line(line, process)` sees each output line as it is printed (to inject a fault)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sealgate.cli", *args],
        cwd=root,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    assert process.stdout is not None and process.stderr is not None
    for line in process.stdout:
        lines.append(line)
        if on_line is not None:
            on_line(line, process)
    stderr = process.stderr.read()
    return process.wait(timeout=600), "".join(lines), stderr


def stack_env(project: str) -> dict[str, str]:
    """A seal on its own compose project, its host ports chosen by the kernel when the stack starts."""
    return {"SEALGATE_BACKEND": "compose", "SEALGATE_COMPOSE_PROJECT": project, "SEALGATE_PORTS": "free"}


def assert_evidence_whole(root: Path) -> list[int]:
    """Every evidence file on disk validates with its attachments (none half-written); returns the stages."""
    store = EvidenceStore(root, SLUG)
    stages = sorted(int(p.stem.split("_")[1]) for p in store.directory.glob("eixo_*.json"))
    for stage in stages:
        store.read_stage(stage)
    assert not list(store.directory.rglob("*.tmp*")), "a temporary file was left behind"
    return stages


def assert_clean_refusal(code: int, out: str, err: str, root: Path) -> None:
    assert code == 1, out[-3000:] + err[-2000:]
    assert "NOT SEALED" in out, out[-3000:]
    assert "Traceback" not in out + err, err[-3000:]
    assert "check crashed" not in out, out[-3000:]
    assert git(root, "tag", "-l", SEALED_TAG) == ""


def stop_line(project: str) -> subprocess.CompletedProcess[str]:
    """The line the run prints for stopping the stack by hand, run as a user would (from anywhere, no files)."""
    return subprocess.run(["docker", "compose", "-p", project, "down"], capture_output=True, text=True, timeout=120)


@pytest.fixture
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_docker()
    base = tmp_path_factory.mktemp("fault", numbered=True)
    base.chmod(0o755)
    return make_project_copy(base / "project")


# --- the Docker engine ----------------------------------------------------------------------------------------------


def test_engine_not_answering_at_start_refuses_naming_the_engine(clone: Path, tmp_path: Path) -> None:
    env = {**stack_env(f"sealgate-fault-{os.getpid()}-start"), "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    code, out, err = sealgate(clone, env, "seal", "--no-drill")
    assert_clean_refusal(code, out, err, clone)
    assert "stack could not start (compose): docker: no Docker engine answers" in out
    assert "start dockerd (bash .ci/setup-system.sh)" in out
    # every stage whose checks need the stack is refused for that reason; the static checks still ran
    for stage, name in (
        (1, "http_metrics"),
        (2, "integrations"),
        (3, "dashboards"),
        (4, "offsite_backup"),
        (5, "tests"),
    ):
        assert f"EIXO {stage} ({name}): errored" in out, out[-3000:]
    assert "passed  containerize/images-pinned" in out
    assert assert_evidence_whole(clone) == list(range(6))


def test_engine_going_away_mid_stage_refuses_and_says_how_to_stop_the_stack(clone: Path, tmp_path: Path) -> None:
    project = f"sealgate-fault-{os.getpid()}-cut"
    try:
        with docker_socket_proxy(tmp_path / "docker.sock") as proxy:
            env = {**stack_env(project), "DOCKER_HOST": proxy.docker_host}

            def cut_when_ready(line: str, _process: Any) -> None:
                if "stack: fresh scrape" in line and not proxy.cut_done.is_set():
                    proxy.cut()  # EIXO 1's live checks are next: the engine is gone under them

            code, out, err = sealgate(clone, env, "seal", "--no-drill", on_line=cut_when_ready)
        assert proxy.cut_done.is_set(), out[-3000:]
        assert_clean_refusal(code, out, err, clone)
        assert f"the Docker engine stopped answering ({proxy.docker_host})" in out, out[-3000:]
        assert "is dockerd running? (`docker info`)" in out
        assert "EIXO 1 (http_metrics): errored" in out, out[-3000:]
        # The stack outlived its engine connection: the run says so and how to stop it, and that works.
        assert "stack: could not stop cleanly" in out and f"docker compose -p {project} down" in out, out[-3000:]
        assert_evidence_whole(clone)
        stopped = stop_line(project)
        assert stopped.returncode == 0, stopped.stderr
    finally:
        remove_compose_project(project)


# --- SIGINT / SIGTERM during the drill ------------------------------------------------------------------------------


def compose_projects(prefix: str) -> dict[str, list[str]]:
    """Compose project -> its containers and volumes, for every project named `prefix` or `prefix-…` (the main
    stack and its copies)."""
    import docker

    client = docker.from_env(timeout=30)
    found: dict[str, list[str]] = {}
    for container in client.containers.list(all=True):
        project = (container.labels or {}).get("com.docker.compose.project", "")
        if project == prefix or project.startswith(prefix + "-"):
            found.setdefault(project, []).append(f"container {container.name} ({container.status})")
    for volume in client.volumes.list():
        project = (volume.attrs.get("Labels") or {}).get("com.docker.compose.project", "")
        if project.startswith(prefix + "-"):  # the main stack keeps its data; a copy never does
            found.setdefault(project, []).append(f"volume {volume.name}")
    return found


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_signal_during_the_parallel_drill_stops_every_copy_and_writes_nothing_of_its_eixo(
    clone: Path, signum: int, code: int, name: str
) -> None:
    """The drill's phases run on their own copies of the stack while the later EIXOs run on the main stack: an
    interrupt once both phases injected their faults stops the main stack and removes every copy (containers and
    volumes), and nothing of EIXO 2 is on disk."""
    project = f"sealgate-fault-{os.getpid()}-{name.lower()}"
    injected: set[str] = set()
    seen_copies: dict[str, list[str]] = {}

    def interrupt_the_drill(line: str, process: subprocess.Popen[str]) -> None:
        match = re.search(r"drill: (\w+): fault injected", line)
        if match:
            injected.add(match.group(1))
            if injected == {"provider_failure", "api_down"}:
                seen_copies.update(compose_projects(project))  # the copies run at this moment
                process.send_signal(signum)

    try:
        returned, out, err = sealgate(clone, stack_env(project), "seal", on_line=interrupt_the_drill)
        assert injected == {"provider_failure", "api_down"}, out[-3000:]
        assert {f"{project}-drill-provider-failure", f"{project}-drill-api-down"} <= set(seen_copies), seen_copies
        assert returned == code, out[-3000:] + err[-2000:]
        (line,) = [line for line in err.splitlines() if line.startswith(f"sealgate: interrupted ({name}) during ")]
        assert "EIXO 2 (integrations)" in line and line.endswith(": stack stopped, no tag created"), err
        assert "Traceback" not in err
        assert compose_projects(project) == {}, "a container of the stack or a copy, or a copy's volume, was left"
        assert git(clone, "tag", "-l", SEALED_TAG) == ""
        written = assert_evidence_whole(clone)
        assert 2 not in written and {0, 1} <= set(written), written  # EIXO 2 was interrupted: nothing of it on disk
    finally:
        remove_compose_projects(project)


@pytest.fixture
def traversable_clone() -> Iterator[Path]:
    """A clone under a directory other users can enter: the local backend runs PostgreSQL as user postgres."""
    base = Path(tempfile.mkdtemp(prefix=f"sealgate-localfault-{os.getpid()}-"))
    base.chmod(0o755)
    try:
        yield make_project_copy(base / "project")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_sigterm_during_the_parallel_drill_on_the_local_backend_stops_every_copy_process(
    traversable_clone: Path,
) -> None:
    """The same on the local backend: the copies are process sets of their own (run directories under the run's),
    and none of their processes, nor their data, outlives the interrupt."""
    need_tool("prometheus", "prometheus-alertmanager")  # and PostgreSQL, which the local backend finds itself
    clone = traversable_clone
    injected: set[str] = set()

    def interrupt_the_drill(line: str, process: subprocess.Popen[str]) -> None:
        match = re.search(r"drill: (\w+): fault injected", line)
        if match:
            injected.add(match.group(1))
            if injected == {"provider_failure", "api_down"}:
                process.send_signal(signal.SIGTERM)

    returned, out, err = sealgate(clone, {"SEALGATE_BACKEND": "local"}, "seal", on_line=interrupt_the_drill)
    assert injected == {"provider_failure", "api_down"}, out[-3000:]
    assert returned == 143, out[-3000:] + err[-2000:]
    assert "EIXO 2 (integrations)" in err and "Traceback" not in err, err
    copies = clone / ".sealgate" / SLUG / "copies"
    assert sorted(p.name for p in copies.iterdir()) == ["drill-api-down", "drill-provider-failure"]
    left = [t.describe() for t in marked_processes().values() if Path(t.run_dir).is_relative_to(clone)]
    assert left == [], left
    assert not any((copy / "data").exists() for copy in copies.iterdir()), "a copy's data outlived the run"
    assert 2 not in assert_evidence_whole(clone)


def test_a_stack_copy_that_cannot_start_errors_the_drill_naming_it(
    project_copy: Path, compose_stack: Any, tmp_path: Path
) -> None:
    """A Docker network of the copy's name that Compose did not create (no Compose labels) makes the copy's
    `compose up` fail for real: the drill is errored naming the phase and its copy, with Compose's reason, and the
    copy's partial project is removed."""
    import docker

    spec = project_copy / "sprint" / f"{SPRINT}.yaml"
    text = spec.read_text()
    start = text.index("            - name: api_down\n")
    spec.write_text(text[:start] + text[text.index("  - number: 3\n", start) :])  # one phase: no waiting
    git(project_copy, "commit", "-qam", "one drill phase")
    copy_project = f"{compose_stack.project}-drill-provider-failure"
    client = docker.from_env(timeout=30)
    squatter = client.networks.create(f"{copy_project}_techno-network")
    try:
        # The drill's prerequisites first: what Prometheus loaded and scrapes (EIXO 1), the routing (EIXO 2).
        earlier = {1: ["rules/promtool-check", "rules/loaded-live", "rules/metrics-exist"]}
        ids = ["rules/alertmanager-config", "rules/routing", "rules/alert-drill"]
        results = run_stages(project_copy, {**earlier, 2: ids}, stack=compose_stack, sprint=SPRINT)
        assert all(results[i].status is Status.PASSED for i in earlier[1]), {i: explain(results[i]) for i in earlier[1]}
        drill = results["rules/alert-drill"]
        assert drill.status is Status.ERRORED, drill.reason
        assert drill.reason.startswith(
            "provider_failure: copy drill-provider-failure of the stack could not start: compose: `up -d"
        ), drill.reason
        assert "techno-network" in drill.reason, drill.reason
        left = [
            c.name
            for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={copy_project}"})
        ]
        assert left == [], left
        assert client.volumes.list(filters={"label": f"com.docker.compose.project={copy_project}"}) == []
    finally:
        squatter.remove()
        remove_compose_project(copy_project)


# --- one container killed mid-stage -------------------------------------------------------------------------------


@pytest.fixture
def own_compose_stack() -> Iterator[Any]:
    """A stack of its own: these tests kill its containers."""
    backend = new_compose_backend(new_run_dir("sealgate-fault-stack-"), suffix="-fault")
    try:
        backend.up()
        yield backend
    finally:
        backend.down(remove_volumes=True)


def kill_after(backend: Any, check_id: str, service: str) -> Any:
    """A progress callback that kills `service`'s container, for real, as soon as `check_id` has finished."""

    def progress(line: str) -> None:
        if line.split()[1:2] == [check_id]:
            backend.client.containers.get(backend.container_name(service)).kill()

    return progress


def test_container_killed_mid_stage_errors_the_checks_after_it_naming_it(
    project_copy: Path, own_compose_stack: Any
) -> None:
    backend = own_compose_stack
    ids = ["containerize/containers-healthy", "containerize/prometheus-live", "containerize/alertmanager-live"]
    results = run_checks(project_copy, 1, ids, stack=backend, progress=kill_after(backend, ids[0], "prometheus"))
    assert results[ids[0]].status is Status.PASSED, results[ids[0]].reason  # before the kill
    killed = results["containerize/prometheus-live"]
    assert killed.status in (Status.FAILED, Status.ERRORED), killed.reason
    assert "prometheus" in killed.reason and "not running" in killed.reason, killed.reason
    assert results["containerize/alertmanager-live"].status is Status.PASSED  # the rest of the stack still answers
    # ... and the next stage that needs it finds it dead, too (no crash, the service named)
    after = run_checks(project_copy, 1, [ids[0]], stack=backend)[ids[0]]
    assert after.status is Status.FAILED and "prometheus" in after.reason, after.reason


# --- Prometheus answering 500s or hanging ------------------------------------------------------------------------


class PrometheusAt:
    """The real stack, but Prometheus's address is `url` (a faulty server): every check asks it there."""

    def __init__(self, backend: Any, url: str) -> None:
        self._backend = backend
        self._url = url

    def url(self, service: str) -> str:
        return self._url if service == "prometheus" else self._backend.url(service)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


PROMETHEUS_CHECKS = [
    (2, ["rules/promtool-check", "rules/loaded-live", "rules/metrics-exist"], ["rules/loaded-live"]),
    (5, ["dashboard/queries-metrics", "dashboard/queries-answer"], ["dashboard/queries-answer"]),
]


def run_bounded(bound_s: float, *args: Any, **kwargs: Any) -> dict[str, CheckResult]:
    """run_checks in a thread; the test fails (instead of hanging CI) if the stage does not end within bound_s."""
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(results=run_checks(*args, **kwargs)), daemon=True)
    thread.start()
    thread.join(bound_s)
    assert not thread.is_alive(), f"the stage did not end within {bound_s:.0f}s: a request without a timeout"
    return box["results"]


@pytest.mark.parametrize("mode", ["500", "hang"])
def test_prometheus_failing_or_hanging_errors_the_checks_naming_it(compose_stack: Any, mode: str) -> None:
    with faulty_http(mode) as server:
        stack = PrometheusAt(compose_stack, server.url)
        for stage, ids, asking in PROMETHEUS_CHECKS:
            results = run_bounded(300, PROJECT_ROOT, stage, ids, stack=stack, options=RunOptions(backend="compose"))
            for check_id in asking:
                result = results[check_id]
                assert result.status in (Status.FAILED, Status.ERRORED), f"{check_id}: {result.reason}"
                assert not result.reason.startswith("check crashed"), result.reason
                assert server.url in result.reason, result.reason
                expected = r"\b500\b" if mode == "500" else r"did not answer in time|timed out"
                assert re.search(expected, result.reason), result.reason
            assert server.requests, f"EIXO {stage}: nothing asked the faulty Prometheus"

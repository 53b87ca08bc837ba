"""Faults of the stack's parts during a run (and the operator's Ctrl-C), each ending in a clear refusal: exit ≠ 0, a message naming the stage and
the cause, no tag, no half-written evidence, and the stack stopped or left as it was.

* the Docker engine not answering when the seal starts, and going away mid-stage (`faults.DockerSocketProxy`);
* SIGINT / SIGTERM during the alert drill of a real seal;
* one container killed mid-stage (for real, with the engine, between two checks of the stage);
* Prometheus answering HTTP 500 to everything, or accepting requests and never answering (`faults.FaultyHTTPServer`
  standing at Prometheus's address for the stage's checks).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from checkrun import run_checks
from conftest import PROJECT_ROOT, git, make_project_copy, need_docker
from faults import docker_socket_proxy, faulty_http
from stack_fixtures import new_compose_backend, new_run_dir

from sealgate.evidence.store import EvidenceStore
from sealgate.sprint.context import RunOptions
from sealgate.sprint.model import CheckResult, Status
from sealgate.stack.backends.local import free_ports

pytestmark = pytest.mark.stack

SLUG = "f9_10"


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
    ports = dict(zip(("API", "PROMETHEUS", "ALERTMANAGER", "GRAFANA"), free_ports(4), strict=True))
    return {
        "SEALGATE_BACKEND": "compose",
        "SEALGATE_COMPOSE_PROJECT": project,
        **{f"SEALGATE_{name}_PORT": str(port) for name, port in ports.items()},
    }


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
    assert git(root, "tag", "-l", "F9.10-SEALED") == ""


def compose_down(root: Path, project: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "compose", "-p", project, "-f", str(root / "stack/docker-compose.yml"), "down", "-v"],
        capture_output=True,
        text=True,
        timeout=120,
    )


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
    for stage, name in ((1, "containerize"), (2, "rules"), (3, "backup"), (6, "tests")):
        assert f"EIXO {stage} ({name}): errored" in out, out[-3000:]
    assert "passed  containerize/images-pinned" in out
    assert assert_evidence_whole(clone) == list(range(7))


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
        assert "EIXO 1 (containerize): errored" in out, out[-3000:]
        # The stack outlived its engine connection: the run says so and how to stop it, and that works.
        assert "stack: could not stop cleanly" in out and f"docker compose -p {project} down" in out, out[-3000:]
        assert_evidence_whole(clone)
    finally:
        stopped = compose_down(clone, project)
    assert stopped.returncode == 0, stopped.stderr


# --- SIGINT / SIGTERM during the drill ------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_signal_during_the_drill_stops_the_stack_and_writes_nothing_partial(
    clone: Path, signum: int, code: int, name: str
) -> None:
    project = f"sealgate-fault-{os.getpid()}-{name.lower()}"

    def interrupt_the_drill(line: str, process: subprocess.Popen[str]) -> None:
        if "drill: provider set to fail" in line:
            process.send_signal(signum)

    try:
        returned, out, err = sealgate(clone, stack_env(project), "seal", on_line=interrupt_the_drill)
        assert "drill: provider set to fail" in out, out[-3000:]
        assert returned == code, out[-3000:] + err[-2000:]
        assert f"sealgate: interrupted ({name}) during EIXO 2 (rules): stack stopped, no tag created" in err, err
        assert "Traceback" not in err
        running = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert running.stdout.strip() == "", "the stack was left running"
        assert git(clone, "tag", "-l", "F9.10-SEALED") == ""
        assert assert_evidence_whole(clone) == [0, 1]  # EIXO 2 was interrupted: nothing of it on disk
    finally:
        compose_down(clone, project)


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

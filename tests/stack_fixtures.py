"""Fixtures that bring the governed stack up for real, once per test session (a pytest plugin: tests/conftest.py
loads it). Owned by the stack backends.

Fixtures
--------
``compose_stack``  a ComposeBackend that is up: its own compose project (``sealgate-pytest-<pid>``) and free host
                   ports on 127.0.0.1 chosen by the kernel at each ``up()`` (a port taken before Docker binds it is
                   named and the start retried once), so it never touches a stack the user runs. Needs a Docker engine and Compose
                   (skipped with the reason locally, a failure under CI=true) and the images (official ones, or the
                   offline image from stack/scripts/build_offline_image.sh). Brought down with its volumes removed at
                   session end; projects left by a crashed earlier session are removed first.
``local_stack``    a LocalBackend that is up: processes on 127.0.0.1 with free ports, data under a fresh run
                   directory (world-traversable, because PostgreSQL runs as user ``postgres`` under root). Needs
                   Prometheus, Alertmanager and PostgreSQL installed (never downloads). Stopped and its run directory
                   deleted at session end.

Both yield the backend object: use ``backend.url("prometheus")``, ``backend.services()``, ``backend.logs(...)``,
``backend.script_args(...)``, ``backend.timings``. The first test that asks for one pays its start (compose ≈ 20 s,
local ≈ 15 s: most of it is waiting for Prometheus' first scrape); later tests reuse it.

Rules for tests that share them
-------------------------------
- Leave the stack as you found it: start again what you stop (``start_service``), reset the simulated provider
  (``reset_provider``). A test that needs a state nobody else may see should bring up its own backend.
- Alerts are real and have real ``for`` durations: once a drill made one fire it stays firing for a while (the
  breaker stays open VERITTA_CB_TIMEOUT seconds; ``increase(...[5m])`` remembers errors 5 minutes). Do not assert
  that no alert fires unless your test owns the stack.
- Every loop is bounded: use ``wait_for``.

Helpers: ``prom_query``, ``wait_for``, ``complete``, ``reset_provider``, ``provider_failure_drill``,
``run_backup``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import PROJECT_ROOT, docker_answers, need, need_docker, reference_description
from leaks import remove_compose_project

TEST_PROJECT_PREFIX = "sealgate-pytest-"
# Compose projects the tests start, each named after its session's pid: sealgate-<kind>-<pid>[-suffix].
TEST_PROJECT = re.compile(r"sealgate-(?:pytest|fault|stackbk|fullseal)-(\d+)(-[a-z0-9-]+)?")
UP_TIMEOUT = 240.0  # generous for a cold CI machine; the measured start is ~20 s
DRILL_TIMEOUT = 150.0  # LLMProviderDown: ~15 s to scrape the failures + `for: 30s` + evaluation cadence, ~60 s seen
BACKUP_SCRIPT = PROJECT_ROOT / "stack" / "scripts" / "backup_observability.sh"


def prom_query(backend: Any, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    """Instant query against the backend's Prometheus; the result vector."""
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    response = requests.get(f"{backend.url('prometheus')}/api/v1/query", params=params, timeout=10)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_for(what: str, predicate: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Poll `predicate` until it returns something truthy (returned); fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def complete(backend: Any, prompt: str = "ping") -> requests.Response:
    """One /v1/complete call to the API's simulated provider (the status code says how it went)."""
    return requests.post(
        f"{backend.url('api')}/v1/complete",
        json={"prompt": prompt, "provider": "sim", "model": "sim-1"},
        timeout=10,
    )


def reset_provider(backend: Any) -> None:
    response = requests.post(
        f"{backend.url('api')}/admin/provider", json={"fail": False, "latency_s": 0.0, "error_rate": 0.0}, timeout=5
    )
    response.raise_for_status()


def active_alerts(backend: Any) -> list[dict[str, Any]]:
    response = requests.get(f"{backend.url('alertmanager')}/api/v2/alerts", timeout=5)
    response.raise_for_status()
    return list(response.json())


def provider_failure_drill(
    backend: Any, alertname: str = "LLMProviderDown", timeout: float = DRILL_TIMEOUT
) -> dict[str, float]:
    """Make the simulated provider fail, keep sending one /v1/complete a second, and wait until `alertname` is
    active in Alertmanager and printed by console-log. Returns seconds from the injection to each; restores the
    provider whatever happens. Runs the real rule `for` durations: about a minute."""
    api = backend.url("api")
    requests.post(f"{api}/admin/provider", json={"fail": True}, timeout=5).raise_for_status()
    t0 = time.monotonic()
    seen: dict[str, float] = {}
    pattern = re.compile(rf"FIRING alertname={re.escape(alertname)}\b")
    try:
        while time.monotonic() - t0 < timeout:
            status = complete(backend).status_code
            assert status == 503, f"a failing provider must answer 503, got {status}"
            if "alertmanager" not in seen and any(
                a["labels"].get("alertname") == alertname and a["status"]["state"] == "active"
                for a in active_alerts(backend)
            ):
                seen["alertmanager"] = time.monotonic() - t0
            if "alertmanager" in seen and pattern.search(backend.logs("console-log", tail=500)):
                seen["console_log"] = time.monotonic() - t0
                return seen
            time.sleep(1.0)
    finally:
        reset_provider(backend)
    pytest.fail(f"{alertname} did not reach {'console-log' if seen else 'Alertmanager'} within {timeout:.0f}s")


def run_backup(backend: Any, backup_dir: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    need(BACKUP_SCRIPT.is_file(), f"{BACKUP_SCRIPT.relative_to(PROJECT_ROOT)} is missing")
    args = backend.script_args(backend.description.backup.args, "backup.args")
    argv = ["bash", str(BACKUP_SCRIPT), *args, "--dest", str(backup_dir)]
    return subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


# -- fixtures ---------------------------------------------------------------------------------------------------


def _need_compose() -> Any:
    need_docker()
    from sealgate.backends.compose import detect_compose

    compose = detect_compose()
    need(compose is not None, "Docker Compose is not installed (bash .ci/setup-system.sh installs v2)")
    return compose


def _remove_stale_test_projects() -> None:
    """Projects of earlier sessions whose pytest process is gone (a crash or a kill skipped their teardown)."""
    import docker

    client = docker.from_env()
    labels = [c.labels for c in client.containers.list(all=True)]
    labels += [v.attrs.get("Labels") or {} for v in client.volumes.list()]
    projects = {lab.get("com.docker.compose.project", "") for lab in labels}
    for project in sorted(projects):
        match = TEST_PROJECT.fullmatch(project)
        if match and int(match.group(1)) != os.getpid() and not Path(f"/proc/{match.group(1)}").exists():
            with contextlib.suppress(Exception):
                remove_compose_project(project)


def new_compose_backend(run_dir: Path, suffix: str = "", **kwargs: Any) -> Any:
    """A ComposeBackend on its own test project whose host ports the kernel chooses at each up() (not started);
    `free_ports=False` with `ports=` pins them instead."""
    detected = _need_compose()
    compose = kwargs.pop("compose", None) or detected
    kwargs.setdefault("free_ports", True)
    kwargs.setdefault("description", reference_description())
    from sealgate.backends.compose import ComposeBackend

    project = f"{TEST_PROJECT_PREFIX}{os.getpid()}{suffix}"
    return ComposeBackend(PROJECT_ROOT, run_dir, project=project, compose=compose, **kwargs)


def new_run_dir(prefix: str) -> Path:
    """A run directory PostgreSQL's user can reach: pytest's own tmp base is 0700 to root. Its name carries this
    session's pid, which is how the leak guard (tests/leaks.py) knows processes started in it are this session's."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    path.chmod(0o755)
    return path


def need_local_binaries() -> None:
    from sealgate.backends.local import LocalBackend
    from sealgate.backends.provision import find_binary

    for name in ("prometheus", "alertmanager"):
        need(find_binary(name) is not None, f"{name} not installed (bash .ci/setup-system.sh installs it)")
    try:
        LocalBackend(PROJECT_ROOT, Path("/nonexistent"), description=reference_description())._find_pg_bin_dir()
    except Exception as exc:
        need(False, f"PostgreSQL server binaries not installed: {exc}")


@pytest.fixture(scope="session")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    run_dir = tmp_path_factory.mktemp("compose-stack")
    backend = new_compose_backend(run_dir)
    _remove_stale_test_projects()
    try:
        backend.up(timeout=UP_TIMEOUT)
    except Exception as exc:
        with contextlib.suppress(Exception):
            backend.down(remove_volumes=True)
        pytest.fail(f"compose stack did not come up: {exc}", pytrace=False)
    try:
        yield backend
    finally:
        if docker_answers():
            backend.down(remove_volumes=True)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Any]:
    need_local_binaries()
    from sealgate.backends.local import LocalBackend

    run_dir = new_run_dir("sealgate-local-stack-")
    backend = LocalBackend(PROJECT_ROOT, run_dir, allow_download=False, description=reference_description())
    try:
        try:
            backend.up(timeout=UP_TIMEOUT)
        except Exception as exc:
            pytest.fail(f"local stack did not come up: {exc}", pytrace=False)
        yield backend
    finally:
        backend.down(remove_volumes=True)
        shutil.rmtree(run_dir, ignore_errors=True)


# -- assertions shared by the backend tests (and usable by check tests) ---------------------------------------------


def assert_fresh_scrape(backend: Any) -> tuple[float, float]:
    """`up{job="techno-os-api"}` is 1 with a sample newer than the backend's start; returns (sample time, start)."""
    assert backend.started_at is not None, "backend was never started"
    stamps = prom_query(backend, 'timestamp(up{job="techno-os-api"})')
    values = prom_query(backend, 'up{job="techno-os-api"}')
    assert stamps and values, "Prometheus holds no up sample of the API"
    newest = max(float(s["value"][1]) for s in stamps)
    assert newest > backend.started_at, f"newest up sample {newest} is older than this start {backend.started_at}"
    assert {float(v["value"][1]) for v in values} == {1.0}, values
    assert 0 < backend.timings.up <= backend.timings.ready <= backend.timings.fresh_scrape, backend.timings
    return newest, backend.started_at


EXPECTED_RULES = {
    "api": {"APIDown", "APIHighErrorRate"},  # APIHighErrorRate: removed by F9.10, restored by F9.11
    "llm": {"LLMHighLatency", "LLMErrorRateHigh", "CircuitBreakerOpen", "LLMProviderDown"},
}


def assert_rules_loaded(backend: Any, evaluated_within: float = 40.0) -> dict[str, set[str]]:
    """The 6 alert rules, in 2 groups, as Prometheus loaded them (/api/v1/rules), each with severity + annotations,
    and each evaluated without error (health "ok"; "unknown" until the first evaluation, every 15 s)."""

    def groups() -> list[dict[str, Any]]:
        response = requests.get(f"{backend.url('prometheus')}/api/v1/rules", timeout=10)
        response.raise_for_status()
        return list(response.json()["data"]["groups"])

    loaded = {g["name"]: {r["name"] for r in g["rules"] if r["type"] == "alerting"} for g in groups()}
    assert loaded == EXPECTED_RULES, loaded
    for group in groups():
        for rule in group["rules"]:
            assert rule["health"] != "err", rule
            assert rule["labels"].get("severity") in ("critical", "warning"), rule
            assert rule["annotations"].get("summary") and rule["annotations"].get("description"), rule
    wait_for(
        "every rule evaluated with health ok",
        lambda: all(r["health"] == "ok" for g in groups() for r in g["rules"]),
        evaluated_within,
    )
    return loaded


def assert_backup_made_three_archives(backend: Any, backup_dir: Path) -> list[Path]:
    done = run_backup(backend, backup_dir)
    assert done.returncode == 0, f"backup exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    archives = sorted(p for p in backup_dir.rglob("*.tar.gz") if not p.is_symlink())
    kinds = {k for k in ("postgres", "prometheus", "grafana") for p in archives if p.name.startswith(k)}
    assert kinds == {"postgres", "prometheus", "grafana"}, f"archives: {[p.name for p in archives]}\n{done.stdout}"
    for kind in kinds:
        latest = next(backup_dir.rglob(f"{kind}_latest.tar.gz"), None)
        assert latest is not None and latest.is_symlink() and latest.resolve().is_file(), f"{kind}_latest.tar.gz"
    for archive in archives:
        listing = subprocess.run(["tar", "-tzf", str(archive)], capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0 and listing.stdout.strip(), f"{archive.name} is not a readable archive"
    return archives

"""The compose backend, for real: the governed stack under Docker Compose, inspected with the Docker SDK.

Tests run in file order against one session stack (tests/stack_fixtures.py `compose_stack`); the last one takes it
down and up again to prove the volumes keep the data.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from stack_fixtures import (
    UP_TIMEOUT,
    assert_backup_made_three_archives,
    assert_fresh_scrape,
    assert_rules_loaded,
    new_compose_backend,
    prom_query,
    provider_failure_drill,
    wait_for,
)

from sealgate.backends.errors import ServiceNotRunning, StackError

pytestmark = [pytest.mark.docker, pytest.mark.stack, pytest.mark.slow]


def test_up_waits_for_a_fresh_scrape(compose_stack):
    assert_fresh_scrape(compose_stack)
    t = compose_stack.timings
    print(f"compose timings: up {t.up:.1f}s ready {t.ready:.1f}s fresh_scrape {t.fresh_scrape:.1f}s {t.extra}")
    assert compose_stack.image_source in ("configured", "offline")
    if compose_stack.image_source == "offline":
        assert compose_stack.env_file == compose_stack.root / "stack" / "offline.env"


def test_six_rules_in_two_groups(compose_stack):
    assert_rules_loaded(compose_stack)


def test_services_inspected_through_the_docker_sdk(compose_stack):
    states = compose_stack.services()
    for name in ("api", "postgres", "prometheus", "alertmanager", "console-log"):
        state = states[name]
        assert state.running and state.healthy, state
        assert state.container_id and state.image and state.image_id and state.image_id.startswith("sha256:"), state
        assert state.image == compose_stack.images[name]
        assert compose_stack.container_name(name) in (
            f"{compose_stack.project}-{name}-1",  # Compose v2
            f"{compose_stack.project}_{name}_1",  # Compose v1
        )
    description = compose_stack.describe()
    assert description["project"] == compose_stack.project
    assert description["image_source"] == compose_stack.image_source


def test_urls_come_from_the_published_ports(compose_stack):
    for service, variable in (
        ("api", "SEALGATE_API_PORT"),
        ("prometheus", "SEALGATE_PROMETHEUS_PORT"),
        ("alertmanager", "SEALGATE_ALERTMANAGER_PORT"),
    ):
        assert compose_stack.url(service) == f"http://127.0.0.1:{compose_stack.overrides[variable]}"
    assert requests.get(compose_stack.url("api") + "/healthz", timeout=5).json()["status"] == "ok"


def test_grafana_absent_is_explicit_and_its_volume_exists(compose_stack):
    import docker

    volume = docker.from_env().volumes.get(f"{compose_stack.project}_grafana_data")
    assert volume.attrs["Labels"]["com.docker.compose.project"] == compose_stack.project
    if "grafana" in compose_stack.profiles:
        assert compose_stack.services()["grafana"].running
        return
    with pytest.raises(
        ServiceNotRunning, match=r"its image is not on this machine .*grafana.* so the compose profile `grafana` is off"
    ):
        compose_stack.url("grafana")
    assert not compose_stack.services()["grafana"].running


def test_backup_produces_three_archives(compose_stack, tmp_path: Path):
    assert_backup_made_three_archives(compose_stack, tmp_path / "backups")


def test_provider_failure_reaches_alertmanager_and_console_log(compose_stack):
    seen = provider_failure_drill(compose_stack)
    print(
        f"compose drill: LLMProviderDown in Alertmanager after {seen['alertmanager']:.1f}s, "
        f"in console-log after {seen['console_log']:.1f}s"
    )
    assert seen["alertmanager"] <= seen["console_log"]


def test_stop_and_start_one_service(compose_stack):
    compose_stack.stop_service("api")
    assert not compose_stack.services()["api"].running
    with pytest.raises(ServiceNotRunning):
        compose_stack.url("api")
    compose_stack.start_service("api")
    state = compose_stack.services()["api"]
    assert state.running and state.healthy
    assert requests.get(compose_stack.url("api") + "/healthz", timeout=5).status_code == 200


def test_down_keeps_volumes_and_the_data_survives_the_next_up(compose_stack):
    import docker

    before = wait_for("an up sample", lambda: prom_query(compose_stack, 'up{job="techno-os-api"}'), 30)
    at = float(before[0]["value"][0])
    first_start = compose_stack.started_at
    compose_stack.down()  # keeps volumes
    client = docker.from_env()
    volumes = {
        v.name for v in client.volumes.list(filters={"label": f"com.docker.compose.project={compose_stack.project}"})
    }
    assert {f"{compose_stack.project}_{v}" for v in ("postgres_data", "prometheus_data", "grafana_data")} <= volumes
    assert not client.containers.list(filters={"label": f"com.docker.compose.project={compose_stack.project}"})
    compose_stack.up(timeout=240)
    assert compose_stack.started_at > first_start
    assert_fresh_scrape(compose_stack)  # a sample of this start, not one of the persisted ones
    old = prom_query(compose_stack, 'up{job="techno-os-api"}', at=at)
    assert old and float(old[0]["value"][1]) == 1.0, f"the sample at {at} did not survive down/up: {old}"
    print(f"compose re-up timings: {compose_stack.timings}")


def test_a_service_that_dies_at_start_is_named_with_its_logs(tmp_path: Path):
    """A bad VERITTA_CB_THRESHOLD stops the API at start: up() fails fast naming `api` and quoting its output."""
    backend = new_compose_backend(tmp_path, suffix="-badcfg", env={"VERITTA_CB_THRESHOLD": "three"})
    started = time.monotonic()
    try:
        with pytest.raises(StackError) as raised:
            backend.up(timeout=120)
    finally:
        backend.down(remove_volumes=True)
    message = str(raised.value)
    assert "api" in raised.value.logs, message
    assert "VERITTA_CB_THRESHOLD" in raised.value.logs["api"], raised.value.logs["api"]
    assert "VERITTA_CB_THRESHOLD" in message
    assert time.monotonic() - started < 100, "a dead service must fail fast, not at the timeout"


def test_compose_v1_fallback(tmp_path: Path):
    """Where only `docker-compose` v1 exists: same stack, containers named <project>_<service>_1. Optional (v1 is a
    fallback nobody has to install), so a plain skip even under CI."""
    from sealgate.backends.compose import ComposeCommand, _version_of

    version = _version_of(["docker-compose"], 10)
    if not version or not version.startswith("1."):
        pytest.skip("docker-compose v1 not installed (optional fallback)")
    backend = new_compose_backend(tmp_path, suffix="-v1", compose=ComposeCommand(("docker-compose",), version, v1=True))
    try:
        backend.up(timeout=180)
        assert backend.container_name("api") == f"{backend.project}_api_1"
        assert_fresh_scrape(backend)
    finally:
        backend.down(remove_volumes=True)


@pytest.mark.docker
@pytest.mark.stack
def test_a_copy_runs_part_of_the_stack_in_its_own_project_and_is_removed_whole(tmp_path: Path) -> None:
    """A drill's copy: only the services it names (and what they depend on), its own project, free ports and
    volumes; down(remove_volumes=True) leaves nothing of it."""
    import docker

    base = new_compose_backend(tmp_path / "main", suffix="-copybase")
    copy = base.copy("drill", tmp_path / "copy", ["prometheus"])
    assert copy.project == f"{base.project}-drill"
    try:
        copy.up(timeout=UP_TIMEOUT)
        running = {s for s, state in copy.services().items() if state.running}
        # prometheus' depends_on (and alertmanager's: both its receivers), not postgres
        assert running == {"prometheus", "api", "alertmanager", "console-log", "integrations-standin"}
        with pytest.raises(ServiceNotRunning, match=r"not part of this copy of the stack"):
            copy.url("postgres")
        assert requests.get(copy.url("prometheus") + "/-/ready", timeout=5).status_code == 200
        assert copy.describe()["port_choice"] == "free"
    finally:
        copy.down(remove_volumes=True)
    client = docker.from_env()
    label = f"com.docker.compose.project={copy.project}"
    assert client.containers.list(all=True, filters={"label": label}) == []
    assert client.volumes.list(filters={"label": label}) == []

"""Host ports of the stack: chosen by the kernel, a lost bind recognised, its holder named, the start retried once.

sealgate.kernel.ports on its own (real sockets, the real outputs of Docker, Prometheus and Alertmanager quoted), then both
backends for real: a port chooser whose first pick is a port this test holds listening (`faults.TakenFirst`) makes
the race between choosing a free port and binding it happen on every run.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest
from conftest import reference_description
from faults import TakenFirst, listening_on
from stack_fixtures import (
    PROJECT_ROOT,
    UP_TIMEOUT,
    assert_fresh_scrape,
    need_local_binaries,
    new_compose_backend,
    new_run_dir,
)

from sealgate.backends.composefile import ComposeFile
from sealgate.backends.errors import StackError
from sealgate.kernel.errors import InputError
from sealgate.kernel.ports import (
    NO_VISIBLE_HOLDER,
    describe_holder,
    ephemeral_range,
    free_ports,
    free_ports_requested,
    in_ephemeral_range,
    lost_bind_port,
    shows_lost_bind,
)

RACE = "was taken between choice and start"
# Real outputs of a lost bind, as this machine's Docker 20.10, Prometheus 2.42, Alertmanager 0.25 and Python print
# them (ids shortened; the ports, kernel-chosen when they were captured, renumbered below the ephemeral range). Text
# for the parser only: nothing binds these ports.
DOCKER_PROXY = (
    "Error response from daemon: driver failed programming external connectivity on endpoint "
    "sealgate-x-prometheus-1 (d4e4c5c17a37): Error starting userland proxy: listen tcp4 127.0.0.1:20903: bind: "
    "address already in use"
)
DOCKER_ALLOCATED = (
    "Error response from daemon: driver failed programming external connectivity on endpoint ports-probe-c "
    "(98f497e1e566): Bind for 127.0.0.1:20904 failed: port is already allocated"
)
PROMETHEUS = (
    'ts=2026-11-30T18:26:49.536Z caller=main.go:802 level=error msg="Unable to start web listener" '
    'err="listen tcp 127.0.0.1:26649: bind: address already in use"'
)
ALERTMANAGER = (
    'ts=2026-11-30T18:26:49.585Z caller=main.go:547 level=error msg="Listen error" '
    'err="listen tcp 127.0.0.1:26650: bind: address already in use"'
)
PYTHON = "    self.socket.bind(self.server_address)\nOSError: [Errno 98] Address already in use"


# --- sealgate.kernel.ports --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "port"),
    [(DOCKER_PROXY, 20903), (DOCKER_ALLOCATED, 20904), (PROMETHEUS, 26649), (ALERTMANAGER, 26650)],
    ids=["docker-proxy", "docker-allocated", "prometheus", "alertmanager"],
)
def test_a_lost_bind_is_recognised_with_its_port(output: str, port: int) -> None:
    assert shows_lost_bind(output)
    assert lost_bind_port(f"compose: `up -d --remove-orphans` exited 1: {output}\n") == port


def test_a_lost_bind_without_its_port_is_recognised_and_other_errors_are_not() -> None:
    assert shows_lost_bind(PYTHON) and lost_bind_port(PYTHON) is None  # the caller knows which port it gave
    other = "Error response from daemon: pull access denied for prom/prometheus, repository does not exist"
    assert not shows_lost_bind(other) and lost_bind_port(other) is None


def test_ephemeral_range_is_read_from_the_kernel(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("20000\t20999\n")  # a range of its own (parser input: nothing binds it)
    assert ephemeral_range(setting) == (20000, 20999)
    assert in_ephemeral_range(20500, setting) and not in_ephemeral_range(9090, setting)
    assert ephemeral_range(tmp_path / "absent") == (32768, 60999)  # Linux's default when it cannot be read
    low, high = ephemeral_range()
    assert 1024 <= low < high <= 65535


def test_no_default_host_port_of_the_compose_file_is_in_the_ephemeral_range() -> None:
    """The users' defaults (8000, 9187, 9090, 9093, 3000, 5002, 9000) stay, and none of them may be a port the kernel
    hands out."""
    compose = ComposeFile(PROJECT_ROOT / "stack/docker-compose.yml", {})
    defaults = {name: port for name, svc in compose.services.items() for _ip, port, _ in svc.published_ports()}
    assert defaults == {
        "api": 8000,
        "postgres-exporter": 9187,
        "prometheus": 9090,
        "alertmanager": 9093,
        "grafana": 3000,
        "integrations-standin": 5002,
        "offsite-s3": 9000,
    }
    assert not [port for port in defaults.values() if in_ephemeral_range(port)], ephemeral_range()


def test_port_mode_comes_from_sealgate_ports() -> None:
    assert free_ports_requested({"SEALGATE_PORTS": "free"}) and free_ports_requested({"SEALGATE_PORTS": " Free "})
    assert not free_ports_requested({}) and not free_ports_requested({"SEALGATE_PORTS": "fixed"})
    with pytest.raises(InputError, match=r"SEALGATE_PORTS: unknown value 'any' \(use free or fixed"):
        free_ports_requested({"SEALGATE_PORTS": "any"})


def test_the_holder_of_a_port_is_named_with_its_pid_and_command_line() -> None:
    with listening_on(0) as [held]:
        assert describe_holder(held).startswith(f"process {os.getpid()} (")
    [released] = free_ports(1)
    assert describe_holder(released) == NO_VISIBLE_HOLDER


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


# --- the compose backend ---------------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.stack
@pytest.mark.slow
def test_compose_retries_once_a_free_port_taken_before_start_naming_it_and_its_holder(tmp_path: Path) -> None:
    lines: list[str] = []
    with listening_on(0) as [held]:
        chooser = TakenFirst(held)
        backend = new_compose_backend(tmp_path, suffix="-portrace", choose_ports=chooser, progress=lines.append)
        try:
            backend.up(timeout=UP_TIMEOUT)
            [race] = backend.port_races
            assert race["port"] == held and race["service"] in ("api", "prometheus", "alertmanager"), race
            assert str(race["holder"]).startswith(f"process {os.getpid()} ("), race
            [line] = [line for line in lines if RACE in line]
            assert f"host port 127.0.0.1:{held} ({race['service']}) {RACE}, by process {os.getpid()} (" in line
            assert "starting once more on new free ports" in line
            assert chooser.calls == 2
            # ... and it came up on the new ports, answering there.
            assert held not in backend.ports_used.values(), backend.ports_used
            for service, port in backend.ports_used.items():
                assert backend.url(service) == f"http://127.0.0.1:{port}"
            assert_fresh_scrape(backend)
            described = backend.describe()
            assert described["port_choice"] == "free" and described["ports"] == backend.ports_used
            assert described["port_races"] == [race]
        finally:
            backend.down(remove_volumes=True)


@pytest.mark.docker
@pytest.mark.stack
@pytest.mark.slow
def test_compose_losing_a_free_port_twice_is_an_error_naming_port_and_holder(tmp_path: Path) -> None:
    lines: list[str] = []
    with listening_on(0) as [held]:
        chooser = TakenFirst(held, times=2)
        backend = new_compose_backend(tmp_path, suffix="-portrace2", choose_ports=chooser, progress=lines.append)
        try:
            with pytest.raises(StackError) as raised:
                backend.up(timeout=UP_TIMEOUT)
        finally:
            backend.down(remove_volumes=True)
    first = str(raised.value).splitlines()[0]
    assert f"127.0.0.1:{held}" in first and f"{RACE} again, by process {os.getpid()} (" in first, first
    assert len([line for line in lines if RACE in line]) == 1  # one retry, announced once
    assert chooser.calls == 2 and len(backend.port_races) == 2


@pytest.mark.docker
@pytest.mark.stack
@pytest.mark.slow
def test_compose_with_fixed_ports_names_a_taken_port_and_its_holder_without_retrying(tmp_path: Path) -> None:
    lines: list[str] = []
    with listening_on(0) as [held]:
        api, alertmanager, grafana = free_ports(3)
        ports = {"api": api, "prometheus": held, "alertmanager": alertmanager, "grafana": grafana}
        backend = new_compose_backend(
            tmp_path, suffix="-portfixed", free_ports=False, ports=ports, progress=lines.append
        )
        try:
            with pytest.raises(StackError) as raised:
                backend.up(timeout=UP_TIMEOUT)
        finally:
            backend.down(remove_volumes=True)
    message = str(raised.value)
    assert f"host port 127.0.0.1:{held} (prometheus) is already taken, by process {os.getpid()} (" in message
    assert "set SEALGATE_PROMETHEUS_PORT to another port, or run with SEALGATE_PORTS=free" in message
    assert not [line for line in lines if RACE in line] and len(backend.port_races) == 1
    assert backend.describe()["port_choice"] == "fixed"


# --- the local backend -----------------------------------------------------------------------------------------

# The API's port is chosen in the stack description's start order (among the services that run as local processes): a
# Python server, whose error does not name the port.
API_PICK = [n for n, s in reference_description().services.items() if s.local.kind != "unavailable"].index("api")


@pytest.mark.stack
@pytest.mark.slow
def test_local_retries_once_a_port_taken_before_start_naming_it_and_its_holder() -> None:
    need_local_binaries()
    from sealgate.backends.local import LocalBackend

    run_dir = new_run_dir("sealgate-local-portrace-")
    lines: list[str] = []
    with listening_on(0) as [held]:
        chooser = TakenFirst(held, at=API_PICK)
        backend = LocalBackend(
            PROJECT_ROOT,
            run_dir,
            progress=lines.append,
            allow_download=False,
            choose_ports=chooser,
            description=reference_description(),
        )
        assert backend.local_services[API_PICK] == "api"
        try:
            backend.up(timeout=UP_TIMEOUT)
            [line] = [line for line in lines if RACE in line]
            assert f"api's port 127.0.0.1:{held} {RACE}, by process {os.getpid()} (" in line, line
            assert backend.port_races == [{"service": "api", "port": held, "holder": backend.port_races[0]["holder"]}]
            assert backend.ports["api"] != held and chooser.calls == 2
            assert backend.url("api") == f"http://127.0.0.1:{backend.ports['api']}"
            assert_fresh_scrape(backend)
            assert backend.describe()["port_races"] == backend.port_races
        finally:
            backend.down(remove_volumes=True)
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.mark.stack
@pytest.mark.slow
def test_local_losing_a_port_twice_is_an_error_naming_port_and_holder_and_stops_everything() -> None:
    need_local_binaries()
    from sealgate.backends.local import LocalBackend

    run_dir = new_run_dir("sealgate-local-portrace2-")
    lines: list[str] = []
    with listening_on(0) as [held]:
        backend = LocalBackend(
            PROJECT_ROOT,
            run_dir,
            progress=lines.append,
            allow_download=False,
            choose_ports=TakenFirst(held, times=2, at=API_PICK),
            description=reference_description(),
        )
        try:
            with pytest.raises(StackError) as raised:
                backend.up(timeout=UP_TIMEOUT)
            assert backend.procs and all(not p.alive() for p in backend.procs.values()), "orphans left by up()"
        finally:
            backend.down(remove_volumes=True)
            shutil.rmtree(run_dir, ignore_errors=True)
    first = str(raised.value).splitlines()[0]
    assert first.startswith(f"api: port 127.0.0.1:{held} {RACE} again, by process {os.getpid()} ("), first
    assert len([line for line in lines if RACE in line]) == 1

"""The local backend, for real: the same stack as processes on 127.0.0.1 (Prometheus, Alertmanager, the API,
console-log, PostgreSQL), from the same config files with the service addresses rewritten.

Tests run in file order against one session stack (tests/stack_fixtures.py `local_stack`); the last shared one
stops it and starts it again on the same data.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml
from conftest import reference_description
from stack_fixtures import (
    PROJECT_ROOT,
    assert_backup_made_three_archives,
    assert_fresh_scrape,
    assert_rules_loaded,
    need_local_binaries,
    new_run_dir,
    prom_query,
    provider_failure_drill,
    wait_for,
)

from sealgate.backends.errors import ServiceNotRunning, StackError
from sealgate.backends.local import LocalBackend

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_up_waits_for_a_fresh_scrape(local_stack):
    assert_fresh_scrape(local_stack)
    t = local_stack.timings
    print(f"local timings: up {t.up:.1f}s ready {t.ready:.1f}s fresh_scrape {t.fresh_scrape:.1f}s {t.extra}")


def test_six_rules_in_two_groups(local_stack):
    assert_rules_loaded(local_stack)


def test_configs_are_the_repository_files_with_addresses_rewritten(local_stack):
    source = yaml.safe_load((PROJECT_ROOT / "stack/prometheus/prometheus.yml").read_text())
    generated = yaml.safe_load((local_stack.config_dir / "prometheus.yml").read_text())
    assert generated["global"] == source["global"]
    assert generated["rule_files"] == [str(PROJECT_ROOT / "stack/prometheus/alerts/*.yml")]
    api, exporter = generated["scrape_configs"]
    assert api["job_name"] == "techno-os-api"
    assert api["static_configs"][0]["targets"] == [f"127.0.0.1:{local_stack.ports['api']}"]
    assert exporter["job_name"] == "postgres"  # F9.11: postgres_exporter, run from Debian's binary locally
    assert exporter["static_configs"][0]["targets"] == [f"127.0.0.1:{local_stack.ports['postgres-exporter']}"]
    targets = generated["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == [f"127.0.0.1:{local_stack.ports['alertmanager']}"]
    am = (local_stack.config_dir / "alertmanager.yml").read_text()
    assert "console-log:" not in am and f"http://127.0.0.1:{local_stack.ports['console-log']}/" in am


def test_processes_listen_on_loopback_only(local_stack):
    states = local_stack.services()
    for name in ("api", "postgres", "prometheus", "alertmanager", "console-log"):
        assert states[name].running and states[name].healthy and states[name].pid, states[name]
        assert local_stack.url(name).split("://")[1] == f"127.0.0.1:{local_stack.ports[name]}"
    with pytest.raises(ServiceNotRunning, match="no Grafana binary"):
        local_stack.url("grafana")
    data = local_stack.data_dir
    assert {p.name for p in data.iterdir()} >= {"prometheus", "alertmanager", "postgres", "grafana"}
    if os.geteuid() == 0:
        assert (data / "postgres").stat().st_uid != 0, "PostgreSQL must not run as root"


def test_backup_produces_three_archives(local_stack, tmp_path: Path):
    assert_backup_made_three_archives(local_stack, tmp_path / "backups")


def test_provider_failure_reaches_alertmanager_and_console_log(local_stack):
    seen = provider_failure_drill(local_stack)
    print(
        f"local drill: LLMProviderDown in Alertmanager after {seen['alertmanager']:.1f}s, "
        f"in console-log after {seen['console_log']:.1f}s"
    )


def test_down_leaves_no_process_and_keeps_the_data(local_stack):
    before = wait_for("an up sample", lambda: prom_query(local_stack, 'up{job="techno-os-api"}'), 30)
    at = float(before[0]["value"][0])
    pids = [p.popen.pid for p in local_stack.procs.values()]
    local_stack.down()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert (local_stack.data_dir / "postgres" / "PG_VERSION").is_file()
    local_stack.up(timeout=240)
    assert_fresh_scrape(local_stack)
    old = prom_query(local_stack, 'up{job="techno-os-api"}', at=at)
    assert old and float(old[0]["value"][1]) == 1.0, f"the sample at {at} did not survive down/up: {old}"


def test_stop_and_start_one_service(local_stack):
    local_stack.stop_service("api")
    with pytest.raises(ServiceNotRunning):
        local_stack.url("api")
    local_stack.start_service("api")
    assert local_stack.services()["api"].healthy


def test_a_failure_in_up_names_the_service_and_leaves_no_orphans():
    """A bad VERITTA_CB_THRESHOLD stops the API at start: up() fails fast naming it, and stops everything else."""
    need_local_binaries()
    run_dir = new_run_dir("sealgate-local-bad-")
    backend = LocalBackend(
        PROJECT_ROOT,
        run_dir,
        progress=lambda _m: None,
        env={"VERITTA_CB_THRESHOLD": "0"},
        allow_download=False,
        description=reference_description(),
    )
    started = time.monotonic()
    try:
        with pytest.raises(StackError) as raised:
            backend.up(timeout=60)
        assert "api" in raised.value.logs and "VERITTA_CB_THRESHOLD" in raised.value.logs["api"], raised.value.logs
        assert time.monotonic() - started < 30, "a dead service must fail fast, not at the timeout"
        assert backend.procs and all(not p.alive() for p in backend.procs.values()), "orphans left by a failed up"
    finally:
        backend.down(remove_volumes=True)
        shutil.rmtree(run_dir, ignore_errors=True)

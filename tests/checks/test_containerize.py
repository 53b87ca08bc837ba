"""EIXO 1 checks: the compose file judged through the real `docker compose config` (and the YAML fallback), broken
copies failing at the right line, and the live checks on the compose stack and on the local one (where the
containerized checks must fail: no containers)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from checkrun import explain, run_checks
from conftest import commit_all, need_compose_v2
from other_layout import make_other_layout, set_check

from sealgate.kernel.errors import InputError
from sealgate.model.results import Severity, Status
from sealgate.run.plan import open_spec

COMPOSE = "stack/docker-compose.yml"
STACK = "stack/stack.yaml"
STATIC = [
    "containerize/compose-services",
    "containerize/images-pinned",
    "containerize/network",
    "containerize/volumes",
    "containerize/config-mounts",
    "containerize/ports-loopback",
    "containerize/hardening",
]


def edit(root: Path, relative: str, old: str, new: str, count: int = 1) -> int:
    """Replace `old` (which must occur) in a file of the copy, commit, and return the 1-based line of the edit."""
    path = root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, count))
    commit_all(root, f"break {relative}")
    return line


def errors(result) -> list:
    return [f for f in result.findings if f.severity is Severity.ERROR]


# --- static, through `docker compose config` --------------------------------------------------------------------


def test_static_checks_pass_on_the_reference_compose_file(project_copy: Path) -> None:
    need_compose_v2()
    results = run_checks(project_copy, 1, STATIC)
    for check_id in STATIC:
        assert results[check_id].status is Status.PASSED, (check_id, results[check_id].reason)
        assert results[check_id].data["resolver"].startswith("docker compose ")
    assert results["containerize/images-pinned"].data["images"]["prometheus"] == "prom/prometheus:v2.51.0"
    assert results["containerize/volumes"].data["data_volumes"]["prometheus"] == "prometheus_data -> /prometheus"
    mounts = results["containerize/config-mounts"].data["bind_mounts"]
    assert mounts["prometheus"]["/etc/prometheus/alerts"] == "stack/prometheus/alerts"


def test_static_checks_pass_through_the_yaml_fallback(
    project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Compose the file is interpolated here the way Compose does it; the verdicts are the same."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(bin_dir))
    results = run_checks(project_copy, 1, STATIC)
    for check_id in STATIC:
        assert results[check_id].status is Status.PASSED, (check_id, results[check_id].reason)
        assert results[check_id].data["resolver"].startswith("YAML parsed here")


def test_unpinned_image_fails_at_its_line(project_copy: Path) -> None:
    need_compose_v2()
    line = edit(project_copy, COMPOSE, "prom/prometheus:v2.51.0", "prom/prometheus")
    result = run_checks(project_copy, 1, ["containerize/images-pinned"])["containerize/images-pinned"]
    assert result.status is Status.FAILED
    (finding,) = errors(result)
    assert (finding.location.file, finding.location.line) == (COMPOSE, line)
    assert "service prometheus: default image prom/prometheus has no tag" in finding.summary


def test_latest_image_fails(project_copy: Path) -> None:
    need_compose_v2()
    line = edit(project_copy, COMPOSE, "prom/alertmanager:v0.27.0", "prom/alertmanager:latest")
    result = run_checks(project_copy, 1, ["containerize/images-pinned"])["containerize/images-pinned"]
    assert result.status is Status.FAILED
    assert str(errors(result)[0]) == (
        f"{COMPOSE}:{line}: service alertmanager: default image prom/alertmanager:latest uses the floating tag "
        ":latest; pin a version tag or a digest"
    )


def test_missing_service_fails(project_copy: Path) -> None:
    need_compose_v2()
    text = (project_copy / COMPOSE).read_text()
    start = text.index("  grafana:\n")
    end = text.index("\nnetworks:")
    (project_copy / COMPOSE).write_text(text[:start] + text[end + 1 :])
    # The stack description must not describe what the compose file no longer has (the spec would not load).
    described = (project_copy / STACK).read_text()
    start = described.index("  grafana:\n")
    described = described[:start] + described[described.index("\nbackup:", start) + 1 :]
    (project_copy / STACK).write_text(described.replace("    grafana_data: grafana\n", ""))
    commit_all(project_copy, "no grafana")
    result = run_checks(project_copy, 1, ["containerize/compose-services"])["containerize/compose-services"]
    assert result.status is Status.FAILED
    assert "service 'grafana' is missing" in result.reason
    assert errors(result)[0].location.file == COMPOSE


def test_service_off_the_network_fails(project_copy: Path) -> None:
    need_compose_v2()
    text = (project_copy / COMPOSE).read_text()
    block = text.index("  alertmanager:\n")
    networks = text.index("    networks:\n      - techno-network\n", block)
    (project_copy / COMPOSE).write_text(
        text[:networks] + text[networks + len("    networks:\n      - techno-network\n") :]
    )
    commit_all(project_copy, "alertmanager off the network")
    result = run_checks(project_copy, 1, ["containerize/network"])["containerize/network"]
    assert result.status is Status.FAILED
    assert "service alertmanager is not on network techno-network" in result.reason


def test_data_directory_without_named_volume_fails(project_copy: Path) -> None:
    need_compose_v2()
    line = edit(project_copy, COMPOSE, "- grafana_data:/var/lib/grafana", "- ./grafana-data:/var/lib/grafana")
    result = run_checks(project_copy, 1, ["containerize/volumes"])["containerize/volumes"]
    assert result.status is Status.FAILED
    (finding,) = errors(result)
    assert (finding.location.file, finding.location.line) == (COMPOSE, line)
    assert "data directory /var/lib/grafana is a bind mount, not the named volume grafana_data" in finding.summary


def test_config_mount_of_a_missing_file_fails(project_copy: Path) -> None:
    need_compose_v2()
    line = edit(
        project_copy, COMPOSE, "./prometheus/alertmanager.yml:/etc", "./prometheus/alertmanager-missing.yml:/etc"
    )
    result = run_checks(project_copy, 1, ["containerize/config-mounts"])["containerize/config-mounts"]
    assert result.status is Status.FAILED
    finding = errors(result)[0]
    assert (finding.location.file, finding.location.line) == (COMPOSE, line)
    assert "bind mount source stack/prometheus/alertmanager-missing.yml does not exist" in finding.summary


def test_port_published_on_all_interfaces_fails(project_copy: Path) -> None:
    need_compose_v2()
    line = edit(project_copy, COMPOSE, '"127.0.0.1:${SEALGATE_PROMETHEUS_PORT', '"${SEALGATE_PROMETHEUS_PORT')
    result = run_checks(project_copy, 1, ["containerize/ports-loopback"])["containerize/ports-loopback"]
    assert result.status is Status.FAILED
    (finding,) = errors(result)
    assert (finding.location.file, finding.location.line) == (COMPOSE, line)
    assert "service prometheus: port 0.0.0.0:9090->9090 is reachable from other hosts" in finding.summary


# --- live ---------------------------------------------------------------------------------------------------------

LIVE = ["containerize/containers-healthy", "containerize/prometheus-live", "containerize/alertmanager-live"]


HARDENING_DEFECTS = [
    (
        "x-hardening: &hardening\n",
        "x-hardening: &hardening\n  privileged: true\n",
        "service alertmanager: privileged: true gives it every device and capability of the host; remove it",
    ),
    (
        "    - ALL\n\nx-python-service",
        "    - ALL\n  cap_add:\n    - SYS_ADMIN\n\nx-python-service",
        "service alertmanager: cap_add ['SYS_ADMIN'] makes it root-equivalent on the host; drop them",
    ),
    (
        "      - ./app:/srv/app:ro\n",
        "      - ./app:/srv/app:ro\n      - /var/run/docker.sock:/var/run/docker.sock\n",
        "service api: mounts the Docker engine's socket (/var/run/docker.sock): root on the host",
    ),
    (
        "      - ./app:/srv/app:ro\n",
        "      - ./app:/srv/app:ro\n      - /var/run/docker.sock:/var/run/docker.sock:ro\n",
        "service api: mounts the Docker engine's socket (/var/run/docker.sock): root on the host (read-only does not "
        "help: connecting to a socket is not writing to it)",
    ),
    (
        "      - GF_SECURITY_ADMIN_PASSWORD\n",
        "      - GF_SECURITY_ADMIN_PASSWORD=admin\n",
        "service grafana: GF_SECURITY_ADMIN_PASSWORD is set in the file (Grafana's default 'admin'); pass it through",
    ),
    (
        "      - GF_SECURITY_ADMIN_PASSWORD\n",
        "",
        "service grafana: GF_SECURITY_ADMIN_PASSWORD is not passed to Grafana, so it starts with admin/admin",
    ),
    (
        '        case "$${GF_SECURITY_ADMIN_PASSWORD:-admin}" in\n        admin) echo "grafana: set GF_SECURITY_ADMIN_PASSWORD'
        " (not empty, not 'admin') to run the grafana profile\" >&2;\n        exit 78;;\n        esac;\n",
        "",
        "service grafana: nothing refuses to start Grafana when GF_SECURITY_ADMIN_PASSWORD is unset or 'admin'",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    HARDENING_DEFECTS,
    ids=[
        "privileged",
        "cap-sys-admin",
        "engine-socket",
        "engine-socket-read-only",
        "grafana-admin-literal",
        "grafana-password-absent",
        "grafana-no-guard",
    ],
)
def test_hardening_fails_naming_the_service(project_copy: Path, old: str, new: str, expected: str) -> None:
    need_compose_v2()
    edit(project_copy, COMPOSE, old, new)
    result = run_checks(project_copy, 1, ["containerize/hardening"])["containerize/hardening"]
    assert result.status is Status.FAILED, result.reason
    found = [f for f in errors(result) if f.summary.startswith(expected)]
    assert found and found[0].location.file == COMPOSE and found[0].location.line, [f.summary for f in errors(result)]


def test_hardening_never_records_an_exported_grafana_password(
    project_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's exported password is passed through, not committed: it passes and lands nowhere."""
    need_compose_v2()
    monkeypatch.setenv("GF_SECURITY_ADMIN_PASSWORD", "exported-pw-3e4f5a")
    result = run_checks(project_copy, 1, ["containerize/hardening"])["containerize/hardening"]
    assert result.status is Status.PASSED, result.reason
    assert "exported-pw-3e4f5a" not in repr(result)


@pytest.mark.docker
@pytest.mark.stack
def test_live_checks_pass_on_the_compose_stack(project_copy: Path, compose_stack) -> None:
    results = run_checks(project_copy, 1, [*LIVE, "containerize/grafana-live"], stack=compose_stack)
    for check_id in LIVE:
        assert results[check_id].status is Status.PASSED, (check_id, results[check_id].reason)
    containers = results["containerize/containers-healthy"].data["containers"]
    assert containers["prometheus"]["healthy"] is True and containers["prometheus"]["image_id"].startswith("sha256:")
    assert "version" in containers["prometheus"]["version"]
    assert results["containerize/prometheus-live"].data["targets"] == {
        "techno-os-api/api:8000": "up",
        "postgres/postgres-exporter:9187": "up",  # F9.11: PostgreSQL's exporter, scraped too
    }
    assert results["containerize/alertmanager-live"].data["cluster"] == "disabled"
    grafana = results["containerize/grafana-live"]
    if grafana.status is Status.SKIPPED:  # no Grafana image here: skipped with the reason, never passed
        assert grafana.reason.startswith("Grafana does not run on this stack (compose): ")
    else:
        assert grafana.status is Status.PASSED, grafana.reason


@pytest.mark.docker
@pytest.mark.stack
def test_alertmanager_running_another_config_fails(project_copy: Path, compose_stack) -> None:
    """The copy's alertmanager.yml is not what the running container loaded: the live check says so."""
    edit(project_copy, "stack/prometheus/alertmanager.yml", "receiver: console-log-warning", "receiver: console-log")
    result = run_checks(project_copy, 1, ["containerize/alertmanager-live"], stack=compose_stack)
    result = result["containerize/alertmanager-live"]
    assert result.status is Status.FAILED
    assert "the running Alertmanager's config differs from stack/prometheus/alertmanager.yml" in result.reason
    assert errors(result)[0].location.json_path.endswith("/api/v2/status $.config.original")


@pytest.mark.stack
def test_local_backend_fails_the_containerized_checks(project_copy: Path, local_stack) -> None:
    results = run_checks(project_copy, 1, [*LIVE, "containerize/grafana-live"], stack=local_stack)
    for check_id in LIVE:
        assert results[check_id].status is Status.FAILED, check_id
        assert results[check_id].reason.startswith("stack ran as local processes (backend local)"), check_id
    # What was seen is still recorded: the processes run and answer, they are just not containers.
    assert results["containerize/containers-healthy"].data["containers"]["prometheus"]["running"] is True
    assert results["containerize/prometheus-live"].data["/-/ready"] == 200
    assert results["containerize/grafana-live"].status is Status.SKIPPED


# --- another layout: compose file at the root, other service names, its own stack description ----------------------


@pytest.mark.parametrize("compose_v2", [True, False], ids=["docker-compose-config", "parsed-here"])
def test_static_checks_pass_on_another_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compose_v2: bool
) -> None:
    root = make_other_layout(tmp_path / "other")
    if compose_v2:
        need_compose_v2()
    else:
        from sealgate.analysis import compose as containerize

        monkeypatch.setattr(containerize, "shutil", SimpleNamespace(which=lambda name: None))
    results = run_checks(root, 1, STATIC, sprint="OTHER")
    for check_id in STATIC:
        assert results[check_id].status is Status.PASSED, (check_id, explain(results[check_id]))
    # Services default to the described ones; each data directory is read from the service's own flags.
    assert results["containerize/compose-services"].data["services"] == ["alerts", "dash", "metrics", "web"]
    assert results["containerize/volumes"].data["data_volumes"] == {
        "alerts": "alerts_data -> /alertmanager",
        "dash": "dash_data -> /var/lib/grafana",
        "metrics": "metrics_data -> /data",
    }
    assert results["containerize/hardening"].data["grafana_services"] == ["dash"]


def test_a_data_directory_off_its_volume_fails_on_another_layout_at_its_line(tmp_path: Path) -> None:
    need_compose_v2()
    root = make_other_layout(tmp_path / "other")
    edit(root, "docker-compose.yml", "      - --storage.path=/alertmanager\n", "      - --storage.path=/am\n")
    lines = (root / "docker-compose.yml").read_text().splitlines()
    volumes_line = next(i for i, text in enumerate(lines, 1) if text == "      - alerts_data:/alertmanager") - 1
    result = run_checks(root, 1, ["containerize/volumes"], sprint="OTHER")["containerize/volumes"]
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert (finding.location.file, finding.location.line) == ("docker-compose.yml", volumes_line)
    assert "service alerts: its data directory /am is not mounted: data is lost with the container" in finding.summary


def test_volumes_of_a_service_whose_role_names_no_product_needs_its_path(tmp_path: Path) -> None:
    root = make_other_layout(tmp_path / "other")
    set_check(root, "containerize/volumes", **{"with": {"volumes": {"web": "web_data"}}})
    result = run_checks(root, 1, ["containerize/volumes"], sprint="OTHER")["containerize/volumes"]
    assert result.status is Status.ERRORED
    assert result.reason.startswith(
        "sprint/OTHER.yaml: containerize/volumes: cannot tell where service web keeps its data"
    ), result.reason
    assert "give it as `web: {volume: web_data, path: /its/data/dir}`" in result.reason
    set_check(root, "containerize/volumes", **{"with": {"volumes": {"web": {"volume": "web_data", "path": "/srv"}}}})
    result = run_checks(root, 1, ["containerize/volumes"], sprint="OTHER")["containerize/volumes"]
    assert result.status is Status.FAILED
    assert "service web: its data directory /srv is not mounted" in result.reason


def test_a_missing_or_misspelt_parameter_is_a_spec_error_with_its_line(tmp_path: Path) -> None:
    root = make_other_layout(tmp_path / "other")
    set_check(root, "containerize/network", **{"with": {"netwrk": "obs"}})
    set_check(root, "containerize/volumes", **{"with": {}})
    with pytest.raises(InputError) as raised:
        open_spec(root, "OTHER")
    text = str(raised.value)
    assert re.search(r"sprint/OTHER\.yaml:\d+: \$\.stages\[1\]\.checks\[2\]\.with: 'network' is a required", text), text
    assert "('netwrk' was unexpected)" in text
    assert re.search(r"sprint/OTHER\.yaml:\d+: \$\.stages\[1\]\.checks\[3\]\.with: 'volumes' is a required", text), text

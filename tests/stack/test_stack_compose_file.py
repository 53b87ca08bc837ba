"""stack/docker-compose.yml as Docker Compose itself resolves it (`docker compose config`), with the pinned defaults
and with stack/offline.env; plus the Grafana password guard and the postgres offline entrypoint, run for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import need, need_tool
from stack_content_support import STACK

pytestmark = pytest.mark.stack

COMPOSE = STACK / "docker-compose.yml"
OFFLINE_ENV = STACK / "offline.env"
SERVICES = {
    "api",
    "postgres",
    "postgres-exporter",
    "prometheus",
    "alertmanager",
    "console-log",
    "integrations-standin",
    "offsite-s3",
}
VOLUMES = {"postgres_data", "prometheus_data", "alertmanager_data", "grafana_data", "offsite_data"}
# Compose secrets, read from these variables (never from a file of the repository), and who mounts them.
SECRETS = {
    "slack_webhook_url": ("SLACK_WEBHOOK_URL", "alertmanager"),
    "pagerduty_routing_key": ("PAGERDUTY_ROUTING_KEY", "alertmanager"),
    "offsite_s3_access_key_id": ("OFFSITE_S3_ACCESS_KEY_ID", "offsite-s3"),
    "offsite_s3_secret_access_key": ("OFFSITE_S3_SECRET_ACCESS_KEY", "offsite-s3"),
}
DEFAULT_PORTS = {
    "api": (8000, 8000),
    "postgres-exporter": (9187, 9187),
    "prometheus": (9090, 9090),
    "alertmanager": (9093, 9093),
    "grafana": (3000, 3000),
}


def variables_read() -> set[str]:
    return set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text())) | {
        "VERITTA_CB_THRESHOLD",
        "VERITTA_CB_TIMEOUT",
        "VERITTA_RL_LIMIT",
        "VERITTA_RL_WINDOW",
        "GF_SECURITY_ADMIN_PASSWORD",
    }


def compose_config(*extra: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    need_tool("docker")
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    need(version.returncode == 0, "Docker Compose v2 missing (bash .ci/setup-system.sh installs it)")
    clean = {k: v for k, v in os.environ.items() if k not in variables_read()}
    clean.update(env or {})
    result = subprocess.run(
        ["docker", "compose", "-p", "sealgate-config-test", "-f", str(COMPOSE), *extra, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean,
        cwd=STACK.parent,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(p.get("host_ip", ""), int(p["published"]), int(p["target"])) for p in service.get("ports") or []]


def test_file_shape() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    assert "name" not in raw  # Compose v1 rejects it; the backend passes -p
    assert set(raw["volumes"]) == VOLUMES
    assert "techno-network" in raw["networks"]
    assert raw["services"]["grafana"]["profiles"] == ["grafana"]
    assert {name: spec for name, spec in raw["secrets"].items()} == {
        name: {"environment": variable} for name, (variable, _service) in SECRETS.items()
    }
    for name, (_variable, service) in SECRETS.items():
        assert name in raw["services"][service]["secrets"], (name, service)


@pytest.mark.parametrize("offline", [False, True], ids=["pinned", "offline-env"])
def test_compose_config_resolves(offline: bool) -> None:
    extra = ("--env-file", str(OFFLINE_ENV)) if offline else ()
    model = compose_config(*extra)
    services = model["services"]
    assert set(services) == SERVICES  # grafana only with its profile
    assert set(model["volumes"]) >= {"postgres_data", "prometheus_data", "alertmanager_data"}
    for name, service in services.items():
        assert list(service["networks"]) == ["techno-network"], name
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert not service.get("privileged"), name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        for host_ip, _, _ in published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip or 'all interfaces'}"
    assert not published(services["postgres"]) and not published(services["console-log"])
    for name, (host, container) in DEFAULT_PORTS.items():
        if name in services:
            assert published(services[name]) == [("127.0.0.1", host, container)], name

    images = {name: s["image"] for name, s in services.items()}
    if offline:
        assert set(images.values()) == {"sealgate-offline:bookworm-3"}
        assert services["prometheus"]["entrypoint"] == ["/usr/bin/prometheus"]
        # The secret guard (sh -c), then the binary it execs.
        assert services["alertmanager"]["entrypoint"][:2] == ["/bin/sh", "-c"]
        assert services["alertmanager"]["entrypoint"][-1] == "/usr/bin/prometheus-alertmanager"
        assert services["postgres"]["entrypoint"] == ["/srv/postgres/offline-entrypoint.sh"]
        prom_data, am_data = "/var/lib/prometheus/metrics2", "/var/lib/prometheus/alertmanager"
    else:
        assert images["prometheus"] == "prom/prometheus:v2.51.0"
        assert images["alertmanager"] == "prom/alertmanager:v0.27.0"
        assert images["postgres"] == "postgres:16.4"
        assert services["prometheus"]["entrypoint"] == ["/bin/prometheus"]
        prom_data, am_data = "/prometheus", "/alertmanager"
    for image in images.values():
        assert re.search(r":[^:]*\d", image) and not image.endswith(":latest"), image  # pinned

    prom = services["prometheus"]
    assert {"--web.enable-admin-api", "--rules.alert.resend-delay=5s", f"--storage.tsdb.path={prom_data}"} <= set(
        prom["command"]
    )
    assert {(v["source"], v["target"]) for v in prom["volumes"] if v["type"] == "volume"} == {
        ("prometheus_data", prom_data)
    }
    am = services["alertmanager"]
    assert "--cluster.listen-address=" in am["command"] and f"--storage.path={am_data}" in am["command"]
    assert {(v["source"], v["target"]) for v in am["volumes"] if v["type"] == "volume"} == {
        ("alertmanager_data", am_data)
    }
    api = services["api"]
    assert api["init"] is True
    # Unset on the host: listed without a value (null), which Compose does not pass into the container at all.
    env = api.get("environment") or {}
    assert {k: v for k, v in env.items() if k.startswith("VERITTA_")} == {
        "VERITTA_CB_THRESHOLD": None,
        "VERITTA_CB_TIMEOUT": None,
        "VERITTA_RL_LIMIT": None,
        "VERITTA_RL_WINDOW": None,
    }


def test_breaker_and_rate_limit_variables_pass_through_only_when_set() -> None:
    model = compose_config(env={"VERITTA_CB_THRESHOLD": "7", "VERITTA_RL_WINDOW": "30"})
    env = model["services"]["api"]["environment"]
    assert env.get("VERITTA_CB_THRESHOLD") == "7" and env.get("VERITTA_RL_WINDOW") == "30"
    assert env.get("VERITTA_CB_TIMEOUT") is None and env.get("VERITTA_RL_LIMIT") is None


def test_host_ports_overridable_and_loopback_only() -> None:
    model = compose_config(
        "--profile",
        "grafana",
        env={
            "SEALGATE_API_PORT": "18000",
            "SEALGATE_PROMETHEUS_PORT": "19090",
            "SEALGATE_ALERTMANAGER_PORT": "19093",
            "SEALGATE_GRAFANA_PORT": "13000",
            "SEALGATE_POSTGRES_EXPORTER_PORT": "19187",
        },
    )
    services = model["services"]
    assert set(services) == SERVICES | {"grafana"}
    assert published(services["api"]) == [("127.0.0.1", 18000, 8000)]
    assert published(services["postgres-exporter"]) == [("127.0.0.1", 19187, 9187)]
    assert published(services["prometheus"]) == [("127.0.0.1", 19090, 9090)]
    assert published(services["alertmanager"]) == [("127.0.0.1", 19093, 9093)]
    assert published(services["grafana"]) == [("127.0.0.1", 13000, 3000)]
    grafana = services["grafana"]
    assert grafana["image"] == "grafana/grafana:11.3.1"
    assert grafana["environment"].get("GF_SECURITY_ADMIN_PASSWORD") in (None, "")  # no default password
    mounts = {(v["source"], v["target"]) for v in grafana["volumes"]}
    assert ("grafana_data", "/var/lib/grafana") in mounts
    assert (str(STACK / "grafana" / "provisioning"), "/etc/grafana/provisioning") in mounts
    assert (str(STACK / "grafana" / "dashboards"), "/var/lib/grafana/dashboards") in mounts


def guard_script() -> list[str]:
    entrypoint = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]["entrypoint"]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    # Compose turns $$ into $ before the container sees it.
    return [entrypoint[2].replace("$$", "$"), *entrypoint[3:]]


@pytest.mark.parametrize(("password", "refused"), [(None, True), ("", True), ("admin", True), ("s3cret-long", False)])
def test_grafana_refuses_default_password(tmp_path: Path, password: str | None, refused: bool) -> None:
    script, *argv0 = guard_script()
    # The guard ends with `exec /run.sh`; point it at a stand-in that proves it was reached.
    script = script.replace("exec /run.sh", f"exec {tmp_path / 'run.sh'}")
    (tmp_path / "run.sh").write_text("#!/bin/sh\necho grafana-started\n")
    (tmp_path / "run.sh").chmod(0o755)
    env = {"PATH": os.environ["PATH"]}
    if password is not None:
        env["GF_SECURITY_ADMIN_PASSWORD"] = password
    result = subprocess.run(["sh", "-c", script, *argv0], capture_output=True, text=True, env=env, timeout=10)
    if refused:
        assert result.returncode == 78 and "GF_SECURITY_ADMIN_PASSWORD" in result.stderr
        assert "grafana-started" not in result.stdout
    else:
        assert (result.returncode, result.stdout.strip()) == (0, "grafana-started")


@pytest.mark.parametrize("empty", [None, "slack_webhook_url", "pagerduty_routing_key"])
def test_alertmanager_refuses_to_start_without_its_secrets(tmp_path: Path, empty: str | None) -> None:
    """The entrypoint guard: an empty (or missing) secret file stops Alertmanager before it starts, naming it."""
    entrypoint = yaml.safe_load(COMPOSE.read_text())["services"]["alertmanager"]["entrypoint"]
    assert entrypoint[:2] == ["/bin/sh", "-c"]
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("slack_webhook_url", "pagerduty_routing_key"):
        (secrets / name).write_text("" if name == empty else "value")
    script = entrypoint[2].replace("$$", "$").replace("/run/secrets/", f"{secrets}/")
    binary = tmp_path / "alertmanager"
    binary.write_text('#!/bin/sh\necho alertmanager-started "$@"\n')
    binary.chmod(0o755)
    result = subprocess.run(
        ["sh", "-c", script, str(binary), "--config.file=x"], capture_output=True, text=True, timeout=10
    )
    if empty is None:
        assert (result.returncode, result.stdout.strip()) == (0, "alertmanager-started --config.file=x")
    else:
        assert result.returncode == 78 and f"secret {empty} is empty or missing" in result.stderr
        assert "alertmanager-started" not in result.stdout


def test_shell_scripts_lint_clean() -> None:
    need_tool("shellcheck")
    for script in (
        STACK / "postgres" / "offline-entrypoint.sh",
        STACK / "scripts" / "backup_observability.sh",
        STACK / "scripts" / "standin_secrets.sh",
    ):
        assert os.access(script, os.X_OK), f"{script} is not executable"
        result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout


def test_offline_env_only_sets_variables_the_file_reads() -> None:
    assigned = {
        line.split("=", 1)[0]
        for line in OFFLINE_ENV.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    assert assigned <= variables_read(), assigned - variables_read()
    assert shutil.which("true")  # sanity for the guard test's PATH


# What each container reads at the paths the stack's configuration names, as the file is written and as Compose
# resolves it (what the checks read where Compose v2 is installed): the one answer, ComposeFile.file_at.
READS = [
    ("prometheus", "/etc/prometheus/prometheus.yml", "prometheus/prometheus.yml"),
    ("prometheus", "/etc/prometheus/alerts/api.yml", "prometheus/alerts/api.yml"),  # inside a directory mount
    ("prometheus", "/prometheus/wal", None),  # the data volume, no repository file (image defaults)
    ("alertmanager", "/etc/alertmanager/alertmanager.yml", "prometheus/alertmanager.yml"),
    (
        "grafana",
        "/etc/grafana/provisioning/datasources/prometheus.yml",
        "grafana/provisioning/datasources/prometheus.yml",
    ),
    ("grafana", "/var/lib/grafana/dashboards/llm_metrics.json", "grafana/dashboards/llm_metrics.json"),
    ("grafana", "/var/lib/grafana/grafana.db", None),  # Grafana's data volume
]


@pytest.mark.parametrize("resolved", [False, True], ids=["as-written", "docker-compose-config"])
def test_each_container_reads_the_repository_files_its_configuration_names(resolved: bool) -> None:
    from sealgate.backends.composefile import ComposeFile

    model = compose_config("--profile", "grafana") if resolved else None
    compose = ComposeFile(COMPOSE, {}, "stack/docker-compose.yml", resolved=model)
    for service, inside, expected in READS:
        found = compose.file_at(service, inside)
        host = found.host if found is not None else None
        relative = Path(host).resolve().relative_to(STACK.resolve()).as_posix() if host else None
        assert relative == expected, (service, inside, found)

"""The compose-file model reads what Compose reads: which host file a service's container sees at a path
(`ComposeFile.file_at`) through a bind mount of the file or of a directory above it, a file-backed top-level config
(short and long syntax) or secret, with the deeper mount winning and a named volume hiding what it covers; and the
container port a service only `expose`s. Each answer is checked on the file as written *and* on the model the real
`docker compose config` makes of it, which is what the checks read where Compose v2 is installed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import commit_all, init_repo, need, need_tool

from sealgate.backends.composefile import ComposeFile
from sealgate.backends.description import load_description

COMPOSE = """\
services:
  prometheus:
    image: prom/prometheus:v2.51.0
    volumes:
      - ./prometheus:/etc/prometheus:ro
      - prometheus_data:/etc/prometheus/data
      - type: bind
        source: ./extra
        target: /srv/extra
    configs:
      - alerts
      - source: alerts
        target: /etc/prometheus/rules/alerts.yml
      - source: alerts
        target: relative/alerts.yml
      - source: inline
        target: /etc/inline.yml
    secrets:
      - source: token
        target: /etc/prometheus/token
    expose:
      - "9090"
  exporter:
    image: prom/node-exporter:v1.8.1
    expose:
      - 9100
      - "9200-9201"
      - "9300/udp"
configs:
  alerts:
    file: ./monitoring/alerts.yml
  inline:
    content: "groups: []"
secrets:
  token:
    file: ./secrets/token
volumes:
  prometheus_data: {}
"""

FILES = {
    "prometheus/prometheus.yml": "global: {}\n",
    "prometheus/rules/node.yml": "groups: []\n",
    "monitoring/alerts.yml": "groups: []\n",
    "extra/readme.txt": "x\n",
    "secrets/token": "t\n",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "mounts"
    for relative, text in {"compose.yaml": COMPOSE, **FILES}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def resolved_by_compose(root: Path) -> dict:
    """The model `docker compose config` makes of the file (absolute paths, long syntax): what the checks read."""
    need_tool("docker")
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    need(version.returncode == 0, "Docker Compose v2 is not installed (bash .ci/setup-system.sh installs it)")
    argv = ["docker", "compose", "-p", "sealgate-mounts-test", "-f", str(root / "compose.yaml")]
    done = subprocess.run(
        [*argv, "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(params=["as-written", "docker-compose-config"])
def compose(request: pytest.FixtureRequest, project: Path) -> ComposeFile:
    resolved = resolved_by_compose(project) if request.param == "docker-compose-config" else None
    return ComposeFile(project / "compose.yaml", {}, "compose.yaml", resolved=resolved)


def host(compose: ComposeFile, service: str, path: str) -> str | None:
    found = compose.file_at(service, path)
    if found is None or found.host is None:
        return None
    return Path(found.host).resolve().relative_to(compose.base.resolve()).as_posix()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/etc/prometheus/prometheus.yml", "prometheus/prometheus.yml"),  # inside a directory bind mount
        ("/etc/prometheus/rules/node.yml", "prometheus/rules/node.yml"),  # deeper inside it
        ("/etc/prometheus/", "prometheus"),  # the directory itself
        ("/etc/prometheus/rules/alerts.yml", "monitoring/alerts.yml"),  # a config's file shadows the directory's
        ("/alerts", "monitoring/alerts.yml"),  # short syntax: mounted at /<name>
        ("/relative/alerts.yml", "monitoring/alerts.yml"),  # a relative target is under /
        ("/etc/prometheus/token", "secrets/token"),  # a file-backed secret with a target
        ("/srv/extra/readme.txt", "extra/readme.txt"),  # long-syntax bind mount
        ("/etc/prometheus/data/wal", None),  # a named volume hides the bind mount above it
        ("/etc/inline.yml", None),  # a config made from `content:` is no host file
        ("/etc/prometheus/rules/alerts.yml/x", None),  # nothing below a mounted file
        ("/etc/hostname", None),  # the image's own
        ("relative/path", None),  # container paths are absolute
    ],
)
def test_the_file_a_container_reads_at_a_path(compose: ComposeFile, path: str, expected: str | None) -> None:
    assert host(compose, "prometheus", path) == expected


def test_which_entry_delivers_it_points_at_its_line(compose: ComposeFile) -> None:
    found = compose.file_at("prometheus", "/etc/prometheus/rules/alerts.yml")
    assert (found.key, found.index, found.kind, found.read_only) == ("configs", 1, "config", True)
    assert (
        compose.line("services", "prometheus", found.key, found.index)
        == COMPOSE.splitlines().index("      - source: alerts") + 1
    )
    found = compose.file_at("prometheus", "/etc/prometheus/prometheus.yml")
    assert (found.key, found.index, found.kind, found.target) == ("volumes", 0, "bind", "/etc/prometheus")


def test_where_a_repository_file_is_seen_in_the_container(compose: ComposeFile) -> None:
    base = compose.base
    assert compose.container_paths("prometheus", base / "monitoring/alerts.yml") == [
        "/alerts",
        "/etc/prometheus/rules/alerts.yml",
        "/relative/alerts.yml",
    ]
    assert compose.container_paths("prometheus", base / "prometheus/rules/node.yml") == [
        "/etc/prometheus/rules/node.yml"
    ]
    assert compose.container_paths("exporter", base / "prometheus/prometheus.yml") == []


def test_a_glob_maps_through_directories_and_configs(compose: ComposeFile) -> None:
    """Prometheus' `rule_files: [rules/*.yml]`: the directory mount's files and the config mounted among them."""
    found = [Path(p).resolve().relative_to(compose.base.resolve()).as_posix() for p in
             compose.host_patterns("prometheus", "/etc/prometheus/rules/*.yml")]  # fmt: skip
    assert found == ["prometheus/rules/*.yml", "monitoring/alerts.yml"]
    assert compose.host_patterns("prometheus", "/nowhere/*.yml") == []


def test_exposed_ports(compose: ComposeFile) -> None:
    assert compose.services["prometheus"].exposed_ports() == [9090]
    assert compose.services["exporter"].exposed_ports() == [9100]  # a range and a UDP port name no single port


# --- the stack description: a port only exposed, a scrape job read from a config in a directory mount ------------------

DESCRIBED = """\
sealgate_stack: 1
compose: {file: compose.yaml}
services:
  exporter: {role: target}
  prometheus: {role: prometheus, port: 9090}
"""

SCRAPED = """\
scrape_configs:
  - job_name: node
    static_configs: [{targets: ["exporter:9100"]}]
"""


def test_the_description_takes_an_exposed_port_and_the_job_from_a_directory_mount(project: Path) -> None:
    (project / "prometheus/prometheus.yml").write_text(SCRAPED)
    (project / "stack.yaml").write_text(DESCRIBED)
    init_repo(project)
    commit_all(project, "a stack whose exporter only exposes its port")
    exporter = load_description(project, "stack.yaml", env={}).services["exporter"]
    assert (exporter.port, exporter.job, exporter.published) == (9100, "node", False)


def test_a_port_neither_published_nor_exposed_is_a_mismatch_to_fix(project: Path) -> None:
    (project / "prometheus/prometheus.yml").write_text(SCRAPED)
    (project / "stack.yaml").write_text(DESCRIBED)
    (project / "compose.yaml").write_text(COMPOSE.replace('      - 9100\n      - "9200-9201"\n', ""))
    description = load_description(project, "stack.yaml", env={})
    assert description.services["exporter"].port is None
    assert [str(p) for p in description.problems] == [
        "stack.yaml:4: service 'exporter': its container port is not published (set `port:`)"
    ]

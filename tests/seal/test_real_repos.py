"""Real teams' repositories, sealed as they are (issue 20's acceptance).

Three public monitoring repositories, none written for sealgate, each kept as published under tests/fixtures/real/
(trimmed to what their stacks use; `SOURCE` names the commit, and every kept file's git blob, which the first test
re-hashes), with what a team adds to adopt sealgate beside it in `<name>.sealgate/`: the stack description, the
sprint spec and its waivers — nothing of theirs edited:

- **dockprom** (stefanprodan/dockprom): configuration in directory bind mounts, ports only `expose`d, a Slack-only
  Alertmanager, dashboards in Grafana's provisioning directory, rules with defects of their own;
- **vegasbrianc-prometheus** (vegasbrianc/prometheus): ports on every interface, unpinned images, a receiver with no
  integration that takes every alert, the Docker engine's socket through a parent mount, Grafana's password in a
  committed env_file;
- **swarmprom** (stefanprodan/swarmprom): a swarm stack of custom images (nothing of it can run here: static stages
  only), rule files delivered by `configs:`, a Prometheus configuration baked into its image.

Each is sealed once (`sealgate seal`, the local backend: Debian's Prometheus, Alertmanager, node-exporter and
pushgateway as processes). No cAdvisor can run here; where a stack scrapes one, its own recorded exposition stands in
for it — cAdvisor's test data from its repository (tests/fixtures/real/cadvisor/, Apache-2.0), served by
tests/recorded_exporter.py under the name `cadvisor` on PATH — so the rules and panels that read cAdvisor's metrics
are judged against what cAdvisor really exports. Grafana cannot run here either: its check is skipped with the
reason, under a waiver that names that reason. The stand-in is said in the evidence (`run.stack.tools.cadvisor`).

Every repository is refused, each for findings that are true, and every finding of every run is named below by
place (file:line, or file and JSON path) and message — so a finding the framework starts or stops producing fails
this test until someone has judged it. The waivers cover only true findings that are the repositories' deliberate
choices (cAdvisor's and node-exporter's host access, swarmprom's baked configuration): a waived finding is marked
here, and every entry of every waiver covers something (none is stale).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, commit_all, git, init_repo, need_tool
from recorded_exporter import VERSION_LINE, without_timestamps

from sealgate.analysis.parecer import Exposition
from sealgate.evidence.judge import Verdict, failure_items, judge
from sealgate.model.results import Finding
from sealgate.run.plan import open_spec
from sealgate.scaffold import IGNORED

pytestmark = pytest.mark.stack

REAL = PROJECT_ROOT / "tests" / "fixtures" / "real"
CADVISOR_RECORDINGS = [
    REAL / "cadvisor" / "lib" / "metrics" / "testdata" / "prometheus_metrics",
    REAL / "cadvisor" / "lib" / "metrics" / "testdata" / "prometheus_machine_metrics",
]
LOCAL_PORT = re.compile(r"127\.0\.0\.1:\d+")
SEAL_TIMEOUT_S = 300


@dataclass(frozen=True)
class Seen:
    """One finding a run produces: where (`file:line`, or `file $.json.path`), its message (the summary, with this
    run's local ports written PORT, starts with `message` and ends with `tail`), and whether a waiver covers it."""

    check: str
    where: str
    message: str
    tail: str = ""
    severity: str = "error"
    waived: bool = False

    def matches(self, check: str, where: str, summary: str, severity: str) -> bool:
        return (
            (check, where, severity) == (self.check, self.where, self.severity)
            and summary.startswith(self.message)
            and summary.endswith(self.tail)
        )


@dataclass(frozen=True)
class RealRepository:
    name: str  # tests/fixtures/real/<name>/ and <name>.sealgate/
    sprint: str
    verdicts: dict[str, Verdict]  # every check of the spec
    findings: list[Seen]  # every finding of the run
    failing_criteria: list[str]
    data: dict[str, dict[str, object]] = field(default_factory=dict)  # what some checks recorded, by key
    programs: tuple[str, ...] = ()  # what the local backend runs for its stack (Debian's packages)
    runs_stack: bool = True  # False: static stages only
    scrapes_cadvisor: bool = False
    drift: list[str] = field(default_factory=list)  # services whose version the local backend says drifts


def place(finding: Finding) -> str:
    location = finding.location
    if location.json_path:
        return f"{location.file} {location.json_path}"
    return f"{location.file}:{location.line}" if location.line else str(location.file)


HOST_SOCKET = "root on the host; mount only the files it needs"
HOST_SOCKET_READ_ONLY = (
    "root on the host (read-only does not help: connecting to a socket is not writing to it); mount only the files it "
    "needs"
)
GRAFANA_GUARD = (
    "service grafana: nothing refuses to start Grafana when GF_SECURITY_ADMIN_PASSWORD is unset or 'admin' (Grafana "
    "then falls back to admin/admin); guard it in the entrypoint"
)
READ_WRITE = "is mounted read-write; configuration should be `:ro`"


def published_ports(rows: list[tuple[int, str, int]]) -> list[Seen]:
    """containerize/ports-loopback: (line, service, port) of each port published on every interface."""
    return [
        Seen(
            "containerize/ports-loopback",
            f"docker-compose.yml:{line}",
            f"service {service}: port 0.0.0.0:{port}->{port} is reachable from other hosts; bind it to 127.0.0.1",
        )
        for line, service, port in rows
    ]


def caddy_ports(lines_ports: list[tuple[int, int]]) -> list[Seen]:
    return published_ports([(line, "caddy", port) for line, port in lines_ports])


def untagged_images(rows: list[tuple[int, str, str]]) -> list[Seen]:
    """containerize/images-pinned: (line, service, image) of each image named without a tag."""
    return [
        Seen(
            "containerize/images-pinned",
            f"docker-compose.yml:{line}",
            f"service {service}: default image {image} has no tag (Docker reads it as :latest); pin a version tag "
            "or a digest",
        )
        for line, service, image in rows
    ]


def no_value(line: int, rule: str, metric: str, label: str, value: str, consequence: str) -> Seen:
    """rules/metrics-exist on dockprom's rules: a matcher whose value no series of the metric carries, in any target
    or in Prometheus (the values it lists after are this machine's: not asserted)."""
    return Seen(
        "rules/metrics-exist",
        f"prometheus/alert.rules:{line}",
        f'rule {rule}: {metric}{{{label}="{value}"}}: no series of {metric} has {label}="{value}" in nodeexporter (GET '
        "http://127.0.0.1:PORT/metrics), cadvisor (GET http://127.0.0.1:PORT/metrics), pushgateway (GET "
        "http://127.0.0.1:PORT/metrics) and Prometheus (http://127.0.0.1:PORT)",
        tail=consequence,
    )


DOCKPROM = RealRepository(
    name="dockprom",
    sprint="DP1",
    verdicts={
        "containerize/compose-services": Verdict.PASSED,
        "containerize/images-pinned": Verdict.PASSED,
        "containerize/ports-loopback": Verdict.FAILED,
        "containerize/network": Verdict.PASSED,
        "containerize/volumes": Verdict.PASSED,
        "containerize/config-mounts": Verdict.PASSED,  # the exporters' host paths are no configuration
        "containerize/hardening": Verdict.FAILED,  # the waiver covers all but Grafana's password
        "rules/promtool-check": Verdict.PASSED,
        "rules/inventory": Verdict.PASSED,
        "rules/alertmanager-config": Verdict.FAILED,
        "rules/routing": Verdict.ERRORED,  # requires rules/alertmanager-config
        "rules/metrics-exist": Verdict.FAILED,
        "rules/loaded-live": Verdict.PASSED,
        "dashboard/provisioning": Verdict.PASSED,
        "dashboard/queries-metrics": Verdict.FAILED,
        "containerize/grafana-live": Verdict.WAIVED,  # skipped: no Grafana here
    },
    findings=[
        # The reverse proxy publishes every UI on every interface (behind basic auth, but reachable from other hosts).
        *caddy_ports([(122, 3000), (123, 8080), (124, 9090), (125, 9093), (126, 9091)]),
        # Configuration directories mounted writable: warnings.
        Seen(
            "containerize/config-mounts",
            "docker-compose.yml:15",
            f"service prometheus: prometheus {READ_WRITE}",
            severity="warning",
        ),
        Seen(
            "containerize/config-mounts",
            "docker-compose.yml:36",
            f"service alertmanager: alertmanager {READ_WRITE}",
            severity="warning",
        ),
        Seen(
            "containerize/config-mounts",
            "docker-compose.yml:93",
            f"service grafana: grafana/provisioning/dashboards {READ_WRITE}",
            severity="warning",
        ),
        Seen(
            "containerize/config-mounts",
            "docker-compose.yml:94",
            f"service grafana: grafana/provisioning/datasources {READ_WRITE}",
            severity="warning",
        ),
        Seen(
            "containerize/config-mounts",
            "docker-compose.yml:128",
            f"service caddy: caddy {READ_WRITE}",
            severity="warning",
        ),
        # cAdvisor's and node-exporter's host access, as their projects document it: waived (DP1.waivers.yaml).
        Seen(
            "containerize/hardening",
            "docker-compose.yml:71",
            "service cadvisor: privileged: true gives it every device and capability of the host",
            waived=True,
        ),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:75",
            "service cadvisor: mounts / at /rootfs, and with it the Docker engine's socket /var/run/docker.sock",
            tail=HOST_SOCKET_READ_ONLY,
            waived=True,
        ),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:76",
            "service cadvisor: mounts /var/run at /var/run, and with it the Docker engine's socket "
            "/var/run/docker.sock",
            tail=HOST_SOCKET_READ_ONLY,
            waived=True,
        ),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:54",
            "service nodeexporter: mounts / at /rootfs, and with it the Docker engine's socket /var/run/docker.sock",
            tail=HOST_SOCKET_READ_ONLY,
            waived=True,
        ),
        # GF_SECURITY_ADMIN_PASSWORD=${ADMIN_PASSWORD:-admin}: Grafana's default unless the operator sets one.
        Seen("containerize/hardening", "docker-compose.yml:88", GRAFANA_GUARD),
        # The Slack webhook URL (a credential) is written into the committed configuration.
        Seen(
            "rules/alertmanager-config",
            "alertmanager/config.yml:11",
            "$.receivers[0].slack_configs[0].api_url holds a secret in the configuration (committed with it): read "
            "it from a file with `api_url_file`",
        ),
        # No filesystem is aufs (Docker's aufs driver is long gone): the storage alert and panel read nothing.
        no_value(
            34,
            "high_storage_load",
            "node_filesystem_size_bytes",
            "fstype",
            "aufs",
            "so the selector matches nothing — alert high_storage_load can never fire",
        ),
        no_value(
            34,
            "high_storage_load",
            "node_filesystem_free_bytes",
            "fstype",
            "aufs",
            "so the selector matches nothing — alert high_storage_load can never fire",
        ),
        # The stack runs no jenkins container: two alerts can never fire, and one always does.
        Seen(
            "rules/metrics-exist",
            "prometheus/alert.rules:45",
            'rule jenkins_down: absent() of container_memory_usage_bytes{name="jenkins"} is always true: no series of '
            'container_memory_usage_bytes has name="jenkins" in nodeexporter',
            tail="— alert jenkins_down always fires",
            severity="warning",
        ),
        no_value(
            54,
            "jenkins_high_cpu",
            "container_cpu_usage_seconds_total",
            "name",
            "jenkins",
            "so the selector matches nothing — alert jenkins_high_cpu can never fire",
        ),
        no_value(
            63,
            "jenkins_high_memory",
            "container_memory_usage_bytes",
            "name",
            "jenkins",
            "so the selector matches nothing — alert jenkins_high_memory can never fire",
        ),
        *[
            Seen(
                "dashboard/queries-metrics",
                "grafana/provisioning/dashboards/docker_containers.json $.rows[0].panels[4].targets[0].expr",
                f'panel \'Storage Load\' (A): {metric}{{fstype="aufs"}}: no series of {metric} has fstype="aufs" in '
                "nodeexporter (/metrics), cadvisor (/metrics) and Prometheus (http://127.0.0.1:PORT)",
                tail="so the selector matches nothing",
            )
            for metric in ("node_filesystem_size_bytes", "node_filesystem_free_bytes")
        ],
    ],
    failing_criteria=["C1", "C2", "C3"],
    data={
        # The configuration comes in whole directories; the exporters' host paths are the host's, not configuration.
        "containerize/config-mounts": {
            "host_mounts": {
                "cadvisor": {
                    "/rootfs": "/",
                    "/sys": "/sys",
                    "/var/lib/docker": "/var/lib/docker",
                    "/var/run": "/var/run",
                },
                "nodeexporter": {"/host/proc": "/proc", "/host/sys": "/sys", "/rootfs": "/"},
            }
        },
        "rules/promtool-check": {"rule_files_loaded": ["prometheus/alert.rules"]},
        "dashboard/provisioning": {
            "dashboard_in_grafana": ["/etc/grafana/provisioning/dashboards/docker_containers.json"]
        },
    },
    programs=("prometheus", "prometheus-alertmanager", "prometheus-node-exporter", "prometheus-pushgateway"),
    scrapes_cadvisor=True,
    drift=["alertmanager", "nodeexporter", "prometheus", "pushgateway"],
)

VEGASBRIANC = RealRepository(
    name="vegasbrianc-prometheus",
    sprint="VB1",
    verdicts={
        "containerize/compose-services": Verdict.PASSED,
        "containerize/images-pinned": Verdict.FAILED,
        "containerize/ports-loopback": Verdict.FAILED,
        "containerize/network": Verdict.PASSED,
        "containerize/volumes": Verdict.PASSED,
        "containerize/config-mounts": Verdict.PASSED,
        "containerize/hardening": Verdict.FAILED,
        "rules/promtool-check": Verdict.PASSED,
        "rules/inventory": Verdict.PASSED,
        "rules/alertmanager-config": Verdict.FAILED,
        "rules/metrics-exist": Verdict.PASSED,
        "rules/loaded-live": Verdict.PASSED,
        "dashboard/provisioning": Verdict.PASSED,
        "containerize/grafana-live": Verdict.WAIVED,
    },
    findings=[
        Seen(
            "containerize/images-pinned",
            "docker-compose.yml:41",
            "service node-exporter: default image quay.io/prometheus/node-exporter:latest uses the floating tag "
            ":latest; pin a version tag or a digest",
        ),
        *untagged_images(
            [
                (62, "alertmanager", "prom/alertmanager"),
                (78, "cadvisor", "gcr.io/cadvisor/cadvisor"),
                (93, "grafana", "grafana/grafana"),
            ]
        ),
        *published_ports(
            [
                (24, "prometheus", 9090),
                (54, "node-exporter", 9100),
                (64, "alertmanager", 9093),
                (85, "cadvisor", 8080),
                (98, "grafana", 3000),
            ]
        ),
        Seen(
            "containerize/config-mounts",
            "docker-compose.yml:16",
            f"service prometheus: prometheus {READ_WRITE}",
            severity="warning",
        ),
        Seen(
            "containerize/config-mounts",
            "docker-compose.yml:66",
            f"service alertmanager: alertmanager {READ_WRITE}",
            severity="warning",
        ),
        Seen(
            "containerize/config-mounts",
            "docker-compose.yml:101",
            f"service grafana: grafana/provisioning {READ_WRITE}",
            severity="warning",
        ),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:80",
            "service cadvisor: mounts / at /rootfs, and with it the Docker engine's socket /var/run/docker.sock",
            tail=HOST_SOCKET_READ_ONLY,
            waived=True,
        ),
        # `/var/run:/var/run:rw`: the engine's socket through its parent directory.
        Seen(
            "containerize/hardening",
            "docker-compose.yml:81",
            "service cadvisor: mounts /var/run at /var/run, and with it the Docker engine's socket "
            "/var/run/docker.sock (at /var/run/docker.sock in the container)",
            tail=HOST_SOCKET,
            waived=True,
        ),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:45",
            "service node-exporter: mounts / at /rootfs, and with it the Docker engine's socket /var/run/docker.sock",
            tail=HOST_SOCKET_READ_ONLY,
            waived=True,
        ),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:46",
            "service node-exporter: mounts / at /host, and with it the Docker engine's socket /var/run/docker.sock",
            tail=HOST_SOCKET_READ_ONLY,
            waived=True,
        ),
        # Grafana's admin password, `foobar`, is in the env_file the compose file gives it.
        Seen(
            "containerize/hardening",
            "grafana/config.monitoring:1",
            "service grafana: GF_SECURITY_ADMIN_PASSWORD is set in grafana/config.monitoring (a password committed to "
            "git); pass it through from the environment (or a secret file) instead",
        ),
        Seen("containerize/hardening", "docker-compose.yml:92", GRAFANA_GUARD),
        # The only receiver has no integration: every alert is dropped.
        Seen(
            "rules/alertmanager-config",
            "alertmanager/config.yml:5",
            "receiver slack has no integration, so the alerts that reach it are dropped: the root route $.route (line "
            "1) takes severity=page alerts and the rules' alerts service_down, high_load. Give it an integration, or "
            "name it in `with.sinks` if they must go nowhere",
        ),
    ],
    failing_criteria=["C1", "C2"],
    data={
        "rules/alertmanager-config": {
            "receivers_without_integration": {
                "slack": {
                    "reached_by": {"$.route": {"alerts": ["service_down", "high_load"], "severities": ["page"]}},
                    "sink": False,
                }
            }
        },
        "rules/metrics-exist": {"metrics_by_rule": {"service_down": ["up"], "high_load": ["node_load1"]}},
    },
    programs=("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"),
    scrapes_cadvisor=True,
    drift=["prometheus"],  # the other images pin no version to compare with
)

SWARMPROM = RealRepository(
    name="swarmprom",
    sprint="SP1",
    verdicts={
        "containerize/compose-services": Verdict.PASSED,
        "containerize/images-pinned": Verdict.FAILED,
        "containerize/ports-loopback": Verdict.FAILED,
        "containerize/network": Verdict.PASSED,
        "containerize/volumes": Verdict.PASSED,
        "containerize/config-mounts": Verdict.PASSED,  # the rule files come from the repository through `configs:`
        "containerize/hardening": Verdict.FAILED,
        "rules/promtool-check": Verdict.WAIVED,  # the configuration baked into the image
        # runs (its requirement's only finding is waived) and passes: the spec says the task alerts carry no severity
        "rules/inventory": Verdict.PASSED,
        "rules/alertmanager-config": Verdict.FAILED,
    },
    findings=[
        *untagged_images(
            [
                (25, "dockerd-exporter", "stefanprodan/caddy"),
                (42, "cadvisor", "google/cadvisor"),
                (177, "caddy", "stefanprodan/caddy"),
            ]
        ),
        *caddy_ports([(179, 3000), (180, 9090), (181, 9093), (182, 9094)]),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:47",
            "service cadvisor: mounts the Docker engine's socket (/var/run/docker.sock): root on the host",
            waived=True,
        ),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:48",
            "service cadvisor: mounts / at /rootfs, and with it the Docker engine's socket /var/run/docker.sock",
            tail=HOST_SOCKET_READ_ONLY,
            waived=True,
        ),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:49",
            "service cadvisor: mounts /var/run at /var/run, and with it the Docker engine's socket "
            "/var/run/docker.sock",
            tail=HOST_SOCKET,
            waived=True,
        ),
        Seen(
            "containerize/hardening",
            "docker-compose.yml:133",
            "service node-exporter: mounts / at /rootfs, and with it the Docker engine's socket /var/run/docker.sock",
            tail=HOST_SOCKET_READ_ONLY,
            waived=True,
        ),
        Seen("containerize/hardening", "docker-compose.yml:60", GRAFANA_GUARD),
        # The configuration is no file of the compose file: COPY'd into the image by prometheus/Dockerfile (waived).
        Seen(
            "rules/promtool-check",
            "docker-compose.yml:157",
            "prometheus/conf/prometheus.yml is not mounted into service prometheus: no bind mount of it or of a "
            "directory above it, and no `configs:` entry (docker-compose.yml)",
            waived=True,
        ),
        # The committed file is a template its image's entrypoint completes with sed: as committed it is invalid.
        Seen(
            "rules/alertmanager-config",
            "alertmanager/conf/alertmanager.yml",
            "amtool check-config: Checking 'alertmanager/conf/alertmanager.yml'  FAILED: no global Slack API URL set "
            "either inline or in a file",
        ),
    ],
    failing_criteria=["C1", "C2"],
    data={
        # The rule files the baked configuration names, delivered by `configs:` where it reads them.
        "rules/promtool-check": {
            "rule_files_loaded": ["prometheus/rules/swarm_node.rules.yml", "prometheus/rules/swarm_task.rules.yml"]
        },
    },
    runs_stack=False,
)

REPOSITORIES = [DOCKPROM, VEGASBRIANC, SWARMPROM]


# --- the fixtures are what their repositories published ------------------------------------------------------------

BLOB_LINE = re.compile(r"^  ([0-9a-f]{40})  (.+?): ")


@pytest.mark.parametrize("name", ["dockprom", "vegasbrianc-prometheus", "swarmprom", "cadvisor"])
def test_each_fixture_is_the_published_files_unedited(name: str) -> None:
    """SOURCE lists every kept file with its git blob at the source commit; each file hashes to it, and nothing else is
    in the folder. The adoption files are apart, in <name>.sealgate/."""
    folder = REAL / name
    source = (folder / "SOURCE").read_text()
    assert re.search(r"^commit: [0-9a-f]{40}$", source, re.MULTILINE), source
    listed = {match.group(2): match.group(1) for line in source.splitlines() if (match := BLOB_LINE.match(line))}
    assert "LICENSE" in listed
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"SOURCE"}
    assert present == set(listed), present ^ set(listed)
    for relative, blob in listed.items():
        assert git(folder, "hash-object", "--no-filters", relative) == blob, f"{name}/{relative} was edited"


def test_the_recorded_exposition_is_served_as_cadvisor_writes_it_without_its_timestamps() -> None:
    recorded = "".join(path.read_text() for path in CADVISOR_RECORDINGS)
    served = "".join(without_timestamps(path.read_text()) for path in CADVISOR_RECORDINGS)
    sample = re.compile(r"^[a-zA-Z_:][\w:]*(\{.*\})? \S+$")
    samples = [line for line in served.splitlines() if line and not line.startswith("#")]
    assert samples and all(sample.match(line) for line in samples), [s for s in samples if not sample.match(s)][:3]
    # Everything but the timestamps is cAdvisor's: the same families, types, label values (spaces in them too).
    assert [line for line in served.splitlines() if line.startswith("#")] == [
        line for line in recorded.splitlines() if line.startswith("#")
    ]
    assert 'osVersion="Fedora 22 (Twenty Two)"} 1' in served
    exposition = Exposition.parse(served, "cadvisor")
    assert {"container_memory_usage_bytes", "container_cpu_usage_seconds_total", "machine_cpu_cores"} <= set(
        exposition.names
    )
    assert exposition.types["container_cpu_usage_seconds_total"] == "counter"


# --- each repository, sealed once ---------------------------------------------------------------------------------


def adopt(name: str, dest: Path) -> Path:
    """The repository as published, plus the team's sealgate files, committed: what a clone of theirs would hold once
    they adopted sealgate (and `sealgate init`'s lines in .gitignore)."""
    root = init_repo(dest)
    root.chmod(0o755)
    shutil.copytree(REAL / name, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("SOURCE"))
    shutil.copytree(REAL / f"{name}.sealgate", root, dirs_exist_ok=True)
    (root / ".gitignore").write_text("# sealgate: generated by runs\n" + "\n".join(IGNORED) + "\n")
    commit_all(root, f"{name}, as published, and the files that adopt sealgate")
    return root


def cadvisor_stand_in(bin_dir: Path) -> Path:
    """`cadvisor` on PATH: the recorded exposition, served on the flags the stack description gives cAdvisor."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    program = bin_dir / "cadvisor"
    recordings = " ".join(f'--recording "{path}"' for path in CADVISOR_RECORDINGS)
    exporter = PROJECT_ROOT / "tests" / "recorded_exporter.py"
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{exporter}" "$@" {recordings}\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


@pytest.mark.parametrize("repository", REPOSITORIES, ids=[r.name for r in REPOSITORIES])
def test_a_real_repository_is_refused_for_its_true_findings_only(repository: RealRepository, tmp_path: Path) -> None:
    need_tool("promtool", "amtool", *repository.programs)
    root = adopt(repository.name, tmp_path / repository.name)
    head = git(root, "rev-parse", "HEAD")
    env = {**os.environ, "PATH": f"{cadvisor_stand_in(tmp_path / 'bin')}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-m", "sealgate.cli", "seal", "--sprint", repository.sprint, "--backend", "local"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=SEAL_TIMEOUT_S,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "NOT SEALED" in out and "Traceback" not in out, out
    assert git(root, "tag", "-l") == "" and git(root, "rev-parse", "HEAD") == head, "refused, yet something was sealed"

    spec = open_spec(root, repository.sprint)
    judgement = judge(spec, root, head)
    assert not judgement.stale, [str(s) for s in judgement.stale]  # every waiver entry covers a finding of this run
    assert [c.id for c in judgement.failing] == repository.failing_criteria
    checks = {cv.check_id: cv for stage in judgement.stages.values() for cv in stage.checks}
    assert {k: v.verdict for k, v in checks.items()} == repository.verdicts, {
        k: (v.verdict.value, v.reason[:200]) for k, v in checks.items()
    }

    expected = list(repository.findings)
    unexpected: list[str] = []
    for check_id, verdict in checks.items():
        assert verdict.result is not None, check_id
        waiver = spec.waiver_for("check", check_id)
        covered = waiver.split(failure_items(verdict.result))[0] if waiver is not None and waiver.findings else []
        for finding in verdict.result.findings:
            summary = LOCAL_PORT.sub("127.0.0.1:PORT", finding.summary)
            seen = next(
                (e for e in expected if e.matches(check_id, place(finding), summary, finding.severity.value)), None
            )
            if seen is None:
                unexpected.append(f"{check_id} {place(finding)} [{finding.severity.value}] {summary}")
                continue
            expected.remove(seen)
            assert seen.waived == (finding in covered), f"{check_id} {place(finding)}: waived should be {seen.waived}"
    assert not unexpected, "findings nobody has judged true or false yet:\n" + "\n".join(unexpected)
    assert not expected, f"findings the run no longer produces: {expected}"
    for check_id, recorded in repository.data.items():
        result = checks[check_id].result
        assert result is not None
        assert {key: result.data.get(key) for key in recorded} == recorded, check_id

    stacks = [s.statement.run.stack for s in judgement.stages.values() if s.statement and s.statement.run.stack]
    if not repository.runs_stack:
        assert stacks == [], "a sprint of static stages started a stack"
        return
    stack = stacks[0]
    assert stack["backend"] == "local"
    if repository.scrapes_cadvisor:
        # The stand-in says what it is, and no version: none of cAdvisor's ran.
        assert stack["tools"]["cadvisor"]["version"] is None, stack["tools"]
        assert "cadvisor" in stack["ports"] and "cadvisor" not in stack["unavailable"], stack
        served = subprocess.run(
            [str(tmp_path / "bin" / "cadvisor"), "--version"], capture_output=True, text=True, timeout=30
        )
        assert served.stdout.strip() == VERSION_LINE
    drifted = sorted(line.split(":", 1)[0] for line in stack.get("version_drift") or [])
    assert drifted == repository.drift, stack.get("version_drift")

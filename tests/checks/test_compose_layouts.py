"""The library's static checks on compose layouts public monitoring repositories use (tests/fixtures/layouts/, minimal
projects written for these tests): configuration delivered by **directory** bind mounts and by top-level
**`configs:`**, a dashboard inside Grafana's provisioning directory read by a provider that leaves Grafana's
defaults out, and the engine socket reached through a **parent directory** mount. Each passes where the layout is
right and fails, at the line to fix, where it is not — through the real `docker compose config` and through the
YAML read here where Compose is absent."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from checkrun import explain, run_checks
from conftest import commit_all, init_repo, need_tool

from sealgate.kernel.errors import InputError
from sealgate.model.results import Severity, Status

LAYOUTS = Path(__file__).resolve().parent.parent / "fixtures" / "layouts"
SPEC = "sprint/LAYOUT.yaml"
COMPOSE = "docker-compose.yml"


def layout(tmp_path: Path, name: str) -> Path:
    """A copy of tests/fixtures/layouts/<name> as a committed git repository."""
    root = tmp_path / name
    shutil.copytree(LAYOUTS / name, root)
    init_repo(root)
    commit_all(root, f"the {name} layout")
    return root


def edit(root: Path, relative: str, old: str, new: str) -> int:
    """Replace `old` (exactly once) in a file of the copy, commit, and return the 1-based line where it was."""
    path = root / relative
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not exactly once in {relative}"
    path.write_text(text.replace(old, new))
    commit_all(root, f"edit {relative}")
    return text[: text.index(old)].count("\n") + 1


def set_with(root: Path, check_id: str, **params: object) -> None:
    """Give one check of the spec these parameters (merged into its `with:`), and commit."""
    document = yaml.safe_load((root / SPEC).read_text())
    for item in document["stages"][0]["checks"]:
        if item["id"] == check_id:
            item["with"] = {**(item.get("with") or {}), **params}
    (root / SPEC).write_text(yaml.safe_dump(document, sort_keys=False))
    commit_all(root, f"spec: {check_id}")


def line_of(root: Path, relative: str, text: str) -> int:
    lines = (root / relative).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def run(root: Path, check_id: str) -> object:
    return run_checks(root, 0, [check_id], sprint="LAYOUT")[check_id]


def errors(result: object) -> list:
    return [f for f in result.findings if f.severity is Severity.ERROR]


# --- directory bind mounts ----------------------------------------------------------------------------------------


def test_configuration_in_directory_mounts_passes(tmp_path: Path, resolver: str) -> None:
    need_tool("promtool")
    root = layout(tmp_path, "dirmounts")
    results = run_checks(root, 0, sprint="LAYOUT")
    for check_id, result in results.items():
        assert result.status is Status.PASSED, f"{check_id}: {explain(result)}"
    # The Prometheus configuration and its rule files are found inside ./prometheus, mounted whole.
    assert results["rules/promtool-check"].data["rule_files_loaded"] == ["prometheus/rules/node.rules.yml"]
    assert results["containerize/config-mounts"].data["bind_mounts"]["prometheus"] == {"/etc/prometheus": "prometheus"}
    # The dashboard sits in the provisioning directory, where the provider reads.
    assert results["dashboard/provisioning"].data["dashboard_in_grafana"] == [
        "/etc/grafana/provisioning/dashboards/overview.json"
    ]


def test_a_configuration_outside_the_mounted_directory_fails_at_the_compose_line(tmp_path: Path) -> None:
    need_tool("promtool")
    root = layout(tmp_path, "dirmounts")
    set_with(root, "rules/promtool-check", config="prometheus/prometheus.yml", rules=["prometheus/rules/*.yml"])
    line = edit(
        root,
        COMPOSE,
        "      - ./prometheus:/etc/prometheus:ro\n",
        "      - ./prometheus/rules:/etc/prometheus/rules:ro\n",
    )
    result = run(root, "rules/promtool-check")
    assert result.status is Status.FAILED, explain(result)
    first = errors(result)[0]
    assert first.summary == (
        "prometheus/prometheus.yml is not mounted into service prometheus: no bind mount of it or of a directory above "
        "it, and no `configs:` entry (docker-compose.yml)"
    )
    assert (first.location.file, first.location.line) == (COMPOSE, line - 1)  # the service's `volumes:`


def test_a_rule_file_the_mounted_directory_does_not_hold_fails_at_its_rule_files_line(tmp_path: Path) -> None:
    need_tool("promtool")
    root = layout(tmp_path, "dirmounts")
    set_with(root, "rules/promtool-check", config="prometheus/prometheus.yml", rules=["prometheus/rules/*.yml"])
    line = edit(root, "prometheus/prometheus.yml", "  - rules/*.rules.yml\n", "  - /etc/rules/*.rules.yml\n")
    result = run(root, "rules/promtool-check")
    assert result.status is Status.FAILED, explain(result)
    summaries = {(f.summary, f.location.file, f.location.line) for f in errors(result)}
    assert (
        "rule_files entry '/etc/rules/*.rules.yml' is under no bind mount of service prometheus and is no target of "
        "its configs: the container loads no rules from it",
        "prometheus/prometheus.yml",
        line,
    ) in summaries, summaries


def test_an_expected_file_another_file_is_mounted_at_fails(tmp_path: Path, resolver: str) -> None:
    root = layout(tmp_path, "dirmounts")
    set_with(
        root,
        "containerize/config-mounts",
        expected={"prometheus": {"/etc/prometheus/prometheus.yml": "alertmanager/config.yml"}},
    )
    result = run(root, "containerize/config-mounts")
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert finding.summary == (
        "service prometheus: expected alertmanager/config.yml mounted at /etc/prometheus/prometheus.yml, found "
        "prometheus/prometheus.yml"
    )
    # The entry that puts the other file there: the directory mount.
    assert (finding.location.file, finding.location.line) == (COMPOSE, line_of(root, COMPOSE, "./prometheus:/etc"))


# --- dashboard provisioning ---------------------------------------------------------------------------------------

PROVIDERS = "grafana/provisioning/dashboards/dashboard.yml"


def test_a_dashboard_that_does_not_exist_is_refused_at_the_spec_line(tmp_path: Path) -> None:
    root = layout(tmp_path, "dirmounts")
    set_with(root, "dashboard/provisioning", dashboard="grafana/provisioning/dashboards/missing.json")
    with pytest.raises(InputError) as refused:
        run(root, "dashboard/provisioning")
    line = line_of(root, SPEC, "dashboard: grafana/")
    assert str(refused.value.problems[0]).startswith(
        f"{SPEC}:{line}: $.stages[0].checks[2].with.dashboard: 'grafana/provisioning/dashboards/missing.json' is not "
        "in the repository"
    ), refused.value.problems


def test_a_dashboard_that_is_no_file_fails_at_the_spec_line(tmp_path: Path) -> None:
    root = layout(tmp_path, "dirmounts")
    set_with(root, "dashboard/provisioning", dashboard="grafana/provisioning/dashboards")
    result = run(root, "dashboard/provisioning")
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert finding.summary == (
        "the dashboard grafana/provisioning/dashboards (with.dashboard) is not a file of the repository: Grafana has "
        "nothing to load"
    )
    assert (finding.location.file, finding.location.line) == (SPEC, line_of(root, SPEC, "dashboard: grafana/"))


def test_a_dashboard_outside_the_providers_path_fails_at_the_providers_line(tmp_path: Path) -> None:
    root = layout(tmp_path, "dirmounts")
    line = edit(
        root, PROVIDERS, "path: /etc/grafana/provisioning/dashboards\n", "path: /etc/grafana/provisioning/team\n"
    )
    result = run(root, "dashboard/provisioning")
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert finding.summary == (
        "the dashboard grafana/provisioning/dashboards/overview.json is not under /etc/grafana/provisioning/team in "
        "service grafana (/etc/grafana/provisioning/team is grafana/provisioning/team; the dashboard is at "
        "/etc/grafana/provisioning/dashboards/overview.json): the provider never loads it"
    )
    assert (finding.location.file, finding.location.line) == (PROVIDERS, line)


def test_a_provider_path_nothing_is_mounted_at_fails_at_the_compose_line(tmp_path: Path) -> None:
    root = layout(tmp_path, "dirmounts")
    edit(root, PROVIDERS, "path: /etc/grafana/provisioning/dashboards\n", "path: /var/lib/grafana/dashboards\n")
    result = run(root, "dashboard/provisioning")
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    # /var/lib/grafana is Grafana's data volume: no repository file is there.
    assert (
        finding.summary
        == "service grafana mounts nothing at /var/lib/grafana/dashboards (where the dashboard provider reads)"
    )
    assert finding.location.file == COMPOSE


@pytest.mark.parametrize(("interval_s", "passes"), [(10, True), (30, False)])
def test_a_provider_field_left_to_grafanas_default_is_judged_by_that_default(
    tmp_path: Path, interval_s: int, passes: bool
) -> None:
    """The provider file sets no `type` or `updateIntervalSeconds`: Grafana reads `file` and 10 s."""
    root = layout(tmp_path, "dirmounts")
    set_with(
        root,
        "dashboard/provisioning",
        provider={"path": "/etc/grafana/provisioning/dashboards", "interval_s": interval_s},
    )
    result = run(root, "dashboard/provisioning")
    if passes:
        assert result.status is Status.PASSED, explain(result)
        return
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert finding.summary == (
        "provider 'Prometheus' updateIntervalSeconds is 10 (Grafana's default: the file sets none), expected 30"
    )
    assert (finding.location.file, finding.location.line) == (PROVIDERS, line_of(root, PROVIDERS, "- name: Prometheus"))


# --- top-level configs --------------------------------------------------------------------------------------------


def test_configuration_in_compose_configs_passes(tmp_path: Path, resolver: str) -> None:
    need_tool("promtool")
    root = layout(tmp_path, "configs")
    results = run_checks(root, 0, sprint="LAYOUT")
    for check_id, result in results.items():
        assert result.status is Status.PASSED, f"{check_id}: {explain(result)}"
    # The configuration (long syntax) is the one the description names; the rule file comes through `rule_files:
    # [rules/*.rules.yml]` matching a config's target.
    assert results["rules/promtool-check"].data["rule_files_loaded"] == ["monitoring/node.rules.yml"]
    assert results["containerize/config-mounts"].data["bind_mounts"] == {
        "alertmanager": {"/alertmanager_config": "monitoring/alertmanager.yml"},  # short syntax: /<name>
        "prometheus": {
            "/etc/prometheus/prometheus.yml": "monitoring/prometheus.yml",
            "/etc/prometheus/rules/node.rules.yml": "monitoring/node.rules.yml",
        },
    }


def test_a_config_whose_file_is_missing_fails_at_its_declaration(tmp_path: Path, resolver: str) -> None:
    root = layout(tmp_path, "configs")
    line = edit(root, COMPOSE, "    file: ./monitoring/node.rules.yml\n", "    file: ./monitoring/gone.rules.yml\n")
    result = run(root, "containerize/config-mounts")
    assert result.status is Status.FAILED, explain(result)
    found = {(f.summary, f.location.line) for f in errors(result)}
    assert (
        "config node_rules (service prometheus, at /etc/prometheus/rules/node.rules.yml) is made from "
        "monitoring/gone.rules.yml, which does not exist in the repository",
        line,
    ) in found, found


def test_a_configuration_mounted_where_prometheus_does_not_read_it_fails_at_its_command(tmp_path: Path) -> None:
    need_tool("promtool")
    root = layout(tmp_path, "configs")
    set_with(root, "rules/promtool-check", config="monitoring/prometheus.yml", rules=["monitoring/*.rules.yml"])
    edit(
        root,
        COMPOSE,
        "      - --config.file=/etc/prometheus/prometheus.yml\n",
        "      - --config.file=/etc/prometheus/main.yml\n",
    )
    result = run(root, "rules/promtool-check")
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert finding.summary == (
        "service prometheus reads its configuration at /etc/prometheus/main.yml, but monitoring/prometheus.yml is "
        "mounted at /etc/prometheus/prometheus.yml (docker-compose.yml)"
    )
    assert (finding.location.file, finding.location.line) == (COMPOSE, line_of(root, COMPOSE, "    command:"))


def test_a_rule_file_config_outside_the_rule_files_glob_fails(tmp_path: Path) -> None:
    need_tool("promtool")
    root = layout(tmp_path, "configs")
    set_with(root, "rules/promtool-check", config="monitoring/prometheus.yml", rules=["monitoring/*.rules.yml"])
    edit(
        root, COMPOSE, "        target: /etc/prometheus/rules/node.rules.yml\n", "        target: /etc/node.rules.yml\n"
    )
    result = run(root, "rules/promtool-check")
    assert result.status is Status.FAILED, explain(result)
    summaries = [f.summary for f in errors(result)]
    assert (
        "monitoring/node.rules.yml is not loaded by monitoring/prometheus.yml (rule_files) as the container sees it"
        in summaries
    )


# --- hardening: the engine socket through a parent directory ------------------------------------------------------

AGENT = """\
services:
  agent:
    image: gcr.io/cadvisor/cadvisor:v0.49.1
    volumes:
      - /proc:/host/proc:ro
      - /sys:/sys:ro
      - /var/lib/docker/:/var/lib/docker:ro
      - agent_data:/data
volumes:
  agent_data: {}
"""

HARDENING_SPEC = {
    "sealgate": 1,
    "id": "LAYOUT",
    "title": "Hardening",
    "language": "en",
    "first_in_chain": True,
    "tag": "LAYOUT-SEALED",
    "stack": "stack.yaml",
    "objective": "No engine socket reaches a container.",
    "stages": [{"number": 0, "name": "static", "title": "Static", "checks": [{"id": "containerize/hardening"}]}],
    "criteria": [{"id": "C1", "title": "Hardened", "stages": [0]}],
}


def agent_project(tmp_path: Path, compose: str) -> Path:
    root = init_repo(tmp_path / "agent")
    files = {
        COMPOSE: compose,
        "stack.yaml": "sealgate_stack: 1\ncompose: {file: docker-compose.yml}\nservices:\n  agent: {role: other}\n",
        SPEC: yaml.safe_dump(HARDENING_SPEC, sort_keys=False),
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    commit_all(root, "an agent")
    return root


def test_host_mounts_without_an_engine_socket_pass(tmp_path: Path, resolver: str) -> None:
    result = run(agent_project(tmp_path, AGENT), "containerize/hardening")
    assert result.status is Status.PASSED, explain(result)


@pytest.mark.parametrize(
    ("mount", "expected"),
    [
        (
            "/var/run:/var/run:ro",
            "service agent: mounts /var/run at /var/run, and with it the Docker engine's socket /var/run/docker.sock (at "
            "/var/run/docker.sock in the container): root on the host (read-only does not help: connecting to a socket "
            "is not writing to it); mount only the files it needs",
        ),
        (
            "/var/run/:/host/run",
            "service agent: mounts /var/run at /host/run, and with it the Docker engine's socket /var/run/docker.sock "
            "(at /host/run/docker.sock in the container)",
        ),
        (
            "/:/rootfs:ro",
            "service agent: mounts / at /rootfs, and with it the Docker engine's socket /var/run/docker.sock (at "
            "/rootfs/var/run/docker.sock in the container)",
        ),
        (
            "/run/user/1000:/xdg",
            "service agent: mounts /run/user/1000 at /xdg, and with it the Docker engine's socket "
            "/run/user/1000/docker.sock (at /xdg/docker.sock in the container)",
        ),
        (
            "/run/containerd:/containerd",
            "service agent: mounts /run/containerd at /containerd, and with it the containerd",
        ),
        (
            "/var/run/docker.sock:/tmp/engine.sock",
            "service agent: mounts the Docker engine's socket (/var/run/docker.sock)",
        ),
    ],
    ids=["var-run", "var-run-elsewhere", "rootfs", "rootless", "containerd", "the-socket"],
)
def test_an_engine_socket_reached_through_a_mount_fails_at_its_line(
    tmp_path: Path, resolver: str, mount: str, expected: str
) -> None:
    compose = AGENT.replace("      - agent_data:/data\n", f"      - agent_data:/data\n      - {mount}\n")
    root = agent_project(tmp_path, compose)
    result = run(root, "containerize/hardening")
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert finding.summary.startswith(expected), finding.summary
    assert (finding.location.file, finding.location.line) == (COMPOSE, line_of(root, COMPOSE, f"- {mount}"))


def test_an_engine_socket_reached_through_a_bound_named_volume_fails(tmp_path: Path, resolver: str) -> None:
    """The local volume driver can bind a host directory too: `driver_opts: {type: none, o: bind, device: ...}`."""
    compose = AGENT.replace(
        "  agent_data: {}\n", "  agent_data:\n    driver_opts: {type: none, o: bind, device: /run}\n"
    )
    root = agent_project(tmp_path, compose)
    result = run(root, "containerize/hardening")
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert finding.summary.startswith(
        "service agent: mounts /run at /data, and with it the Docker engine's socket /run/docker.sock"
    ), finding.summary
    assert finding.location.line == line_of(root, COMPOSE, "- agent_data:/data")

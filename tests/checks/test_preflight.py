"""EIXO 0 checks, each passing on the reference project and failing (or skipping) for the right reason on a broken
copy. Real tools, real sockets, a real standalone Prometheus with data; no mocks."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from checkrun import explain, run_checks
from conftest import commit_all, git, need_tool
from other_layout import PORT_VARIABLES, make_other_layout, set_check
from standalone import standalone_prometheus as start_standalone

from sealgate.api.context import RunOptions
from sealgate.kernel.ports import free_ports
from sealgate.model.results import Severity, Status

SPEC = "sprint/F9.10.yaml"


def free_port() -> int:
    return free_ports(1)[0]


def set_params(root: Path, check_id: str, params: dict) -> None:
    """Rewrite one check's `with:` block of the copy's spec (and commit, so the tree stays clean)."""
    path = root / SPEC
    spec = yaml.safe_load(path.read_text())
    for stage in spec["stages"]:
        for entry in stage["checks"]:
            if entry["id"] == check_id:
                entry["with"] = params
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    commit_all(root, f"spec: {check_id} params")


@pytest.fixture
def standalone_prometheus(tmp_path: Path) -> Iterator[str]:
    """A real Prometheus holding history on a free 127.0.0.1 port."""
    with start_standalone(tmp_path / "standalone", free_port()) as url:
        yield url


# --- preflight/standalone-prometheus ------------------------------------------------------------------------------


def test_standalone_nothing_answers_is_fresh_install(project_copy: Path) -> None:
    set_params(project_copy, "preflight/standalone-prometheus", {"url": f"http://127.0.0.1:{free_port()}"})
    result = run_checks(project_copy, 0, ["preflight/standalone-prometheus"])["preflight/standalone-prometheus"]
    assert result.status is Status.PASSED, result.reason
    assert result.data["mode"] == "FRESH_INSTALL_MODE"
    assert "nothing answers" in result.data["probe"]


def test_standalone_with_data_is_migration_mode_and_fails_without_a_decision(
    project_copy: Path, standalone_prometheus: str
) -> None:
    set_params(project_copy, "preflight/standalone-prometheus", {"url": standalone_prometheus})
    result = run_checks(project_copy, 0, ["preflight/standalone-prometheus"])["preflight/standalone-prometheus"]
    assert result.status is Status.FAILED
    assert result.data["mode"] == "MIGRATION_MODE"
    assert result.data["standalone"] is True
    assert result.data["version"].startswith("2.")
    assert result.data["tsdb_head_series"] > 0
    assert "tsdb_oldest_sample" in result.data
    assert "migration_decision" in result.reason and standalone_prometheus in result.reason
    assert result.findings[0].location.json_path == f"{standalone_prometheus}/api/v1/status/tsdb"


def test_standalone_with_an_empty_tsdb_names_no_oldest_sample(project_copy: Path, tmp_path: Path) -> None:
    """An empty TSDB reports int64 bounds as its oldest timestamp: that is "unknown", not a date (nor a crash)."""
    with start_standalone(tmp_path / "empty", free_port(), history=False) as url:
        set_params(project_copy, "preflight/standalone-prometheus", {"url": url})
        result = run_checks(project_copy, 0, ["preflight/standalone-prometheus"])["preflight/standalone-prometheus"]
    assert result.status is Status.FAILED, result.reason
    assert result.data["mode"] == "MIGRATION_MODE" and "tsdb_oldest_sample" not in result.data
    assert "0 head series, oldest sample unknown" in result.reason


def test_standalone_with_a_recorded_decision_passes_in_migration_mode(
    project_copy: Path, standalone_prometheus: str
) -> None:
    decision = {"decision": "discard", "approver": "Ops Lead", "justification": "lab Prometheus, history unneeded"}
    set_params(
        project_copy, "preflight/standalone-prometheus", {"url": standalone_prometheus, "migration_decision": decision}
    )
    result = run_checks(project_copy, 0, ["preflight/standalone-prometheus"])["preflight/standalone-prometheus"]
    assert result.status is Status.PASSED, result.reason
    assert result.data["mode"] == "MIGRATION_MODE"
    assert result.data["migration_decision"] == "discard (approved by Ops Lead)"


# --- preflight/tools ----------------------------------------------------------------------------------------------


def test_tools_records_versions(project_copy: Path) -> None:
    need_tool("git", "promtool", "amtool", "prometheus")
    result = run_checks(project_copy, 0, ["preflight/tools"])["preflight/tools"]
    assert result.status is Status.PASSED, result.reason
    assert result.data["backend"] == "local"
    assert {"git", "promtool", "amtool", "prometheus", "alertmanager"} <= set(result.data["versions"])
    assert result.data["versions"]["promtool"][0].isdigit()


def test_tools_missing_promtool_fails(project_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_tool("git")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("git", "amtool", "prometheus", "prometheus-alertmanager", "python3"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))  # a machine where promtool is not installed
    result = run_checks(project_copy, 0, ["preflight/tools"])["preflight/tools"]
    assert result.status is Status.FAILED
    assert "promtool: `promtool` is not installed" in result.reason


# --- preflight/ports-free -----------------------------------------------------------------------------------------


@pytest.fixture
def stack_ports(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Free host ports for the stack, through the overrides the compose file reads (fixed ports: the check judges
    them now)."""
    ports = dict(zip(("API", "PROMETHEUS", "ALERTMANAGER", "GRAFANA"), free_ports(4), strict=True))
    for name, port in ports.items():
        monkeypatch.setenv(f"SEALGATE_{name}_PORT", str(port))
    monkeypatch.delenv("SEALGATE_PORTS", raising=False)
    return ports


def test_ports_free_passes_when_free(project_copy: Path, stack_ports: dict[str, int]) -> None:
    result = run_checks(project_copy, 0, ["preflight/ports-free"])["preflight/ports-free"]
    assert result.status is Status.PASSED, result.reason
    assert result.data["ports"][f"127.0.0.1:{stack_ports['PROMETHEUS']}"] == "prometheus: free"


def test_ports_free_fails_naming_the_holder(project_copy: Path, stack_ports: dict[str, int]) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", stack_ports["API"]))
        holder.listen()
        compose = RunOptions(backend="compose")
        result = run_checks(project_copy, 0, ["preflight/ports-free"], options=compose)["preflight/ports-free"]
        local = run_checks(project_copy, 0, ["preflight/ports-free"])["preflight/ports-free"]
    # The local backend picks free ports itself: the same conflict is only a warning there.
    assert local.status is Status.PASSED and local.findings[0].severity is Severity.WARNING
    assert result.status is Status.FAILED
    finding = next(f for f in result.findings if f.severity is Severity.ERROR)
    assert finding.location.file == "stack/docker-compose.yml"
    compose = (project_copy / "stack/docker-compose.yml").read_text().splitlines()
    assert "SEALGATE_API_PORT" in compose[finding.location.line - 1]
    assert (
        f"port 127.0.0.1:{stack_ports['API']} that service api publishes is already in use by process "
        f"{os.getpid()}" in finding.summary
    )


def test_ports_free_under_free_ports_records_they_are_chosen_at_start_and_passes(
    project_copy: Path, stack_ports: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEALGATE_PORTS=free: the compose backend asks the kernel for its ports when it starts, so a port the file or
    the environment names being taken now (the case above, which fails) is no conflict."""
    monkeypatch.setenv("SEALGATE_PORTS", "free")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", stack_ports["API"]))
        holder.listen()
        compose = RunOptions(backend="compose")
        result = run_checks(project_copy, 0, ["preflight/ports-free"], options=compose)["preflight/ports-free"]
    assert result.status is Status.PASSED, result.reason
    assert not result.findings, result.findings
    assert result.data["port_choice"] == "free: chosen by the kernel at start time (SEALGATE_PORTS=free)"
    assert result.data["ports"] == {
        s: "chosen free at start time" for s in ("api", "prometheus", "alertmanager", "grafana")
    }


def test_ports_free_with_an_unknown_port_mode_errors_saying_what_to_use(
    project_copy: Path, stack_ports: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEALGATE_PORTS", "random")
    compose = RunOptions(backend="compose")
    result = run_checks(project_copy, 0, ["preflight/ports-free"], options=compose)["preflight/ports-free"]
    assert result.status is Status.ERRORED
    assert result.reason == "SEALGATE_PORTS: unknown value 'random' (use free or fixed, or leave it unset)"


# --- preflight/worktree -------------------------------------------------------------------------------------------


def test_worktree_clean(project_copy: Path) -> None:
    result = run_checks(project_copy, 0, ["preflight/worktree"])["preflight/worktree"]
    assert result.status is Status.PASSED, result.reason
    assert result.data["dirty"] is False
    assert result.data["head"] == git(project_copy, "rev-parse", "HEAD")


def test_worktree_dirty_is_recorded_as_a_warning_not_a_failure(project_copy: Path) -> None:
    (project_copy / "stack" / "notes.txt").write_text("uncommitted\n")
    result = run_checks(project_copy, 0, ["preflight/worktree"])["preflight/worktree"]
    assert result.status is Status.PASSED
    assert result.data["dirty"] is True
    assert "stack/notes.txt" in result.data["changed_files"]
    warning = next(f for f in result.findings if f.severity is Severity.WARNING)
    assert "stack/notes.txt" in warning.summary and "tag will be refused" in warning.summary


# --- preflight/base-tag -------------------------------------------------------------------------------------------


def test_base_tag_present_and_ancestor(project_copy: Path) -> None:
    result = run_checks(project_copy, 0, ["preflight/base-tag"])["preflight/base-tag"]
    assert result.status is Status.PASSED, result.reason
    assert result.data["base_commit"] == git(project_copy, "rev-parse", "F9.9-C-SEALED^{commit}")
    assert result.data["commits_since_base"] == 1


def test_base_tag_absent_but_external_is_skipped_with_the_reason(project_copy: Path) -> None:
    git(project_copy, "tag", "-d", "F9.9-C-SEALED")
    result = run_checks(project_copy, 0, ["preflight/base-tag"])["preflight/base-tag"]
    assert result.status is Status.SKIPPED
    assert "base tag F9.9-C-SEALED does not exist in this repository" in result.reason
    assert "techno-os" in result.reason


def test_base_tag_absent_and_not_external_fails(project_copy: Path) -> None:
    git(project_copy, "tag", "-d", "F9.9-C-SEALED")
    spec = yaml.safe_load((project_copy / SPEC).read_text())
    del spec["base_external"]
    (project_copy / SPEC).write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    commit_all(project_copy, "no base_external")
    result = run_checks(project_copy, 0, ["preflight/base-tag"])["preflight/base-tag"]
    assert result.status is Status.FAILED
    assert result.reason == "base tag F9.9-C-SEALED (sprint spec base_tag) does not exist in this repository"


def test_base_tag_not_an_ancestor_fails(project_copy: Path) -> None:
    git(project_copy, "tag", "-d", "F9.9-C-SEALED")
    git(project_copy, "checkout", "-q", "--orphan", "elsewhere")
    commit_all(project_copy, "unrelated history")
    git(project_copy, "tag", "-a", "F9.9-C-SEALED", "-m", "base elsewhere")
    git(project_copy, "checkout", "-q", "main")
    result = run_checks(project_copy, 0, ["preflight/base-tag"])["preflight/base-tag"]
    assert result.status is Status.FAILED
    assert "is not an ancestor of HEAD" in result.reason


# --- preflight/disk-space -----------------------------------------------------------------------------------------


def test_disk_space_enough(project_copy: Path) -> None:
    result = run_checks(project_copy, 0, ["preflight/disk-space"])["preflight/disk-space"]
    assert result.status is Status.PASSED, result.reason
    assert result.data["disk"]["repository"]["free_mb"] > 0


def test_disk_space_too_little_fails(project_copy: Path) -> None:
    set_params(project_copy, "preflight/disk-space", {"min_free_mb": 10**9})  # a petabyte: more than any disk here
    result = run_checks(project_copy, 0, ["preflight/disk-space"])["preflight/disk-space"]
    assert result.status is Status.FAILED
    assert "fewer than the 1000000000 MB required" in result.reason


# --- telling this project's own stack from a standalone Prometheus -------------------------------------------------


@pytest.mark.docker
@pytest.mark.stack
def test_own_compose_prometheus_is_recognised(compose_stack) -> None:
    from conftest import PROJECT_ROOT

    from sealgate.checks.preflight import is_ours
    from sealgate.kernel.ports import describe_owner, docker_client, port_owner

    port = int(compose_stack.url("prometheus").rsplit(":", 1)[1])
    owner = port_owner(port, docker_client())
    assert owner is not None and owner["kind"] == "container", owner
    assert owner["compose_project"] == compose_stack.project and owner["compose_service"] == "prometheus"
    assert is_ours(owner, PROJECT_ROOT, "prometheus")  # a container of this checkout's compose file
    assert not is_ours(owner, PROJECT_ROOT, "api")
    assert f"of compose project {compose_stack.project} (service prometheus)" in describe_owner(owner)


@pytest.mark.stack
def test_own_local_prometheus_is_recognised(local_stack) -> None:
    from sealgate.checks.preflight import is_ours
    from sealgate.kernel.ports import port_owner

    port = int(local_stack.url("prometheus").rsplit(":", 1)[1])
    owner = port_owner(port)
    assert owner is not None and owner["kind"] == "process", owner
    # The local backend's processes point into their run directory; under the engine that lies in the repository.
    assert is_ours(owner, local_stack.run_dir)
    assert not is_ours(owner, Path("/nonexistent-checkout"))


# --- another layout: compose file at the root, other service names, its own stack description ----------------------


def test_ports_free_on_another_layout_names_its_own_services_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = {service: free_port() for service in PORT_VARIABLES}
    for service, variable in PORT_VARIABLES.items():
        monkeypatch.setenv(variable, str(ports[service]))
    root = make_other_layout(tmp_path / "other")
    result = run_checks(root, 0, ["preflight/ports-free"], sprint="OTHER")["preflight/ports-free"]
    assert result.status is Status.PASSED, explain(result)
    # Every described service that publishes a port, by default.
    assert result.data["ports"] == {f"127.0.0.1:{ports[s]}": f"{s}: free" for s in ("alerts", "web", "metrics", "dash")}

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["web"]))
        holder.listen()
        compose = RunOptions(backend="compose")
        result = run_checks(root, 0, ["preflight/ports-free"], options=compose, sprint="OTHER")["preflight/ports-free"]
    assert result.status is Status.FAILED, explain(result)
    finding = next(f for f in result.findings if f.severity is Severity.ERROR)
    assert finding.location.file == "docker-compose.yml"
    assert "WEB_PORT" in (root / "docker-compose.yml").read_text().splitlines()[finding.location.line - 1]
    assert f"port 127.0.0.1:{ports['web']} that service web publishes is already in use by process" in finding.summary


def test_ports_free_naming_a_service_the_stack_does_not_describe_is_a_clear_error(tmp_path: Path) -> None:
    root = make_other_layout(tmp_path / "other")
    set_check(root, "preflight/ports-free", **{"with": {"services": ["web", "api"]}})
    result = run_checks(root, 0, ["preflight/ports-free"], sprint="OTHER")["preflight/ports-free"]
    assert result.status is Status.ERRORED
    assert result.reason == (
        "sprint/OTHER.yaml: preflight/ports-free: `services` names api, not in the stack description stack.yaml "
        "(described: alerts, web, metrics, dash)"
    )


def test_the_backend_preflight_expects_is_the_frameworks_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """preflight copies no backend selection: it asks sealgate.backends, which select_backend also uses."""
    from sealgate.backends import choose_backend
    from sealgate.backends.compose import default_project

    monkeypatch.setenv("SEALGATE_BACKEND", "local")
    assert choose_backend("auto") == ("local", "local", "asked for explicitly")
    assert choose_backend("compose") == ("compose", "compose", "asked for explicitly")
    monkeypatch.delenv("SEALGATE_COMPOSE_PROJECT", raising=False)
    assert default_project(Path("/srv/My Checkout")) == "sealgate-my-checkout"
    monkeypatch.setenv("SEALGATE_COMPOSE_PROJECT", "Team_Stack")
    assert default_project(Path("/srv/x")) == "team_stack"

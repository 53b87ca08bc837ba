"""Evidence bound to what ran: a stage's `run.stack` records the compose file's digest, every service's image ID and
repository digest (compose), the version every program reports (local), the versions the live Prometheus,
Alertmanager and PostgreSQL report from their own APIs, and a line for each version that differs from the compose
file's pin; the SEAL report lists them once per backend. A stack description's `local.min_version` above the
installed program stops the local backend before anything starts, naming both versions.

Every expected value is asked independently of the backend: the Docker SDK for containers and images, `docker exec
psql` and the servers' HTTP APIs for versions, the binaries' own `--version`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from checkrun import explain, run_checks
from conftest import need_tool, reference_description
from stack_fixtures import need_local_binaries, new_run_dir

from sealgate.backends.errors import StackError
from sealgate.backends.local import LocalBackend
from sealgate.backends.versions import differs, pinned_version
from sealgate.evidence.store import EvidenceStore
from sealgate.kernel.errors import InputError
from sealgate.kernel.fsutil import sha256_file
from sealgate.model.results import Status
from sealgate.reports.catalog import catalog

pytestmark = [pytest.mark.stack]

COMPOSE_FILE = "stack/docker-compose.yml"
STACK_YAML = "stack/stack.yaml"
PINNED_PROMETHEUS = "prom/prometheus:v2.51.0"  # the compose file's pin (stack/docker-compose.yml)
# Cheap checks of F9.10 (sealed) and F9.11 (open: its report is rendered from the evidence on disk, where F9.10's
# is the one of its seal commit): the stage's record is what is looked at, not the check.
COMPOSE_STAGE = {"F9.10": (3, "backup/script-static"), "F9.11": (4, "backup/script-static")}
LOCAL_STAGE = {"F9.10": (2, "rules/promtool-check"), "F9.11": (1, "rules/promtool-check")}


def stage_record(root: Path, stack: Any, sprint: str = "F9.10") -> dict[str, Any]:
    """Run one cheap check of a stage on the running stack; the stage's evidence as written (`run.stack`)."""
    stage, check_id = (COMPOSE_STAGE if stack.name == "compose" else LOCAL_STAGE)[sprint]
    result = run_checks(root, stage, [check_id], stack=stack, sprint=sprint)[check_id]
    assert result.status in (Status.PASSED, Status.SKIPPED), explain(result)
    slug = sprint.lower().replace(".", "_")
    document = json.loads(EvidenceStore(root, slug).stage_path(stage).read_text())
    return dict(document["predicate"]["run"]["stack"])


def api_versions(stack: Any) -> dict[str, str]:
    prometheus = requests.get(f"{stack.url('prometheus')}/api/v1/status/buildinfo", timeout=10).json()
    alertmanager = requests.get(f"{stack.url('alertmanager')}/api/v2/status", timeout=10).json()
    return {"prometheus": prometheus["data"]["version"], "alertmanager": alertmanager["versionInfo"]["version"]}


def version_of(binary: str) -> str:
    """`prometheus, version 2.42.0+ds (branch: …)` -> `2.42.0+ds`, as the binary itself says."""
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    first = (output.stdout or output.stderr).splitlines()[0]
    return first.split(" version ", 1)[1].split()[0]


def add_min_version(root: Path, minimums: dict[str, str]) -> dict[str, int]:
    """`local: {min_version: …}` on each named service of the copy's stack description; the line of each."""
    path = root / STACK_YAML
    lines = path.read_text().splitlines(keepends=True)
    for service, minimum in minimums.items():
        at = lines.index(f"  {service}:\n")
        ends = next(i for i in range(at + 1, len(lines)) if lines[i].strip() and not lines[i].startswith("   "))
        local = next((i for i in range(at + 1, ends) if lines[i] == "    local:\n"), None)
        if local is None:
            lines[at + 1 : at + 1] = ["    local:\n", f'      min_version: "{minimum}"\n']
        else:
            lines.insert(local + 1, f'      min_version: "{minimum}"\n')
    path.write_text("".join(lines))
    assert yaml.safe_load(path.read_text())["services"]["prometheus"]  # still the description, as YAML
    return {
        service: next(i for i in range(lines.index(f"  {service}:\n"), len(lines)) if "min_version" in lines[i]) + 1
        for service in minimums
    }


# --- compose: image IDs and API versions ----------------------------------------------------------------------------


def test_the_compose_stage_record_has_image_ids_digests_and_api_versions(project_copy: Path, compose_stack: Any):
    import docker

    stack = stage_record(project_copy, compose_stack)
    assert stack["backend"] == "compose"
    assert stack["compose_file"] == COMPOSE_FILE
    assert stack["compose_file_sha256"] == sha256_file(project_copy / COMPOSE_FILE)
    client = docker.from_env()
    ran = {
        name: client.containers.get(compose_stack.container_name(name))
        for name, state in compose_stack.services().items()
        if state.container_id
    }
    assert set(stack["images"]) == set(ran), stack["images"]
    for name, container in ran.items():
        recorded = stack["images"][name]
        assert recorded["id"] == container.attrs["Image"] and recorded["id"].startswith("sha256:"), recorded
        assert recorded["image"] == container.attrs["Config"]["Image"], recorded
        digests = client.images.get(container.attrs["Image"]).attrs.get("RepoDigests") or []
        if digests:
            assert recorded["repo_digest"] in digests, (recorded, digests)
        else:  # a local build (the offline image) has no repository digest, and none is invented
            assert recorded["repo_digest"] is None, recorded

    expected = api_versions(compose_stack)
    postgres = ran["postgres"]
    env = dict(item.split("=", 1) for item in postgres.attrs["Config"]["Env"] if "=" in item)
    user = env.get("POSTGRES_USER", "postgres")
    psql = ["psql", "-X", "-tA", "-U", user, "-d", env.get("POSTGRES_DB", user), "-c", "SHOW server_version"]
    shown = subprocess.run(
        ["docker", "exec", postgres.id, *psql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    expected["postgres"] = shown.stdout.strip()
    assert stack["versions"] == expected, stack["versions"]
    assert stack["version_sources"] == {name: "api" for name in expected}

    # The pin says 2.51.0: a Prometheus that reports another version (the offline image's Debian build) is said so.
    drift = [line for line in stack["version_drift"] if line.startswith("prometheus: ")]
    if expected["prometheus"].startswith("2.51.0"):
        assert drift == [], drift
    else:
        image = stack["images"]["prometheus"]["image"]
        assert drift == [
            f"prometheus: the compose file pins {PINNED_PROMETHEUS}; the compose backend ran image {image}, "
            f"version {expected['prometheus']}"
        ]


# --- local: every program's version, and the drift from the pin ----------------------------------------------------


def test_the_local_stage_record_has_every_tools_version_and_the_prometheus_drift(project_copy: Path, local_stack):
    stack = stage_record(project_copy, local_stack)
    assert stack["backend"] == "local" and stack["images"] == {}  # nothing ran from an image
    assert stack["compose_file_sha256"] == sha256_file(project_copy / COMPOSE_FILE)
    prometheus = str(local_stack.binaries["prometheus"].path)
    assert stack["tools"]["prometheus"] == {"tool": prometheus, "version": version_of(prometheus)}
    alertmanager = str(local_stack.binaries["alertmanager"].path)
    assert stack["tools"]["alertmanager"] == {"tool": alertmanager, "version": version_of(alertmanager)}
    postgres = str(local_stack.pg_bin_dir / "postgres")
    said = subprocess.run([postgres, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert stack["tools"]["postgres"]["tool"] == postgres and stack["tools"]["postgres"]["version"] in said
    for python_service in ("api", "console-log"):
        assert stack["tools"][python_service]["version"].startswith("Python 3."), stack["tools"]
    # Every program the backend runs is there: with its version, or with why it says none.
    assert set(stack["tools"]) == set(local_stack.local_services), stack["tools"]
    for name, tool in stack["tools"].items():
        assert tool["version"] or tool["why"], (name, tool)

    expected = api_versions(local_stack)
    assert {k: stack["versions"][k] for k in expected} == expected
    assert stack["version_sources"]["prometheus"] == "api" and stack["version_sources"]["api"] == "tool"
    need_tool("prometheus")
    if expected["prometheus"].startswith("2.51.0"):
        pytest.skip("the installed Prometheus is the pinned 2.51.0: there is no drift to show on this machine")
    line = (
        f"prometheus: the compose file pins {PINNED_PROMETHEUS}; the local backend ran {prometheus}, "
        f"version {expected['prometheus']}"
    )
    assert line in stack["version_drift"], stack["version_drift"]


def test_drift_is_printed_once_by_a_stack_and_not_again_by_its_copies(project_copy: Path) -> None:
    """A Prometheus-only stack whose description requires at least 2.0 (met: it starts) prints its drift line once;
    a copy of it (as a drill makes) records the same line but does not print it again."""
    need_local_binaries()
    add_min_version(project_copy, {"prometheus": "2.0"})
    lines: list[str] = []
    run_dir, copy_dir = new_run_dir("sealgate-whatran-"), new_run_dir("sealgate-whatran-copy-")
    backend = LocalBackend(
        project_copy,
        run_dir,
        lines.append,
        allow_download=False,
        description=reference_description(project_copy),
        only=["prometheus"],
    )
    twin = backend.copy("twin", copy_dir, ["prometheus"])
    try:
        backend.up(timeout=120)
        version = backend.describe()["versions"]["prometheus"]
        if version.startswith("2.51.0"):
            pytest.skip("the installed Prometheus is the pinned 2.51.0: there is no drift to print on this machine")
        twin.up(timeout=120)
        said = [line for line in lines if "version drift" in line]
        assert said == [
            f"stack: version drift — prometheus: the compose file pins {PINNED_PROMETHEUS}; the local backend ran "
            f"{backend.binaries['prometheus'].path}, version {version}"
        ], lines
        assert twin.describe()["version_drift"] == backend.describe()["version_drift"]
    finally:
        for started, directory in ((twin, copy_dir), (backend, run_dir)):
            started.down(remove_volumes=True)
            shutil.rmtree(directory, ignore_errors=True)


# --- local: a minimum version ------------------------------------------------------------------------------------------


def test_a_min_version_above_the_installed_one_is_refused_naming_both(project_copy: Path) -> None:
    need_local_binaries()
    where = add_min_version(project_copy, {"prometheus": "99.1", "offsite-s3": "5.0"})
    run_dir = new_run_dir("sealgate-minversion-")
    backend = LocalBackend(
        project_copy, run_dir, lambda line: None, allow_download=False, description=reference_description(project_copy)
    )
    try:
        with pytest.raises(StackError) as refused:
            backend.up(timeout=60)
        message = str(refused.value)
        prometheus = backend.binaries["prometheus"].path
        assert (
            f"{STACK_YAML}:{where['prometheus']}: prometheus: {prometheus} is {version_of(str(prometheus))}, below the "
            "minimum 99.1 the stack description requires (install prometheus 99.1 or later, or lower `min_version` "
            "there)"
        ) in message, message
        moto = backend.tools["offsite-s3"]
        if moto.version is None:  # moto's server says no version: a minimum cannot be proven, so it is refused too
            assert f"{STACK_YAML}:{where['offsite-s3']}: offsite-s3: the version of {moto.tool} is unknown (" in message
        assert message.endswith("no service was started: the local backend refuses programs below the minimum")
        assert backend.procs == {}, backend.procs  # refused before anything started
    finally:
        backend.down(remove_volumes=True)
        shutil.rmtree(run_dir, ignore_errors=True)


def test_a_min_version_that_is_not_a_dotted_version_is_refused_at_its_line(project_copy: Path) -> None:
    path = project_copy / STACK_YAML
    where = add_min_version(project_copy, {"prometheus": "2.40"})
    path.write_text(path.read_text().replace('min_version: "2.40"', "min_version: 2.40"))  # YAML: the float 2.4
    with pytest.raises(InputError) as refused:
        reference_description(project_copy)
    assert str(refused.value).startswith(f"{STACK_YAML}:{where['prometheus']}: "), str(refused.value)
    assert "is not of type 'string'" in str(refused.value)


# --- the SEAL report lists what ran, once per backend ----------------------------------------------------------------


def test_the_report_lists_images_versions_and_drift_once_per_backend(
    project_copy: Path, compose_stack: Any, local_stack: Any
) -> None:
    compose = stage_record(project_copy, compose_stack, "F9.11")
    local = stage_record(project_copy, local_stack, "F9.11")
    done = subprocess.run(
        [sys.executable, "-m", "sealgate.cli", "report", "--sprint", "F9.11", "--repo", str(project_copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: most stages have no evidence here
    report = (project_copy / "reports" / "SEAL_F9.11.md").read_text()
    said = catalog("pt-BR")["what_ran"]  # F9.11 speaks pt-BR
    section = report.split(f"### 8.1 {said['heading']}", 1)[1].split("\n---\n", 1)[0]
    assert f"**{said['backend'].format(backend='compose')}**" in section
    assert f"**{said['backend'].format(backend='local')}**" in section
    assert section.count(f"`{compose['compose_file_sha256']}`") == 2  # both backends ran the same compose file
    prometheus = compose["images"]["prometheus"]
    digest = f"`{prometheus['repo_digest']}`" if prometheus["repo_digest"] else "—"
    row = f"| `prometheus` | `{prometheus['image']}` | `{prometheus['id']}` | {digest} | {compose['versions']['prometheus']} |"
    assert section.count(row) == 1, section
    local_row = (
        f"| `prometheus` | `{local['tools']['prometheus']['tool']}` | — | — | {local['versions']['prometheus']} |"
    )
    assert section.count(local_row) == 1, section
    for line in compose["version_drift"] + local["version_drift"]:
        assert section.count(f"- {line}\n") == 1, (line, section)


# --- what a pin says, and what differs from it (no stack) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "pinned"),
    [
        ("prom/prometheus:v2.51.0", "2.51.0"),
        ("postgres:16.4", "16.4"),
        ("python:3.11.10-slim-bookworm", "3.11.10"),
        ("registry.local:5000/prom/alertmanager:v0.27.0", "0.27.0"),
        ("registry.local:5000/prom/alertmanager", None),  # a registry's port is not a tag
        ("techno-os-api:f9.10", None),  # a tag that is not a version pins nothing comparable
        ("minio/minio:RELEASE.2024-10-13T13-34-11Z", None),
        ("sealgate-offline:bookworm-3", None),
        ("prom/prometheus@sha256:" + "0" * 64, None),
    ],
)
def test_the_version_an_image_tag_pins(reference: str, pinned: str | None) -> None:
    assert pinned_version(reference) == pinned


@pytest.mark.parametrize(
    ("pinned", "running", "drift"),
    [
        ("2.51.0", "2.42.0+ds", True),
        ("2.51.0", "2.51.0", False),
        ("16.4", "16.4 (Debian 16.4-1.pgdg120+1)", False),  # as far as the pin goes
        ("16.4", "15.18 (Debian 15.18-0+deb12u1)", True),
        ("3.11.10", "Python 3.11.7", True),
        ("0.11.1", "0.11.1", False),
        ("2.51.0", "unknown", True),  # a running version with no number is not the pinned one
    ],
)
def test_what_differs_from_a_pin(pinned: str, running: str, drift: bool) -> None:
    assert differs(pinned, running) is drift

"""A service the stack description marks `optional: true` that cannot run here is left out of the stack, and every
check that needs it is *skipped* with the reason — never errored, never passed (the description's schema promises
so). The same service without `optional` still stops the stack, naming what is missing: only what the description
allows to be absent may be.

Both backends, for real: the local one with an exporter whose program is not installed (the shop project of
tests/otherproject.py, its Prometheus and Alertmanager real processes), and the compose one with a service whose
image is not on this machine (no image registry is reachable here, so any image not built locally is absent).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from checkrun import explain, run_checks
from conftest import PROJECT_ROOT, commit_all, init_repo, need, need_docker, need_tool
from leaks import remove_compose_project
from otherproject import make_shop_project
from stack_fixtures import new_run_dir

from sealgate.backends.compose import ComposeBackend, detect_compose
from sealgate.backends.description import load_description
from sealgate.backends.errors import ServiceNotRunning, StackError
from sealgate.backends.local import LocalBackend
from sealgate.backends.provision import find_binary
from sealgate.model.results import Status

pytestmark = pytest.mark.stack

ABSENT_PROGRAM = "sealgate-test-absent-exporter"  # on no machine's PATH
ABSENT_IMAGE = "sealgate.invalid/absent-exporter:1.0"  # an image no machine has (and no registry serves)


# --- local backend --------------------------------------------------------------------------------------------------


def shop_with_exporter(root: Path, *, optional: bool) -> Path:
    """The shop project with an exporter Prometheus scrapes, run locally by a program that is not installed."""
    make_shop_project(root)
    compose = yaml.safe_load((root / "stack/docker-compose.yml").read_text())
    compose["services"]["exporter"] = {"image": "prom/node-exporter:v1.8.1", "expose": ["9100"]}
    (root / "stack/docker-compose.yml").write_text(yaml.safe_dump(compose, sort_keys=False))
    description = yaml.safe_load((root / "deploy/stack.yaml").read_text())
    description["services"]["exporter"] = {
        "role": "target",
        "ready": "/metrics",
        "local": {"kind": "command", "command": [ABSENT_PROGRAM, "--web.listen-address=127.0.0.1:{port}"]},
        **({"optional": True} if optional else {}),
    }
    (root / "deploy/stack.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
    prometheus = yaml.safe_load((root / "monitoring/prom.yml").read_text())
    prometheus["scrape_configs"].append({"job_name": "node", "static_configs": [{"targets": ["exporter:9100"]}]})
    (root / "monitoring/prom.yml").write_text(yaml.safe_dump(prometheus, sort_keys=False))
    spec = yaml.safe_load((root / "sprint/S1.yaml").read_text())
    for item in spec["stages"][0]["checks"]:
        if item["id"] == "rules/metrics-exist":
            item["with"] = {"target": "exporter"}  # the rules judged against the exporter's metrics
    (root / "sprint/S1.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    commit_all(root, f"an {'optional ' if optional else ''}exporter")
    return root


def local_backend(root: Path) -> LocalBackend:
    need_tool("promtool")
    for name in ("prometheus", "alertmanager"):
        need(find_binary(name) is not None, f"{name} not installed (bash .ci/setup-system.sh installs it)")
    return LocalBackend(
        root,
        new_run_dir("sealgate-optional-"),
        progress=lambda line: None,
        description=load_description(root, "deploy/stack.yaml"),
        allow_download=False,
    )


def test_an_optional_service_that_cannot_run_locally_is_skipped_by_what_needs_it(tmp_path: Path) -> None:
    root = shop_with_exporter(tmp_path / "shop", optional=True)
    backend = local_backend(root)
    try:
        backend.up(timeout=120)
        assert backend.unavailable["exporter"].startswith(f"exporter: {ABSENT_PROGRAM}: not installed")
        assert backend.services()["shop"].running  # the rest of the stack runs
        with pytest.raises(ServiceNotRunning) as raised:
            backend.url("exporter")
        assert raised.value.optional
        results = run_checks(root, 0, ["rules/promtool-check", "rules/metrics-exist"], stack=backend, sprint="S1")
    finally:
        backend.down(remove_volumes=True)
    assert results["rules/promtool-check"].status is Status.PASSED, explain(results["rules/promtool-check"])
    skipped = results["rules/metrics-exist"]
    assert skipped.status is Status.SKIPPED, explain(skipped)
    assert skipped.reason.startswith(f"exporter: optional, cannot run here (exporter: {ABSENT_PROGRAM}: not installed")


def test_the_same_service_not_optional_stops_the_local_stack_naming_the_program(tmp_path: Path) -> None:
    root = shop_with_exporter(tmp_path / "shop", optional=False)
    backend = local_backend(root)
    try:
        with pytest.raises(StackError) as raised:
            backend.up(timeout=120)
    finally:
        backend.down(remove_volumes=True)
    assert f"exporter: {ABSENT_PROGRAM}: not installed" in str(raised.value)


# --- compose backend ------------------------------------------------------------------------------------------------

COMPOSE = """\
services:
  web:
    image: ${WEB_IMAGE}
    command: ["python3", "-m", "http.server", "--bind", "0.0.0.0", "8080"]
    ports:
      - "127.0.0.1:${WEB_PORT:-18080}:8080"
  exporter:
    image: %(absent)s
    expose:
      - "9100"
"""


def offline_image() -> str:
    """The one image this machine builds for itself (stack/scripts/build_offline_image.sh), present or skipped."""
    import docker

    lines = (PROJECT_ROOT / "stack/offline.env").read_text().splitlines()
    image = next(text for text in lines if text.startswith("API_IMAGE=")).split("=", 1)[1].strip()

    try:
        docker.from_env().images.get(image)
    except docker.errors.ImageNotFound:
        need(False, f"image {image} not built (bash stack/scripts/build_offline_image.sh)")
    return image


def compose_project(root: Path, *, optional: bool) -> ComposeBackend:
    need_docker()
    command = detect_compose()
    need(command is not None and not command.v1, "Docker Compose v2 is not installed (bash .ci/setup-system.sh)")
    init_repo(root)
    (root / "docker-compose.yml").write_text(COMPOSE % {"absent": ABSENT_IMAGE})
    exporter = "{role: other, optional: true}" if optional else "{role: other}"
    (root / "stack.yaml").write_text(
        "sealgate_stack: 1\ncompose: {file: docker-compose.yml}\nservices:\n"
        f"  web: {{role: other, ready: /}}\n  exporter: {exporter}\n"
    )
    commit_all(root, "a web service and an exporter whose image is absent")
    return ComposeBackend(
        root,
        new_run_dir("sealgate-optional-"),
        progress=lambda line: None,
        description=load_description(root, "stack.yaml"),
        project=f"sealgate-optional-{os.getpid()}",
        env={"WEB_IMAGE": offline_image()},
        compose=command,
        free_ports=True,
    )


@pytest.mark.docker
def test_an_optional_service_whose_image_is_absent_is_left_out_of_compose(tmp_path: Path) -> None:
    backend = compose_project(tmp_path / "web", optional=True)
    try:
        backend.up(timeout=120)
        assert backend.services()["web"].running
        assert backend.enabled == ["web"]
        with pytest.raises(ServiceNotRunning) as raised:
            backend.url("exporter")
        assert raised.value.optional
        assert str(raised.value) == (
            f"exporter: optional, cannot run here (optional, and its image is not on this machine (exporter: "
            f"{ABSENT_IMAGE}))"
        )
    finally:
        backend.down(remove_volumes=True)
        remove_compose_project(backend.project)


@pytest.mark.docker
def test_the_same_service_not_optional_stops_compose_naming_its_image(tmp_path: Path) -> None:
    backend = compose_project(tmp_path / "web", optional=False)
    try:
        with pytest.raises(StackError) as raised:
            backend.up(timeout=120)
    finally:
        remove_compose_project(backend.project)
    assert f"images missing locally: exporter: {ABSENT_IMAGE}" in str(raised.value)

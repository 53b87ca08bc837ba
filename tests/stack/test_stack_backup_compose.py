"""backup_observability.sh --mode compose against the real compose stack on the offline image: volumes read by a
helper container, the snapshot and pg_dumpall run inside the project's containers; fail-closed on a missing volume.
Also proves the compose file really starts healthy on the offline image (postgres offline entrypoint included)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need, need_docker
from leaks import remove_compose_project
from stack_content_support import STACK

from sealgate.kernel.ports import free_ports, lost_bind_port

pytestmark = [pytest.mark.docker, pytest.mark.stack, pytest.mark.slow]

SCRIPT = STACK / "scripts" / "backup_observability.sh"
OFFLINE_IMAGE = "sealgate-offline:bookworm-3"


def docker(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def compose_project() -> Iterator[str]:
    need_docker()
    need(docker("compose", "version").returncode == 0, "Docker Compose v2 missing (bash .ci/setup-system.sh)")
    need(
        docker("image", "inspect", OFFLINE_IMAGE).returncode == 0,
        f"{OFFLINE_IMAGE} missing (bash stack/scripts/build_offline_image.sh)",
    )
    project = f"sealgate-stackbk-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERITTA_", "SEALGATE_"))}
    base = ["compose", "-p", project, "-f", str(STACK / "docker-compose.yml"), "--env-file", str(STACK / "offline.env")]
    try:
        for attempt in (1, 2):
            # Host ports from the kernel right before `up`; one taken in between (any socket may get it) is retried.
            ports = zip(("API", "PROMETHEUS", "ALERTMANAGER", "GRAFANA"), free_ports(4), strict=True)
            env.update({f"SEALGATE_{name}_PORT": str(port) for name, port in ports})
            up = docker(*base, "up", "-d", "--wait", "--wait-timeout", "90", timeout=150, env=env)
            if up.returncode == 0 or attempt == 2 or lost_bind_port(up.stderr) is None:
                break
            remove_compose_project(project)
        if up.returncode != 0:
            logs = docker(*base, "logs", "--no-color", "--tail", "20", env=env).stdout
            pytest.fail(f"compose up failed: {up.stderr[-2000:]}\n{logs[-3000:]}")
        yield project
    finally:
        remove_compose_project(project)


def backup(project: str, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "--mode",
            "compose",
            "--project",
            project,
            "--dest",
            str(dest),
            "--compose-file",
            str(STACK / "docker-compose.yml"),
            "--helper-image",
            OFFLINE_IMAGE,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compose_backup_fails_closed_then_succeeds(compose_project: str, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    # Grafana's profile is off here, so Compose never created its volume: the backup must refuse, not skip it.
    missing = backup(compose_project, dest)
    assert missing.returncode == 1
    assert f"backup: FAILED grafana_data: volume {compose_project}_grafana_data does not exist" in missing.stderr
    assert [p.name for p in dest.iterdir() if not p.name.startswith(".")] == []

    # Labelled as the backend labels the volumes it creates, so the project's teardown removes it with the others.
    label = f"com.docker.compose.project={compose_project}"
    assert docker("volume", "create", "--label", label, f"{compose_project}_grafana_data").returncode == 0
    result = backup(compose_project, dest)
    assert result.returncode == 0, result.stdout + result.stderr
    methods = dict(re.findall(r"^backup: (\w+)_data method=([\w-]+) archive=", result.stdout, re.M))
    assert methods == {"postgres": "pg_dumpall", "prometheus": "snapshot-api", "grafana": "directory-copy-no-db"}
    for name in methods:
        latest = dest / f"{name}_latest.tar.gz"
        assert latest.is_symlink() and latest.resolve().is_file()
    with tarfile.open(dest / "postgres_latest.tar.gz") as tar:
        dump = tar.extractfile("pg_dumpall.sql").read().decode()  # type: ignore[union-attr]
    assert 'CREATE DATABASE "techno_os"' in dump
    # The snapshot was removed from the volume after archiving.
    listing = docker(
        "run",
        "--rm",
        "-v",
        f"{compose_project}_prometheus_data:/data:ro",
        "--entrypoint",
        "/bin/sh",
        OFFLINE_IMAGE,
        "-c",
        "ls -A /data/snapshots 2>/dev/null | wc -l",
    )
    assert listing.stdout.strip() == "0"


def test_compose_backup_copies_grafana_db_with_sqlite(compose_project: str, tmp_path: Path) -> None:
    volume = f"{compose_project}_grafana_data"
    assert docker("volume", "create", volume).returncode == 0
    made = docker(
        "run",
        "--rm",
        "-v",
        f"{volume}:/data",
        "--entrypoint",
        "sqlite3",
        OFFLINE_IMAGE,
        "/data/grafana.db",
        "CREATE TABLE dashboard (uid TEXT); INSERT INTO dashboard VALUES ('llm-metrics-f910');",
    )
    assert made.returncode == 0, made.stderr
    dest = tmp_path / "dest"
    result = backup(compose_project, dest)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^backup: grafana_data method=sqlite-backup archive=", result.stdout, re.M), result.stdout
    extract = tmp_path / "grafana"
    with tarfile.open(dest / "grafana_latest.tar.gz") as tar:
        tar.extractall(extract, filter="data")
    copy = sqlite3.connect(extract / "grafana.db")
    assert copy.execute("SELECT uid FROM dashboard").fetchall() == [("llm-metrics-f910",)]
    copy.close()

"""stack/scripts/backup_observability.sh run for real in --mode local: a real Prometheus (the repository's config
and rules, admin API on), a real PostgreSQL cluster and a real SQLite grafana.db; retention with back-dated files,
fail-closed on a missing directory, an unwritable destination and a failure half-way."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import tarfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import need, need_tool
from stack_content_support import (
    STACK,
    Postgres,
    http_json,
    postgres,
    postgres_bindir,
    prometheus,
    traversable_tmpdir,
    wait_until,
)

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SCRIPT = STACK / "scripts" / "backup_observability.sh"
NAMES = ("postgres", "prometheus", "grafana")
LINE = re.compile(
    r"^backup: (?P<name>\w+)_data method=(?P<method>[\w-]+) archive=(?P<archive>\S+) sha256=(?P<sha>[0-9a-f]{64}) "
    r"bytes=(?P<bytes>\d+)$"
)
MARKER = "sealgate-backup-marker-7f3a"


def test_script_syntax_and_lint() -> None:
    need_tool("shellcheck")
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, timeout=30).returncode == 0
    lint = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout
    commands = [
        line for line in SCRIPT.read_text().splitlines()[1:] if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[0] == "set -euo pipefail"  # fail-closed before anything else runs


@pytest.mark.parametrize(
    "args",
    [[], ["--mode", "local"], ["--mode", "nope"], ["--mode", "compose"], ["--bogus"], ["--mode", "local", "--pg-port"]],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip()


@dataclass
class Stack:
    data: Path
    prometheus_url: str
    pg: Postgres

    def args(self, dest: Path) -> list[str]:
        return [
            "--mode",
            "local",
            "--data-dir",
            str(self.data),
            "--prometheus-url",
            self.prometheus_url,
            "--pg-host",
            self.pg.host,
            "--pg-port",
            str(self.pg.port),
            "--dest",
            str(dest),
        ]


@pytest.fixture(scope="module")
def local_stack() -> Iterator[Stack]:
    need_tool("prometheus", "curl", "pg_dumpall", "sqlite3", "flock")
    need(postgres_bindir() is not None, "PostgreSQL server binaries missing (apt-get install postgresql)")
    with traversable_tmpdir("sealgate-backup-") as root:
        data = root / "data"
        (data / "grafana" / "plugins").mkdir(parents=True)
        (data / "grafana" / "plugins" / "README").write_text("plugin dir\n")
        db = sqlite3.connect(data / "grafana" / "grafana.db")
        db.execute("CREATE TABLE dashboard (uid TEXT, title TEXT)")
        db.execute("INSERT INTO dashboard VALUES ('llm-metrics-f910', ?)", (MARKER,))
        db.commit()
        db.close()
        with postgres(data / "postgres") as pg, prometheus(root / "prom", data / "prometheus") as url:
            pg.psql("CREATE DATABASE techno_os")
            pg.psql(f"CREATE TABLE marker (v text); INSERT INTO marker VALUES ('{MARKER}')", db="techno_os")
            yield Stack(data, url, pg)


def run_backup(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def archives(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))


def test_grafana_without_db_is_archived_as_is_and_said(local_stack: Stack, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "grafana").mkdir(parents=True)
    (data / "grafana" / "only-a-file").write_text("x")
    os.symlink(local_stack.data / "postgres", data / "postgres")
    os.symlink(local_stack.data / "prometheus", data / "prometheus")
    args = local_stack.args(tmp_path / "dest")
    args[args.index("--data-dir") + 1] = str(data)
    result = run_backup(args)
    assert result.returncode == 0, result.stderr
    assert "backup: grafana_data method=directory-copy-no-db " in result.stdout
    assert "no grafana.db" in result.stdout


def test_retention_removes_only_its_own_old_archives(local_stack: Stack, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    now = time.time()
    files = {
        "postgres_20200101T000000Z.tar.gz": 10,  # own, 10 days old: removed
        "grafana_20200102T000000Z.tar.gz": 30,  # own, 30 days old: removed
        "prometheus_20200103T000000Z.tar.gz": 3,  # own, 3 days old: kept
        "postgres_manual-copy.tar.gz": 10,  # not a timestamped archive: kept
        "notes_20200101T000000Z.tar.gz": 10,  # not one of the three names: kept
        "unrelated.txt": 40,
    }
    for name, age_days in files.items():
        path = dest / name
        path.write_text(name)
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    result = run_backup(local_stack.args(dest))
    assert result.returncode == 0, result.stderr
    left = set(archives(dest))
    assert "postgres_20200101T000000Z.tar.gz" not in left and "grafana_20200102T000000Z.tar.gz" not in left
    assert {
        "prometheus_20200103T000000Z.tar.gz",
        "postgres_manual-copy.tar.gz",
        "notes_20200101T000000Z.tar.gz",
        "unrelated.txt",
    } <= left
    assert "removed 2 old archive(s)" in result.stdout
    for name in NAMES:
        assert (dest / f"{name}_latest.tar.gz").resolve().exists()  # the fresh ones were never candidates


def previous_backup(local_stack: Stack, dest: Path) -> dict[str, str]:
    result = run_backup(local_stack.args(dest))
    assert result.returncode == 0, result.stderr
    return {n: os.readlink(dest / f"{n}_latest.tar.gz") for n in NAMES}


def assert_untouched(dest: Path, before_links: dict[str, str], before_files: list[str]) -> None:
    assert archives(dest) == before_files
    assert {n: os.readlink(dest / f"{n}_latest.tar.gz") for n in NAMES} == before_links
    assert not list(dest.glob(".backup-staging.*"))


def test_missing_directory_fails_closed(local_stack: Stack, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    links = previous_backup(local_stack, dest)
    before = archives(dest)
    time.sleep(1.05)  # a new run gets a new timestamp
    data = tmp_path / "partial"
    (data / "grafana").mkdir(parents=True)
    os.symlink(local_stack.data / "postgres", data / "postgres")  # prometheus/ missing
    args = local_stack.args(dest)
    args[args.index("--data-dir") + 1] = str(data)
    snapshots = local_stack.data / "prometheus" / "snapshots"
    result = run_backup(args)
    assert result.returncode == 1
    assert f"backup: FAILED prometheus_data: directory {data}/prometheus does not exist" in result.stderr
    assert_untouched(dest, links, before)
    assert not list(snapshots.glob("*"))  # preflight: nothing was snapshotted


def test_failure_half_way_moves_nothing(local_stack: Stack, tmp_path: Path) -> None:
    """postgres and prometheus succeed, grafana fails (a grafana.db that is not SQLite): no archive of this run
    appears, no latest link moves."""
    dest = tmp_path / "dest"
    links = previous_backup(local_stack, dest)
    before = archives(dest)
    time.sleep(1.05)
    data = tmp_path / "data"
    (data / "grafana").mkdir(parents=True)
    (data / "grafana" / "grafana.db").write_bytes(b"this is not an SQLite database" * 100)
    os.symlink(local_stack.data / "postgres", data / "postgres")
    os.symlink(local_stack.data / "prometheus", data / "prometheus")
    args = local_stack.args(dest)
    args[args.index("--data-dir") + 1] = str(data)
    result = run_backup(args)
    assert result.returncode == 1
    assert "backup: FAILED grafana_data" in result.stderr
    assert "method=" not in result.stdout
    assert_untouched(dest, links, before)


def test_unreachable_postgres_fails_closed(local_stack: Stack, tmp_path: Path) -> None:
    args = local_stack.args(tmp_path / "dest")
    args[args.index("--pg-port") + 1] = "9"  # discard port: nothing listens
    result = run_backup(args)
    assert result.returncode == 1
    assert "backup: FAILED postgres_data: pg_dumpall" in result.stderr
    assert archives(tmp_path / "dest") == []


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory nobody can write to, root included (a read-only tmpfs when we are root: root ignores modes)."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    need(mounted.returncode == 0, f"cannot mount a read-only tmpfs as root: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=30)


def test_readonly_dest_fails_closed(local_stack: Stack, readonly_dir: Path) -> None:
    result = run_backup(local_stack.args(readonly_dir))
    assert result.returncode == 1
    assert f"backup: FAILED dest {readonly_dir}: not writable" in result.stderr
    nested = run_backup(local_stack.args(readonly_dir / "sub"))
    assert nested.returncode == 1 and "cannot create it" in nested.stderr


def test_dest_under_a_file_fails_closed(local_stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = run_backup(local_stack.args(tmp_path / "file" / "dest"))
    assert result.returncode == 1 and "backup: FAILED dest" in result.stderr


def test_dashboard_and_rule_queries_run_on_real_prometheus(local_stack: Stack) -> None:
    """Every PromQL expression of the dashboard and of the rules parses and evaluates on a real Prometheus, and
    that Prometheus loaded the repository's 6 rules in 2 groups."""
    exprs = []
    dashboard = json.loads((STACK / "grafana" / "dashboards" / "llm_metrics.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for path in (STACK / "prometheus" / "alerts").glob("*.yml"):
        exprs += [r["expr"] for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    for expr in exprs:
        status, body = http_json(f"{local_stack.prometheus_url}/api/v1/query?query={urllib.parse.quote(expr)}")
        assert status == 200 and body["status"] == "success", (expr, body)
    status, body = http_json(f"{local_stack.prometheus_url}/api/v1/rules")
    groups = {g["name"]: [r["name"] for r in g["rules"]] for g in body["data"]["groups"]}
    assert groups == {
        "api": ["APIDown", "APIHighErrorRate"],
        "llm": ["LLMHighLatency", "LLMErrorRateHigh", "CircuitBreakerOpen", "LLMProviderDown"],
    }
    assert all(r["health"] != "err" for g in body["data"]["groups"] for r in g["rules"])


def test_real_local_backup(local_stack: Stack, tmp_path: Path) -> None:
    # Prometheus 2.42 scrapes first ~5 s after start (this test runs last in the module, so usually no wait):
    # wait for real samples, so the snapshot holds real data.
    query = f"{local_stack.prometheus_url}/api/v1/query?query=up"
    wait_until("first scrape", lambda: http_json(query)[1]["data"]["result"], timeout=20)
    dest = tmp_path / "dest"
    result = run_backup(local_stack.args(dest))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {m["name"]: m for m in map(LINE.match, result.stdout.splitlines()) if m}
    assert sorted(lines) == sorted(NAMES), result.stdout
    assert {n: lines[n]["method"] for n in NAMES} == {
        "postgres": "pg_dumpall",
        "prometheus": "snapshot-api",
        "grafana": "sqlite-backup",
    }
    assert "backup: OK 3 archives" in result.stdout
    for name in NAMES:
        archive = Path(lines[name]["archive"])
        assert archive.parent == dest.resolve()
        assert re.fullmatch(rf"{name}_\d{{8}}T\d{{6}}Z\.tar\.gz", archive.name)
        assert stat.S_IMODE(archive.stat().st_mode) == 0o600
        assert hashlib.sha256(archive.read_bytes()).hexdigest() == lines[name]["sha"]
        latest = dest / f"{name}_latest.tar.gz"
        assert latest.is_symlink() and latest.resolve() == archive.resolve()

    with tarfile.open(dest / "postgres_latest.tar.gz") as tar:
        dump = tar.extractfile("pg_dumpall.sql").read().decode()  # type: ignore[union-attr]
    assert MARKER in dump and "CREATE DATABASE" in dump

    with tarfile.open(dest / "prometheus_latest.tar.gz") as tar:
        names = tar.getnames()
    # The snapshot persisted the head (holding the scraped samples) as a TSDB block.
    assert any(re.fullmatch(r"\./[0-9A-Z]{26}/meta\.json", n) for n in names), names
    assert any(re.fullmatch(r"\./[0-9A-Z]{26}/chunks/\d+", n) for n in names), names
    assert not list((local_stack.data / "prometheus" / "snapshots").glob("*"))  # snapshot removed after archiving

    extract = tmp_path / "grafana"
    with tarfile.open(dest / "grafana_latest.tar.gz") as tar:
        tar.extractall(extract, filter="data")
    copy = sqlite3.connect(extract / "grafana.db")
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert copy.execute("SELECT title FROM dashboard").fetchone() == (MARKER,)
    copy.close()
    assert (extract / "plugins" / "README").read_text() == "plugin dir\n"

"""EIXO 3 — backups of the three data volumes that are fail-closed, retained for 7 days, and that restore.

The script under test is `stack/scripts/backup_observability.sh`, run for real against the running stack in the
mode its backend selects (`ctx.stack.backup_args()`: compose volumes or local data directories), always into a
temporary directory of this run. A backup is only proven by a restore: the drill brings the Prometheus archive up in a
fresh Prometheus and asks it the same question the live one answered before the backup, restores the Postgres dump
into a scratch cluster and counts a table seeded before the backup, and opens Grafana's database from its archive.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sealgate.procs import terminate
from sealgate.sprint.context import CommandRecord, Context
from sealgate.sprint.registry import check

SCRIPT = "stack/scripts/backup_observability.sh"
VOLUMES = ("postgres_data", "prometheus_data", "grafana_data")
SCRIPT_TIMEOUT_S = 300.0
# `backup: prometheus_data method=snapshot-api archive=DEST/prometheus_…tar.gz sha256=… bytes=N` (the script's
# documented output contract, one line per volume).
REPORT_LINE = re.compile(
    r"^backup: (?P<volume>\w+) method=(?P<method>\S+) archive=(?P<archive>\S+) sha256=(?P<sha256>[0-9a-f]{64})",
    re.MULTILINE,
)

_VOLUME_PARAMS: dict[str, Any] = {
    "script": {"type": "string"},
    "volumes": {"type": "array", "items": {"type": "string", "pattern": "^[a-z0-9]+_data$"}, "minItems": 1},
}


def _prefix(volume: str) -> str:
    """Archive name prefix of a volume: postgres_data -> postgres (postgres_<stamp>.tar.gz, postgres_latest.tar.gz)."""
    return volume.removesuffix("_data")


def _volumes(ctx: Context) -> list[str]:
    return list(ctx.params.get("volumes", VOLUMES))


def _script(ctx: Context) -> Path:
    return ctx.judge(ctx.params.get("script", SCRIPT))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_gzip_to_end(path: Path) -> None:
    """Decompress the whole file: each gzip member's CRC-32 and length are checked, bytes after the last one refused.

    Reading the tar alone stops at its end-of-archive blocks, before the gzip trailer: damaged file contents (bit
    rot) and appended bytes would pass. Raises tarfile.ReadError, OSError or EOFError.
    """
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except zlib.error as exc:
        raise tarfile.ReadError(f"zlib error: {exc}") from None


def archive_facts(path: Path) -> dict[str, Any]:
    """Read a whole archive as gzip + tar (a truncated or corrupt one fails here), counting what it holds."""
    facts: dict[str, Any] = {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_of(path)}
    try:
        read_gzip_to_end(path)
        with tarfile.open(path, mode="r:gz") as archive:
            members = archive.getmembers()  # every header, to the tar's end-of-archive blocks
            for member in members:
                if member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        while handle.read(1 << 20):
                            pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        facts["valid"] = False
        facts["error"] = f"{type(exc).__name__}: {exc}"
        return facts
    files = [m for m in members if m.isfile()]
    facts.update(
        valid=True,
        members=len(members),
        files=len(files),
        content_bytes=sum(m.size for m in files),
    )
    return facts


def _relative_dest(ctx: Context, dest: Path) -> str:
    """The destination as the script is told it: relative to the repository when inside it, so evidence does not
    carry this machine's absolute paths."""
    try:
        return dest.resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return str(dest)


def run_backup(ctx: Context, dest: Path, args: list[str] | None = None) -> CommandRecord:
    """Run the script (executed directly: its shebang and exec bit are part of what is judged) into `dest`."""
    script = _script(ctx)
    argv = [str(script), *(ctx.stack.backup_args() if args is None else args), "--dest", _relative_dest(ctx, dest)]
    return ctx.run(argv, timeout=SCRIPT_TIMEOUT_S, cwd=ctx.root)


def reports_of(output: str) -> dict[str, dict[str, str]]:
    return {m["volume"]: m.groupdict() for m in REPORT_LINE.finditer(output)}


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        _make_mutable(path)
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _make_mutable(path: Path) -> None:
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
    with suppress(OSError):
        path.chmod(0o755)


def _listing(dest: Path) -> dict[str, str]:
    """What a destination holds: regular files, links (with their target) and directories."""
    found: dict[str, str] = {}
    for entry in sorted(dest.iterdir()):
        if entry.is_symlink():
            found[entry.name] = f"-> {os.readlink(entry)}"
        elif entry.is_dir():
            found[entry.name] = "dir"
        else:
            found[entry.name] = f"{entry.stat().st_size} bytes"
    return found


# --- static --------------------------------------------------------------------------------------------------------


@check(
    "backup/script-static",
    stage=3,
    title="Script de backup existe, é executável, começa com set -euo pipefail, passa bash -n e shellcheck, nomeia "
    "os 3 volumes",
    params={"type": "object", "properties": {**_VOLUME_PARAMS}, "additionalProperties": False},
)
def script_static(ctx: Context) -> None:
    relative = ctx.params.get("script", SCRIPT)
    path = _script(ctx)
    mode = path.stat().st_mode
    ctx.record("mode", oct(mode & 0o777))
    if not mode & 0o111:
        ctx.finding(f"{relative} is not executable (mode {oct(mode & 0o777)})", file=relative)
    lines = path.read_text().splitlines()
    if not lines or not re.match(r"^#!\s*(/usr/bin/env\s+bash|/bin/bash|/usr/bin/bash)\b", lines[0]):
        ctx.finding("the first line is not a bash shebang", file=relative, line=1)
    # The first command must be `set -euo pipefail`: anything before it runs without fail-closed semantics.
    first = next(
        (
            (n, line.strip())
            for n, line in enumerate(lines, 1)
            if n > 1 and line.strip() and not line.strip().startswith("#")
        ),
        (None, ""),
    )
    ctx.record("first_command", {"line": first[0], "text": first[1]})
    if not _strict_mode(first[1]):
        ctx.finding(f"the first command is {first[1]!r}, not `set -euo pipefail`", file=relative, line=first[0])
    syntax = ctx.run(["bash", "-n", str(path)], timeout=30)
    if not syntax.ok:
        ctx.finding(f"bash -n: {syntax.stderr.strip()[-300:]}", file=relative)
    if shutil.which("shellcheck"):
        version = ctx.run(["shellcheck", "--version"], timeout=30)
        found = re.search(r"version:\s*(\S+)", version.stdout)
        if found:
            ctx.tool_version("shellcheck", found.group(1))
        linted = ctx.run(["shellcheck", "-f", "json", "-S", "warning", str(path)], timeout=60)
        try:
            issues = json.loads(linted.stdout or "[]")
        except json.JSONDecodeError:
            ctx.error(f"shellcheck gave no JSON (exit {linted.exit_code}): {linted.stderr.strip()[-200:]}")
        for issue in issues:
            ctx.finding(
                f"shellcheck SC{issue.get('code')} ({issue.get('level')}): {issue.get('message')}",
                file=relative,
                line=issue.get("line"),
            )
        ctx.record("shellcheck", {"issues": len(issues)})
    else:
        ctx.record("shellcheck", "not installed: skipped (bash -n still ran)")
    text = path.read_text()
    for volume in _volumes(ctx):
        # The volume itself, or its archive prefix (postgres for postgres_data) in the script's list of names.
        if not re.search(rf"\b{re.escape(volume)}\b", text) and not re.search(rf"\b{_prefix(volume)}\b", text):
            ctx.finding(f"the script never names volume {volume}", file=relative)
    ctx.record("volumes_named", _volumes(ctx))


def _strict_mode(command: str) -> bool:
    """`set -euo pipefail`, in any spelling that sets errexit, nounset and pipefail (`set -eu -o pipefail`, ...)."""
    words = command.split()
    if not words or words[0] != "set":
        return False
    letters: set[str] = set()
    options: set[str] = set()
    for i, word in enumerate(words[1:], 1):
        if word.startswith("-") and not word.startswith("--"):
            letters |= set(word[1:])
            if word.endswith("o") and i + 1 < len(words):
                options.add(words[i + 1])
    return {"e", "u"} <= letters and "pipefail" in options


# --- live run --------------------------------------------------------------------------------------------------------


def _judge_archives(ctx: Context, dest: Path, output: str, volumes: list[str]) -> dict[str, dict[str, Any]]:
    """Exactly one new archive per volume, valid, non-empty, and its `_latest` link on it; returns facts by volume."""
    archives = sorted(p for p in dest.glob("*.tar.gz") if p.is_file() and not p.is_symlink())
    reports = reports_of(output)
    facts: dict[str, dict[str, Any]] = {}
    if len(archives) != len(volumes):
        ctx.finding(f"{len(archives)} archives written, expected exactly {len(volumes)}: {[a.name for a in archives]}")
    for volume in volumes:
        prefix = _prefix(volume)
        mine = [a for a in archives if re.fullmatch(rf"{re.escape(prefix)}_[0-9]{{8}}T[0-9]{{6}}Z\.tar\.gz", a.name)]
        if len(mine) != 1:
            ctx.finding(f"{volume}: {len(mine)} archives named {prefix}_<UTC stamp>.tar.gz, expected 1")
            continue
        archive = mine[0]
        info = archive_facts(archive)
        facts[volume] = info
        if not info["valid"]:
            ctx.finding(f"{volume}: {archive.name} is not a valid gzip tar: {info['error']}")
        elif info["files"] == 0 or info["content_bytes"] == 0:
            info["empty"] = True  # judged below, once the method is known
        mode = archive.stat().st_mode & 0o777
        info["mode"] = f"{mode:04o}"
        if mode & 0o077:
            ctx.finding(
                f"{volume}: {archive.name} has mode {mode:04o}: other users can read the backup; create it 0600"
            )
        link = dest / f"{prefix}_latest.tar.gz"
        if not link.is_symlink():
            ctx.finding(f"{volume}: {link.name} is missing or not a symlink")
        elif link.resolve() != archive.resolve():
            ctx.finding(f"{volume}: {link.name} points at {os.readlink(link)}, not at {archive.name}")
        else:
            info["latest_link"] = f"{link.name} -> {os.readlink(link)}"
        report = reports.get(volume)
        if report is None:
            ctx.finding(f"{volume}: the script's output has no `backup: {volume} method=…` line")
            continue
        info["method"] = report["method"]
        line = next(line for line in output.splitlines() if line.startswith(f"backup: {volume} "))
        info["reported_line"] = line.replace(report["archive"], Path(report["archive"]).name)
        if info.pop("empty", False):
            # A volume with nothing in it yet (grafana_data where Grafana never ran) is archived empty, and the
            # script says so by its method; any other empty archive is a backup of nothing.
            if report["method"] in ctx.params.get("empty_ok_methods", []):
                info["note"] = f"empty volume, archived as such (method {report['method']})"
            else:
                ctx.finding(f"{volume}: {archive.name} holds no data ({info['members']} members, 0 bytes of files)")
        if report["sha256"] != info["sha256"]:
            ctx.finding(f"{volume}: the script reports sha256 {report['sha256']}, the archive has {info['sha256']}")
        if Path(report["archive"]).name != archive.name:
            ctx.finding(f"{volume}: the script reports archive {Path(report['archive']).name}, not {archive.name}")
        accepted = (ctx.params.get("methods") or {}).get(volume)
        if accepted and report["method"] not in accepted:
            ctx.finding(f"{volume}: consistency method {report['method']!r} is not one of {accepted}")
    leftovers = [p.name for p in dest.iterdir() if p.name.startswith(".backup-staging")]
    if leftovers:
        ctx.finding(f"staging left behind in the backup directory: {leftovers}")
    return facts


@check(
    "backup/run-live",
    stage=3,
    title="Backup real dos 3 volumes: 3 arquivos gzip tar válidos, sha256, links latest, método de consistência",
    needs_stack=True,
    requires=("backup/script-static",),
    params={
        "type": "object",
        "properties": {
            **_VOLUME_PARAMS,
            "methods": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            },
            "empty_ok_methods": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    },
)
def run_live(ctx: Context) -> None:
    volumes = _volumes(ctx)
    dest = _fresh_dir(ctx.run_dir / "backups")
    result = run_backup(ctx, dest)
    ctx.attach("backup-run-live.log", result.output)
    ctx.record("mode", ctx.stack.name)
    ctx.record("exit_code", result.exit_code)
    if not result.ok:
        ctx.fail(f"the backup exited {result.exit_code}: {result.stderr.strip()[-300:]}")
    facts = _judge_archives(ctx, dest, result.stdout, volumes)
    ctx.record("archives", facts)
    ctx.record("methods", {v: f.get("method") for v, f in facts.items()})
    ctx.record("destination", _listing(dest))


# --- retention -----------------------------------------------------------------------------------------------------

DAY = 86400.0


@check(
    "backup/retention",
    stage=3,
    title="Retenção de 7 dias: arquivos do script mais antigos apagados, mais novos e alheios mantidos",
    needs_stack=True,
    requires=("backup/script-static",),
    params={
        "type": "object",
        "properties": {**_VOLUME_PARAMS, "retention_days": {"type": "integer", "minimum": 1}},
        "required": ["retention_days"],
        "additionalProperties": False,
    },
)
def retention(ctx: Context) -> None:
    volumes = _volumes(ctx)
    days = ctx.params["retention_days"]
    dest = _fresh_dir(ctx.run_dir / "backups")
    # A first real run gives archives named exactly as the script names its own; back-dating them (os.utime) makes
    # them old without guessing the naming scheme. Ages keep a day of margin on both sides of the limit, so the
    # check does not depend on how `find -mtime` rounds.
    first = run_backup(ctx, dest)
    if not first.ok:
        ctx.fail(f"the first backup exited {first.exit_code}: {first.stderr.strip()[-300:]}")
    now = time.time()
    ages = {volumes[0]: days - 1}  # newer than the limit: kept
    for volume in volumes[1:]:
        ages[volume] = days + 2  # older: deleted
    plan: dict[str, dict[str, Any]] = {}
    for volume, age in ages.items():
        archive = next(iter(sorted(dest.glob(f"{_prefix(volume)}_*[0-9]Z.tar.gz"))), None)
        if archive is None:
            ctx.fail(f"the first backup wrote no archive for {volume}")
        os.utime(archive, (now - age * DAY, now - age * DAY))
        plan[archive.name] = {"age_days": age, "expected": "kept" if age <= days else "deleted"}
    # Files that are not this script's archives must survive whatever their age.
    for name in ("README.txt", "otherapp_20000101T000000Z.tar.gz", "postgres_manual-copy.tar.gz"):
        foreign = dest / name
        foreign.write_text("not a backup of this script\n")
        os.utime(foreign, (now - 30 * DAY, now - 30 * DAY))
        plan[name] = {"age_days": 30, "expected": "kept"}
    _next_second()
    second = run_backup(ctx, dest)
    ctx.attach("backup-retention.log", first.output + "\n--- second run ---\n" + second.output)
    if not second.ok:
        ctx.fail(f"the second backup exited {second.exit_code}: {second.stderr.strip()[-300:]}")
    for name, item in plan.items():
        present = (dest / name).exists()
        item["actual"] = "kept" if present else "deleted"
        if item["actual"] != item["expected"]:
            ctx.finding(
                f"{name} ({item['age_days']} days old) was {item['actual']}, expected {item['expected']} "
                f"with a {days}-day retention"
            )
    for volume in volumes:
        link = dest / f"{_prefix(volume)}_latest.tar.gz"
        if not (link.is_symlink() and link.exists()):
            ctx.finding(f"{link.name} is dangling or missing after retention")
    ctx.record("retention_days", days)
    ctx.record("plan", plan)
    ctx.record("destination_after", _listing(dest))


def _next_second() -> None:
    """Archive names carry a one-second UTC stamp: make sure the next run gets a new one."""
    time.sleep(1.05 - (time.time() % 1.0))


# --- fail-closed -----------------------------------------------------------------------------------------------------


@contextmanager
def _unwritable(path: Path) -> Iterator[tuple[Path, str]]:
    """A destination nobody can write into, even root (who ignores permission bits); yields (dest, how).

    Immutable (chattr +i) where the filesystem supports it; else, as root, a regular file where the directory should
    be; as another user, a directory without write permission.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        dest, how = path, "chmod 0555"
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        dest, how = path, "chattr +i (immutable: even root cannot create files in it)"
    else:
        dest = path.with_name(path.name + ".file")
        dest.write_text("a file where the backup directory should be\n")
        how = "a regular file in place of the directory (no chattr here)"
    try:
        yield dest, how
    finally:
        _make_mutable(path)


def _missing_volume_args(ctx: Context, work: Path) -> tuple[list[str], str, str]:
    """Arguments that point the script at a stack where one volume is missing; (args, missing volume, how)."""
    args = list(ctx.stack.backup_args())
    if "--data-dir" in args:
        # Local mode: a data directory holding the real prometheus/ and postgres/ (symlinks) but no grafana/, so the
        # script gets two volumes done before it meets the missing one: the partial case that must leave nothing.
        index = args.index("--data-dir") + 1
        real = Path(args[index])
        fake = _fresh_dir(work / "data-missing-grafana")
        for name in ("postgres", "prometheus"):
            (fake / name).symlink_to(real / name)
        args[index] = str(fake)
        return args, "grafana_data", "a data directory with postgres/ and prometheus/ but no grafana/"
    if "--project" in args:
        # Compose mode: a project that does not exist, so its volumes (the first one the script reads, postgres_data)
        # are missing.
        index = args.index("--project") + 1
        args[index] = f"sealgate-missing-{uuid.uuid4().hex[:8]}"
        return args, "postgres_data", f"compose project {args[index]} (no volumes)"
    ctx.error(f"cannot tell how to make a volume missing from backup arguments {args}")


@check(
    "backup/fail-closed",
    stage=3,
    title="Fail-closed: volume ausente ou destino sem escrita -> saída não-zero nomeando a causa, sem link latest "
    "para arquivo parcial",
    needs_stack=True,
    requires=("backup/script-static",),
    params={"type": "object", "properties": {**_VOLUME_PARAMS}, "additionalProperties": False},
)
def fail_closed(ctx: Context) -> None:
    volumes = _volumes(ctx)
    work = ctx.run_dir
    dest = _fresh_dir(work / "backups")
    # A good backup first: a failed run afterwards must leave its latest links on these complete archives.
    good = run_backup(ctx, dest)
    if not good.ok:
        ctx.fail(f"the reference backup exited {good.exit_code}: {good.stderr.strip()[-300:]}")
    before = _listing(dest)
    scenarios = []

    _next_second()
    args, missing, how = _missing_volume_args(ctx, work)
    result = run_backup(ctx, dest, args)
    scenarios.append(_judge_failure(ctx, "missing volume", how, result, [missing], dest, before, volumes))

    blocked = _fresh_dir(work / "backups-unwritable")
    with _unwritable(blocked) as (target, how):
        result = run_backup(ctx, target)
        scenarios.append(_judge_failure(ctx, "unwritable destination", how, result, ["dest"], blocked, {}, volumes))
    ctx.attach("backup-fail-closed.json", json.dumps(scenarios, indent=2))
    ctx.record("scenarios", scenarios)


def _judge_failure(
    ctx: Context,
    scenario: str,
    how: str,
    result: CommandRecord,
    names: list[str],
    dest: Path,
    before: dict[str, str],
    volumes: list[str],
) -> dict[str, Any]:
    stderr_last = [line for line in result.stderr.splitlines() if line.strip()][-3:]
    outcome = {"scenario": scenario, "how": how, "exit_code": result.exit_code, "message": stderr_last}
    if result.ok:
        ctx.finding(f"{scenario}: the backup exited 0 ({how})")
    if not any(name in result.stderr for name in names):
        said = " | ".join(stderr_last) or "no output"
        ctx.finding(f"{scenario}: the error does not name {' or '.join(names)}: {said}")
    after = _listing(dest) if dest.is_dir() else {}
    outcome["destination_changed"] = sorted(set(after.items()) ^ set(before.items()))
    if after != before:
        ctx.finding(f"{scenario}: the failed run changed the backup directory: {outcome['destination_changed']}")
    for volume in volumes:
        link = dest / f"{_prefix(volume)}_latest.tar.gz"
        if link.is_symlink():
            target = link.resolve()
            facts = archive_facts(target) if target.is_file() else {"valid": False, "error": "dangling"}
            if not facts["valid"]:
                ctx.finding(f"{scenario}: {link.name} points at a partial archive ({facts.get('error')})")
    return outcome


# --- restore drill ---------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_json(url: str, timeout: float = 10) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _instant(base: str, query: str, at: float) -> list[dict[str, Any]]:
    body = _http_json(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': query, 'time': f'{at:.3f}'})}")
    if body.get("status") != "success":
        raise ValueError(str(body.get("error")))
    return sorted(
        ({"metric": r.get("metric", {}), "value": r["value"][1]} for r in body["data"]["result"]),
        key=lambda r: json.dumps(r["metric"], sort_keys=True),
    )


def _extract(ctx: Context, archive: Path, into: Path) -> Path:
    _fresh_dir(into)
    try:
        read_gzip_to_end(archive)  # nothing is extracted from a corrupt archive
        with tarfile.open(archive, mode="r:gz") as tar:
            tar.extractall(into, filter="data")  # refuses absolute paths, `..`, devices
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        ctx.fail(f"{archive.name} cannot be extracted: {type(exc).__name__}: {exc}")
    return into


def _traffic(ctx: Context, requests: int) -> None:
    base = ctx.stack.url("api")
    for n in range(requests):
        data = json.dumps({"prompt": f"restore drill {n}", "provider": "sim", "model": "sim-1"}).encode()
        request = urllib.request.Request(
            base + "/v1/complete", data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with suppress(urllib.error.HTTPError):
            urllib.request.urlopen(request, timeout=15).close()


def _scrape_after(ctx: Context, base: str, job: str, after: float, limit_s: float) -> float:
    started = time.monotonic()
    while True:
        result = _instant(base, f'max(timestamp(up{{job="{job}"}}))', time.time())
        latest = float(result[0]["value"]) if result else 0.0
        if latest > after:
            ctx.note_wait(f"a scrape of {job} after the drill's traffic", time.monotonic() - started)
            return latest
        if time.monotonic() - started > limit_s:
            ctx.error(f"Prometheus scraped no {job} sample within {limit_s:g}s")
        time.sleep(0.5)


class Psql:
    """SQL against the stack's own PostgreSQL: `docker exec` into the postgres container (compose) or psql to the
    local server (local)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        stack = ctx.stack
        if stack.containerized:
            state = stack.services().get("postgres")
            if state is None or not state.running or not state.container_id:
                ctx.error("the stack's postgres container is not running")
            self.argv = [
                "docker",
                "exec",
                "-i",
                state.container_id,
                "sh",
                "-c",
                'exec psql -X -q -v ON_ERROR_STOP=1 -tA -U "${POSTGRES_USER:-postgres}" '
                '-d "${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"',
            ]
        else:
            port = urllib.parse.urlsplit(stack.url("postgres")).port
            user = str(getattr(stack, "pg_user", "postgres"))
            database = str(getattr(stack, "pg_database", "postgres"))
            self.argv = [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-tA",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-U",
                user,
                "-d",
                database,
            ]

    def __call__(self, sql: str) -> str:
        result = self.ctx.run(self.argv, input_text=sql, timeout=60)
        if not result.ok:
            self.ctx.error(f"psql on the stack's postgres failed: {result.stderr.strip()[-300:]}")
        return result.stdout.strip()


def _pg_bin() -> Path | None:
    versioned = sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    on_path = str(Path(shutil.which("initdb") or "/nonexistent").resolve().parent)
    for candidate in [os.environ.get("SEALGATE_PG_BIN_DIR", ""), *versioned, on_path]:
        if candidate and all((Path(candidate) / tool).is_file() for tool in ("initdb", "pg_ctl", "psql")):
            return Path(candidate)
    return None


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` system user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _restore_postgres(ctx: Context, archive: Path, table: str, rows: int, database: str) -> dict[str, Any]:
    """Load the dump into a scratch PostgreSQL cluster (never into the live server) and count the seeded table."""
    extracted = _extract(ctx, archive, ctx.run_dir / "restore-postgres")
    dumps = sorted(p for p in extracted.rglob("*.sql") if p.is_file())
    if not dumps:
        ctx.fail(f"{archive.name} holds no SQL dump: {[p.name for p in extracted.rglob('*')]}")
    bin_dir = _pg_bin()
    if bin_dir is None:
        ctx.error("no PostgreSQL server binaries (initdb, pg_ctl) for the scratch cluster (apt-get install postgresql)")
    # Under /tmp, not the run directory: the postgres user must be able to reach its data directory.
    data = Path(tempfile.mkdtemp(prefix="sealgate-pgrestore-"))
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    if owner is not None:
        os.chown(data, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    log = data / "server.log"
    started = False
    try:
        init = ctx.run(
            _as_postgres(
                [str(bin_dir / "initdb"), "-D", str(data / "pg"), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            timeout=120,
            cwd=Path("/"),
        )
        if not init.ok:
            ctx.error(f"initdb of the scratch cluster failed: {init.stderr.strip()[-300:]}")
        start = ctx.run(
            _as_postgres(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data / "pg"),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(log),
                    "-o",
                    f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''",
                    "start",
                ]
            ),
            timeout=90,
            cwd=Path("/"),
        )
        if not start.ok:
            ctx.error(f"the scratch cluster did not start: {start.stderr.strip()[-300:]}")
        started = True
        psql = [str(bin_dir / "psql"), "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        # pg_dumpall recreates roles and databases; errors such as "role postgres already exists" are expected
        # and harmless, so the load is not stopped at the first error — the count below is what decides.
        load = ctx.run([*psql, "-q", "-d", "postgres", "-f", str(dumps[0])], timeout=300)
        errors = [line for line in load.stderr.splitlines() if "ERROR" in line]
        count = ctx.run([*psql, "-tA", "-d", database, "-c", f'SELECT count(*) FROM public."{table}"'], timeout=60)
        restored = int(count.stdout.strip()) if count.ok and count.stdout.strip().isdigit() else None
        return {
            "dump": dumps[0].name,
            "dump_bytes": dumps[0].stat().st_size,
            "scratch_cluster": f"127.0.0.1:{port} (initdb from {bin_dir.parent.name})",
            "load_errors": errors[:5],
            "table": table,
            "database": database,
            "rows_seeded": rows,
            "rows_restored": restored,
            "count_error": None if count.ok else count.stderr.strip()[-300:],
        }
    finally:
        if started:
            ctx.run(
                _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data / "pg"), "-m", "immediate", "stop"]),
                timeout=60,
                cwd=Path("/"),
            )
        shutil.rmtree(data, ignore_errors=True)


def _tsdb_root(extracted: Path) -> Path:
    """The directory holding the TSDB blocks (ULID directories with a meta.json), wherever the archive put them."""
    metas = sorted(extracted.rglob("meta.json"))
    return metas[0].parent.parent if metas else extracted


def _restore_prometheus(
    ctx: Context, archive: Path, queries: list[str], at: float, live: dict[str, Any]
) -> dict[str, Any]:
    extracted = _extract(ctx, archive, ctx.run_dir / "restore-prometheus")
    tsdb = _tsdb_root(extracted)
    blocks = [p.parent.name for p in tsdb.glob("*/meta.json")]
    binary = shutil.which("prometheus")
    if binary is None:
        ctx.error("no prometheus binary to bring the restored data up (apt-get install prometheus)")
    version = ctx.run([binary, "--version"], timeout=30)
    found = re.search(r"version (\S+)", version.stdout + version.stderr)
    if found:
        ctx.tool_version("prometheus", found.group(1))
    config = ctx.run_dir / "prometheus-restore.yml"
    config.write_text("# restored data only: nothing is scraped, so every answer comes from the archive\nglobal: {}\n")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = ctx.run_dir / "prometheus-restore.log"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=3650d",
    ]
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ctx.run_dir)
    t0 = time.monotonic()
    answers: dict[str, Any] = {}
    try:
        while True:
            if proc.poll() is not None:
                ctx.fail(f"the restored Prometheus exited {proc.returncode}: {log_path.read_text()[-300:]}")
            with suppress(OSError, ValueError), urllib.request.urlopen(base + "/-/ready", timeout=2) as response:
                if response.status == 200:
                    break
            if time.monotonic() - t0 > 60:
                ctx.error("the restored Prometheus was not ready within 60 s")
            time.sleep(0.2)
        ctx.note_wait("restored Prometheus ready", time.monotonic() - t0)
        for query in queries:
            try:
                answers[query] = _instant(base, query, at)
            except (ValueError, OSError) as exc:
                answers[query] = {"error": str(exc)}
    finally:
        terminate(proc, grace=15)
        ctx.attach("prometheus-restore.log", log_path.read_text()[-20000:])
    # Lists of {query, result}, not mappings keyed by the query: evidence redaction hides the value of any key that
    # looks like a secret name, and `llm_tokens_total` contains TOKEN.
    return {
        "blocks": sorted(blocks),
        "answers": [{"query": q, "result": a} for q, a in answers.items()],
        "live": [{"query": q, "result": live[q]} for q in answers],
        "server": f"prometheus {found.group(1) if found else '?'} on 127.0.0.1:{port}, --storage.tsdb.path=<archive>",
    }


def _integrity_grafana(ctx: Context, archive: Path) -> dict[str, Any]:
    extracted = _extract(ctx, archive, ctx.run_dir / "restore-grafana")
    databases = sorted(extracted.rglob("grafana.db"))
    if not databases:
        return {
            "status": "skipped",
            "reason": "the archive holds no grafana.db: Grafana has not run on this volume "
            "(no Grafana can run here), so there is no database to open",
            "files": len(list(extracted.rglob("*"))),
        }
    connection = sqlite3.connect(f"file:{databases[0]}?mode=ro", uri=True)
    try:
        verdict = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        dashboards = None
        with suppress(sqlite3.Error):
            dashboards = connection.execute("SELECT count(*) FROM dashboard").fetchone()[0]
    finally:
        connection.close()
    return {
        "status": "ok" if verdict == ["ok"] else "corrupt",
        "integrity_check": verdict[:5],
        "tables": tables,
        "dashboards": dashboards,
    }


@check(
    "backup/restore-drill",
    stage=3,
    title="Restore drill: Prometheus restaurado responde a mesma query, Postgres restaurado tem as mesmas linhas, "
    "grafana.db íntegro",
    needs_stack=True,
    requires=("backup/script-static",),
    params={
        "type": "object",
        "properties": {
            **_VOLUME_PARAMS,
            "queries": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "scrape_job": {"type": "string"},
            "traffic_requests": {"type": "integer", "minimum": 1},
            "seed_rows": {"type": "integer", "minimum": 1, "maximum": 1000000},
        },
        "required": ["queries", "scrape_job", "seed_rows"],
        "additionalProperties": False,
    },
)
def restore_drill(ctx: Context) -> None:
    if ctx.options.no_drill:
        ctx.skip("restore drill not run (--no-drill)")
    queries, rows = ctx.params["queries"], ctx.params["seed_rows"]
    prometheus = ctx.stack.url("prometheus")

    # 1. Something worth restoring: traffic, a fresh scrape of it, and the live answers at that scrape's time.
    _traffic(ctx, ctx.params.get("traffic_requests", 5))
    at = _scrape_after(ctx, prometheus, ctx.params["scrape_job"], time.time(), 60)
    live = {q: _instant(prometheus, q, at) for q in queries}
    empty = [q for q, answer in live.items() if not answer]
    if empty:
        ctx.error(f"the live Prometheus has no answer to {empty} at the drill time: nothing to compare with")

    # 2. A table with a known row count, through the stack's own PostgreSQL.
    psql = Psql(ctx)
    table = f"sealgate_restore_drill_{uuid.uuid4().hex[:10]}"
    database = (
        psql(
            f'CREATE TABLE public."{table}" (id integer PRIMARY KEY, note text NOT NULL);\n'
            f'INSERT INTO public."{table}" SELECT g, md5(g::text) FROM generate_series(1, {rows}) AS g;\n'
            "SELECT current_database();\n"
        )
        .splitlines()[-1]
        .strip()
    )
    drill: dict[str, Any] = {"at": at, "table": table, "database": database}
    try:
        # 3. The backup, as in production.
        dest = _fresh_dir(ctx.run_dir / "backups")
        result = run_backup(ctx, dest)
        ctx.attach("backup-restore-drill.log", result.output)
        if not result.ok:
            ctx.fail(f"the backup exited {result.exit_code}: {result.stderr.strip()[-300:]}")
        latest = {v: dest / f"{_prefix(v)}_latest.tar.gz" for v in _volumes(ctx)}
        missing = [link.name for link in latest.values() if not link.exists()]
        if missing:
            ctx.fail(f"the backup left no {missing}")

        # 4. Prometheus: the restored data answers what the live server answered.
        prom = _restore_prometheus(ctx, latest["prometheus_data"].resolve(), queries, at, live)
        drill["prometheus"] = prom
        for query in queries:
            restored = next(a["result"] for a in prom["answers"] if a["query"] == query)
            if restored != live[query]:
                ctx.finding(
                    f"restored Prometheus answers {query!r} at {at:.3f} with {_short(restored)}, the live "
                    f"one answered {_short(live[query])}"
                )

        # 5. Postgres: the seeded rows come back from the dump.
        pg = _restore_postgres(ctx, latest["postgres_data"].resolve(), table, rows, database)
        drill["postgres"] = pg
        if pg["rows_restored"] != rows:
            ctx.finding(
                f"restored Postgres has {pg['rows_restored']} rows in {table} (seeded {rows})"
                + (f": {pg['count_error']}" if pg["count_error"] else "")
            )

        # 6. Grafana: its SQLite database opens and passes an integrity check, when the volume has one.
        grafana = _integrity_grafana(ctx, latest["grafana_data"].resolve())
        drill["grafana"] = grafana
        if grafana["status"] == "corrupt":
            ctx.finding(f"grafana.db from the archive fails PRAGMA integrity_check: {grafana['integrity_check']}")
    finally:
        with suppress(Exception):
            psql(f'DROP TABLE IF EXISTS public."{table}";')
        ctx.record("drill", drill)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 200 else text[:200] + "…"

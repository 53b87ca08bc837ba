"""Backups of a stack's data volumes that are fail-closed, retained, and that restore.

The script under test is the stack description's `backup.script`, run for real against the running stack with the
arguments its `backup.args` give for the running backend (e.g. compose volumes or the local backend's data
directories), always into a temporary directory of this run. The volumes are the description's `backup.volumes`
(volume key -> the service whose data it holds), unless the spec names them.

What the checks expect of a backup script (its output contract): `--dest DIR` appended to its arguments; one archive
per volume named `<name>_<UTC stamp %Y%m%dT%H%M%SZ>.tar.gz` (mode 0600) with a `<name>_latest.tar.gz` link on it
(`<name>` is the volume key without a trailing `_data`); one line per volume on stdout,
`backup: <volume> method=<how it made a consistent copy> archive=<path> sha256=<hex>`; a non-zero exit naming the
cause on stderr when anything is missing or unwritable, leaving the destination untouched.

A backup is only proven by a restore: the drill brings the archive of the Prometheus service's volume up in a fresh
Prometheus and asks it the same questions the live one answered before the backup, restores the dump of the
database service's volume (a PostgreSQL dump) into a scratch cluster and counts a table seeded before the backup,
and opens every SQLite database found in the other volumes' archives.
"""

from __future__ import annotations

import gzip
import json
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sealgate.backends.base import StackError
from sealgate.backends.description import BackupDecl, render
from sealgate.backends.http import HttpAnswerError, Prometheus, request, send_traffic
from sealgate.checks.described import param_error, prometheus
from sealgate.fsutil import sha256_file
from sealgate.ports import free_ports
from sealgate.procs import terminate
from sealgate.sprint.context import CommandRecord, Context
from sealgate.sprint.registry import check

SCRIPT_TIMEOUT_S = 300.0
# `backup: prometheus_data method=snapshot-api archive=DEST/prometheus_…tar.gz sha256=… bytes=N` (the script's
# documented output contract, one line per volume).
REPORT_LINE = re.compile(
    r"^backup: (?P<volume>\w+) method=(?P<method>\S+) archive=(?P<archive>\S+) sha256=(?P<sha256>[0-9a-f]{64})",
    re.MULTILINE,
)

_VOLUME_PARAMS: dict[str, Any] = {
    "script": {"type": "string", "description": "default: the stack description's backup.script"},
    "volumes": {
        "type": "array",
        "description": "default: the stack description's backup.volumes",
        "items": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "minItems": 1,
        "uniqueItems": True,
    },
}


def _prefix(volume: str) -> str:
    """Archive name prefix of a volume: postgres_data -> postgres (postgres_<stamp>.tar.gz, postgres_latest.tar.gz)."""
    return volume.removesuffix("_data")


def _backup_decl(ctx: Context) -> BackupDecl:
    description = ctx.description
    if description.backup is None:
        ctx.error(f"{description.path}: no `backup:` section says how the stack is backed up")
    return description.backup


def _volumes(ctx: Context) -> list[str]:
    """The spec's volumes, else the described ones; each must be one the description knows (its service)."""
    if not ctx.params.get("volumes"):
        return list(_backup_decl(ctx).volumes)
    volumes = [str(v) for v in ctx.params["volumes"]]
    described = _backup_decl(ctx).volumes
    for index, volume in enumerate(volumes):
        if described and volume not in described:
            param_error(
                ctx,
                ("volumes", index),
                f"volume {volume!r} is not in backup.volumes of {ctx.description.path}",
                f"described: {', '.join(described)}",
            )
    return volumes


def _script_path(ctx: Context) -> str:
    return str(ctx.params.get("script") or _backup_decl(ctx).script)


def _script(ctx: Context) -> Path:
    return ctx.judge(_script_path(ctx))


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
    facts: dict[str, Any] = {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
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


def backup_args(ctx: Context) -> list[str]:
    """The backup script's arguments for the running backend, from the stack description's `backup.args`."""
    decl = _backup_decl(ctx)
    return ctx.stack.script_args(decl.args, f"{ctx.description.path}: backup.args")


def run_backup(ctx: Context, dest: Path, args: list[str] | None = None) -> CommandRecord:
    """Run the script (executed directly: its shebang and exec bit are part of what is judged) into `dest`."""
    script = _script(ctx)
    argv = [str(script), *(backup_args(ctx) if args is None else args), "--dest", _relative_dest(ctx, dest)]
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
    title="The backup script exists, is executable, starts with set -euo pipefail, passes bash -n and shellcheck, "
    "and names every volume",
    params={"type": "object", "properties": {**_VOLUME_PARAMS}, "additionalProperties": False},
)
def script_static(ctx: Context) -> None:
    relative = _script_path(ctx)
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
    title="A real backup of every volume: one valid gzip tar each, sha256 as reported, latest links, a consistent "
    "copy method",
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
    title="Retention: the script's archives older than the limit are deleted, newer and foreign files are kept",
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
    for name in ("README.txt", "otherapp_20000101T000000Z.tar.gz", f"{_prefix(volumes[0])}_manual-copy.tar.gz"):
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


def _missing_volume_args(ctx: Context, work: Path, volumes: list[str]) -> tuple[list[str], list[str], str]:
    """Arguments that point the script at a stack where a volume is missing: (args, volumes the error may name, how).

    The script's own flags are never parsed here: the description's `backup.args` template for the running backend
    is rendered again with the one fact that says where the volumes live replaced —
    * `{data_dir}` (the local backend keeps each service's data in `<data_dir>/<service>`): a directory holding the
      real one's entries, linked, except the last volume's service directory; the script can back up the others
      before it meets the missing one, the partial case that must leave nothing behind;
    * `{project}` (compose: volumes are `<project>_<key>`): a compose project that does not exist, so every volume
      is missing and the error may name any of them.
    A template that uses neither cannot be pointed at a missing volume: the check errors, saying so.
    """
    decl = _backup_decl(ctx)
    where = f"{ctx.description.path}: backup.args"
    normal = backup_args(ctx)
    facts = ctx.stack.facts()
    if "data_dir" in facts:
        missing = volumes[-1]
        service = decl.volumes.get(missing)
        if service is None:
            ctx.error(f"{ctx.description.path}: backup.volumes does not say which service {missing} belongs to")
        real = Path(facts["data_dir"])
        fake = _fresh_dir(work / f"data-without-{service}")
        for entry in sorted(real.iterdir()):
            if entry.name != service:
                (fake / entry.name).symlink_to(entry)
        kept = [f"{decl.volumes[v]}/" for v in volumes[:-1] if v in decl.volumes]
        listed = " and ".join([", ".join(kept[:-1]), kept[-1]] if len(kept) > 1 else kept) or "nothing"
        changed, names, how = (
            {**facts, "data_dir": str(fake)},
            [missing],
            f"a data directory with {listed} but no {service}/",
        )
    elif "project" in facts:
        project = f"sealgate-missing-{uuid.uuid4().hex[:8]}"
        changed, names, how = {**facts, "project": project}, volumes, f"compose project {project} (no volumes)"
    else:
        ctx.error(
            f"the {ctx.stack.name} backend has neither a {{data_dir}} nor a {{project}} fact: cannot make a volume "
            "missing"
        )
    args = render(decl.args[ctx.stack.name], changed, where)
    if args == normal:
        ctx.error(
            f"{where}: the {ctx.stack.name} arguments use neither {{data_dir}} nor {{project}}, so the script cannot "
            "be pointed at a stack with a missing volume"
        )
    return args, names, how


@check(
    "backup/fail-closed",
    title="Fail-closed: a missing volume or an unwritable destination exits non-zero naming the cause, no latest link "
    "to a partial archive",
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
    args, missing, how = _missing_volume_args(ctx, work, volumes)
    result = run_backup(ctx, dest, args)
    scenarios.append(_judge_failure(ctx, "missing volume", how, result, missing, dest, before, volumes))

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


def _answer(prom: Prometheus, query: str, at: float) -> list[dict[str, Any]]:
    """An instant query's vector, comparable across servers: (labels, value) sorted by labels, without timestamps."""
    return sorted(
        ({"metric": r.get("metric", {}), "value": r["value"][1]} for r in prom.query(query, at)),
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


class Psql:
    """SQL against the stack's own PostgreSQL (the database service a volume belongs to), as the superuser and
    database its environment declares — POSTGRES_USER / POSTGRES_DB, the official postgres image's convention, which
    the local backend follows too: `docker exec` into its container (compose: it need not publish a port), or psql
    to the local server."""

    def __init__(self, ctx: Context, service: str) -> None:
        self.ctx = ctx
        stack = ctx.stack
        environment = stack.environment(service)
        self.user = environment.get("POSTGRES_USER") or "postgres"
        self.database = environment.get("POSTGRES_DB") or self.user
        psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-U", self.user, "-d", self.database]
        if stack.containerized:
            state = stack.services().get(service)
            if state is None or not state.running or not state.container_id:
                ctx.error(f"the stack's {service} container is not running")
            self.argv = ["docker", "exec", "-i", state.container_id, *psql]
        else:
            address = urllib.parse.urlsplit(stack.url(service))
            self.argv = [*psql, "-h", address.hostname or "127.0.0.1", "-p", str(address.port)]

    def __call__(self, sql: str) -> str:
        result = self.ctx.run(self.argv, input_text=sql, timeout=60)
        if not result.ok:
            self.ctx.error(f"psql on the stack's database failed: {result.stderr.strip()[-300:]}")
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
    port = free_ports(1)[0]
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
    port = free_ports(1)[0]
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
    restored = Prometheus(base)
    try:
        while True:
            if proc.poll() is not None:
                ctx.fail(f"the restored Prometheus exited {proc.returncode}: {log_path.read_text()[-300:]}")
            with suppress(StackError):
                if request("GET", base + "/-/ready", timeout=2).ok:
                    break
            if time.monotonic() - t0 > 60:
                ctx.error("the restored Prometheus was not ready within 60 s")
            time.sleep(0.2)
        ctx.note_wait("restored Prometheus ready", time.monotonic() - t0)
        for query in queries:
            try:
                answers[query] = _answer(restored, query, at)
            except (HttpAnswerError, StackError) as exc:
                answers[query] = {"error": str(exc)}
    finally:
        terminate(proc, grace=15)
        ctx.attach("prometheus-restore.log", log_path.read_text()[-20000:])
    # Lists of {query, result}, not mappings keyed by the query: evidence redaction hides the value of any key that
    # looks like a secret name (a metric called `tokens_total` contains TOKEN).
    return {
        "blocks": sorted(blocks),
        "answers": [{"query": q, "result": a} for q, a in answers.items()],
        "live": [{"query": q, "result": live[q]} for q in answers],
        "server": f"prometheus {found.group(1) if found else '?'} on 127.0.0.1:{port}, --storage.tsdb.path=<archive>",
    }


SQLITE_MAGIC = b"SQLite format 3\x00"


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def _integrity_sqlite(ctx: Context, archive: Path, volume: str, service: str) -> dict[str, Any]:
    """Every SQLite database in the archive opens and passes PRAGMA integrity_check (a service's own database, e.g.
    a dashboard server's); with none, there is nothing to open, and the result says why."""
    extracted = _extract(ctx, archive, ctx.run_dir / f"restore-{_prefix(volume)}")
    databases = sorted(p for p in extracted.rglob("*") if p.is_file() and _is_sqlite(p))
    if not databases:
        state = ctx.stack.services().get(service)
        why = "" if state is None or state.running else f" ({service} does not run here: {state.detail})"
        return {
            "status": "skipped",
            "reason": f"the archive holds no SQLite database: {service} has not written one on this volume{why}",
            "files": len(list(extracted.rglob("*"))),
        }
    checked: dict[str, Any] = {}
    for database in databases:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            verdict = [row[0] for row in connection.execute("PRAGMA integrity_check")]
            tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            verdict, tables = [f"cannot open: {exc}"], None
        finally:
            connection.close()
        checked[database.relative_to(extracted).as_posix()] = {"integrity_check": verdict[:5], "tables": tables}
    corrupt = [name for name, facts in checked.items() if facts["integrity_check"] != ["ok"]]
    return {"status": "corrupt" if corrupt else "ok", "databases": checked, "corrupt": corrupt}


def _roles(ctx: Context, volumes: list[str]) -> dict[str, str]:
    """volume -> the role of the service whose data it holds (prometheus, database, ...)."""
    described = _backup_decl(ctx).volumes
    return {v: ctx.description.service(described[v]).role for v in volumes if v in described}


RESTORE_PARAMS: dict[str, Any] = {
    **_VOLUME_PARAMS,
    "queries": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "scrape_job": {"type": "string", "description": "default: the described main target's job"},
    "traffic_requests": {"type": "integer", "minimum": 1},
    "seed_rows": {"type": "integer", "minimum": 1, "maximum": 1000000},
}
# Where a drill takes the archives it restores from: (ctx, the backup's destination, the volumes, the backup's output)
# -> volume -> archive file on this host.
ArchiveSource = Callable[[Context, Path, list[str], str], dict[str, Path]]


def local_archives(ctx: Context, dest: Path, volumes: list[str], output: str) -> dict[str, Path]:
    """The archives the `<name>_latest.tar.gz` links of the backup's destination point at."""
    latest = {v: dest / f"{_prefix(v)}_latest.tar.gz" for v in volumes}
    missing = [link.name for link in latest.values() if not link.exists()]
    if missing:
        ctx.fail(f"the backup left no {missing}")
    return {v: link.resolve() for v, link in latest.items()}


@check(
    "backup/restore-drill",
    title="Restore drill: the restored Prometheus answers the same queries, the restored database has the same rows, "
    "every SQLite database opens intact",
    needs_stack=True,
    requires=("backup/script-static",),
    params={
        "type": "object",
        "properties": RESTORE_PARAMS,
        "required": ["queries", "seed_rows"],
        "additionalProperties": False,
    },
)
def restore_drill(ctx: Context) -> None:
    drill_restore(ctx, local_archives)


def drill_restore(ctx: Context, source: ArchiveSource) -> None:
    """Seed known data, back it up, take the archives from `source`, restore each and compare (the restore drills'
    one procedure; they differ only in where the archives come from)."""
    if ctx.options.no_drill:
        ctx.skip("restore drill not run (--no-drill)")
    queries, rows = ctx.params["queries"], ctx.params["seed_rows"]
    volumes = _volumes(ctx)
    roles = _roles(ctx, volumes)
    prometheus_volume = next((v for v, role in roles.items() if role == "prometheus"), None)
    database_volume = next((v for v, role in roles.items() if role == "database"), None)
    if prometheus_volume is None:
        param_error(ctx, ("queries",), "no backed-up volume belongs to the Prometheus service: nothing to query")
    prom = prometheus(ctx)
    job = str(ctx.params.get("scrape_job") or ctx.description.main_target().job)

    # 1. Something worth restoring: traffic, a fresh scrape of it, and the live answers at that scrape's time.
    traffic = send_traffic(ctx.stack, int(ctx.params.get("traffic_requests", 5)))
    waited = prom.wait_scrape_after(job, time.time(), 60)
    ctx.note_wait(f"a scrape of {job} after the drill's traffic", waited)
    at = prom.newest_sample(job)
    live = {q: _answer(prom, q, at) for q in queries}
    empty = [q for q, answer in live.items() if not answer]
    if empty:
        ctx.error(f"the live Prometheus has no answer to {empty} at the drill time: nothing to compare with")

    # 2. A table with a known row count, through the stack's own database.
    psql = Psql(ctx, _backup_decl(ctx).volumes[database_volume]) if database_volume else None
    table = f"sealgate_restore_drill_{uuid.uuid4().hex[:10]}"
    drill: dict[str, Any] = {"at": at, "table": table, "traffic": traffic}
    if psql is not None:
        drill["database"] = (
            psql(
                f'CREATE TABLE public."{table}" (id integer PRIMARY KEY, note text NOT NULL);\n'
                f'INSERT INTO public."{table}" SELECT g, md5(g::text) FROM generate_series(1, {rows}) AS g;\n'
                "SELECT current_database();\n"
            )
            .splitlines()[-1]
            .strip()
        )
    try:
        # 3. The backup, as in production.
        dest = _fresh_dir(ctx.run_dir / "backups")
        result = run_backup(ctx, dest)
        ctx.attach("backup-restore-drill.log", result.output)
        if not result.ok:
            ctx.fail(f"the backup exited {result.exit_code}: {result.stderr.strip()[-300:]}")
        latest = source(ctx, dest, volumes, result.stdout)
        drill["restored_from"] = {v: path.name for v, path in latest.items()}

        # 4. Prometheus: the restored data answers what the live server answered.
        restored = _restore_prometheus(ctx, latest[prometheus_volume], queries, at, live)
        drill[_prefix(prometheus_volume)] = restored
        for query in queries:
            answer = next(a["result"] for a in restored["answers"] if a["query"] == query)
            if answer != live[query]:
                ctx.finding(
                    f"restored Prometheus answers {query!r} at {at:.3f} with {_short(answer)}, the live "
                    f"one answered {_short(live[query])}"
                )

        # 5. The database: the seeded rows come back from the dump.
        if psql is not None and database_volume is not None:
            pg = _restore_postgres(ctx, latest[database_volume], table, rows, drill["database"])
            drill[_prefix(database_volume)] = pg
            if pg["rows_restored"] != rows:
                ctx.finding(
                    f"restored Postgres has {pg['rows_restored']} rows in {table} (seeded {rows})"
                    + (f": {pg['count_error']}" if pg["count_error"] else "")
                )

        # 6. Every other volume: its SQLite databases open and pass an integrity check, when it has any.
        for volume in volumes:
            if volume in (prometheus_volume, database_volume):
                continue
            service = _backup_decl(ctx).volumes.get(volume, volume)
            opened = _integrity_sqlite(ctx, latest[volume], volume, service)
            drill[_prefix(volume)] = opened
            if opened["status"] == "corrupt":
                ctx.finding(
                    f"{volume}: SQLite databases from the archive fail PRAGMA integrity_check: {opened['corrupt']}"
                )
    finally:
        if psql is not None:
            with suppress(Exception):
                psql(f'DROP TABLE IF EXISTS public."{table}";')
        ctx.record("drill", drill)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 200 else text[:200] + "…"

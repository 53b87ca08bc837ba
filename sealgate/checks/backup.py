"""The backup checks: a stack's backup script is sound, backs up every data volume, retains, fails closed, and
restores.

The script, its arguments, the volumes and the output contract the checks hold it to are analysis/backups.py; the
restore that proves a backup (a fresh Prometheus on the archive, a scratch PostgreSQL cluster on the dump, every
SQLite database opened) is analysis/restore.py. Every check runs the script for real, into a temporary directory of
this run, never into the stack's own backup location.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sealgate.analysis.backups import (
    VOLUME_PARAMS,
    archive_facts,
    archive_prefix,
    backup_args,
    backup_decl,
    backup_volumes,
    dir_listing,
    fresh_dir,
    judge_script,
    local_archives,
    make_mutable,
    next_second,
    reports_of,
    run_backup,
    script_path,
)
from sealgate.analysis.restore import RESTORE_PARAMS, drill_restore
from sealgate.api.context import CommandRecord, Context
from sealgate.api.registry import check
from sealgate.backends.description import render

# --- static --------------------------------------------------------------------------------------------------------


@check(
    "backup/script-static",
    title="The backup script exists, is executable, starts with set -euo pipefail, passes bash -n and shellcheck, "
    "and names every volume",
    titles={
        "pt-BR": (
            "O script de backup existe, é executável, começa com set -euo pipefail, passa bash -n e shellcheck, "
            "e nomeia todo volume"
        )
    },
    params={"type": "object", "properties": {**VOLUME_PARAMS}, "additionalProperties": False},
)
def script_static(ctx: Context) -> None:
    relative = script_path(ctx)
    path = judge_script(ctx)
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
    for volume in backup_volumes(ctx):
        # The volume itself, or its archive prefix (postgres for postgres_data) in the script's list of names.
        if not re.search(rf"\b{re.escape(volume)}\b", text) and not re.search(rf"\b{archive_prefix(volume)}\b", text):
            ctx.finding(f"the script never names volume {volume}", file=relative)
    ctx.record("volumes_named", backup_volumes(ctx))


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
        prefix = archive_prefix(volume)
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
    titles={
        "pt-BR": (
            "Backup real de todo volume: um gzip tar válido para cada, sha256 como reportado, links latest, "
            "método de cópia consistente"
        )
    },
    needs_stack=True,
    requires=("backup/script-static",),
    params={
        "type": "object",
        "properties": {
            **VOLUME_PARAMS,
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
    volumes = backup_volumes(ctx)
    dest = fresh_dir(ctx.run_dir / "backups")
    result = run_backup(ctx, dest)
    ctx.attach("backup-run-live.log", result.output)
    ctx.record("mode", ctx.stack.name)
    ctx.record("exit_code", result.exit_code)
    if not result.ok:
        ctx.fail(f"the backup exited {result.exit_code}: {result.stderr.strip()[-300:]}")
    facts = _judge_archives(ctx, dest, result.stdout, volumes)
    ctx.record("archives", facts)
    ctx.record("methods", {v: f.get("method") for v, f in facts.items()})
    ctx.record("destination", dir_listing(dest))


# --- retention -----------------------------------------------------------------------------------------------------

DAY = 86400.0


@check(
    "backup/retention",
    title="Retention: the script's archives older than the limit are deleted, newer and foreign files are kept",
    titles={"pt-BR": "Retenção: arquivos do script mais antigos que o limite apagados, mais novos e alheios mantidos"},
    needs_stack=True,
    requires=("backup/script-static",),
    params={
        "type": "object",
        "properties": {**VOLUME_PARAMS, "retention_days": {"type": "integer", "minimum": 1}},
        "required": ["retention_days"],
        "additionalProperties": False,
    },
)
def retention(ctx: Context) -> None:
    volumes = backup_volumes(ctx)
    days = ctx.params["retention_days"]
    dest = fresh_dir(ctx.run_dir / "backups")
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
        archive = next(iter(sorted(dest.glob(f"{archive_prefix(volume)}_*[0-9]Z.tar.gz"))), None)
        if archive is None:
            ctx.fail(f"the first backup wrote no archive for {volume}")
        os.utime(archive, (now - age * DAY, now - age * DAY))
        plan[archive.name] = {"age_days": age, "expected": "kept" if age <= days else "deleted"}
    # Files that are not this script's archives must survive whatever their age.
    for name in ("README.txt", "otherapp_20000101T000000Z.tar.gz", f"{archive_prefix(volumes[0])}_manual-copy.tar.gz"):
        foreign = dest / name
        foreign.write_text("not a backup of this script\n")
        os.utime(foreign, (now - 30 * DAY, now - 30 * DAY))
        plan[name] = {"age_days": 30, "expected": "kept"}
    next_second()
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
        link = dest / f"{archive_prefix(volume)}_latest.tar.gz"
        if not (link.is_symlink() and link.exists()):
            ctx.finding(f"{link.name} is dangling or missing after retention")
    ctx.record("retention_days", days)
    ctx.record("plan", plan)
    ctx.record("destination_after", dir_listing(dest))


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
        make_mutable(path)


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
    decl = backup_decl(ctx)
    where = f"{ctx.description.path}: backup.args"
    normal = backup_args(ctx)
    facts = ctx.stack.facts()
    if "data_dir" in facts:
        missing = volumes[-1]
        service = decl.volumes.get(missing)
        if service is None:
            ctx.error(f"{ctx.description.path}: backup.volumes does not say which service {missing} belongs to")
        real = Path(facts["data_dir"])
        fake = fresh_dir(work / f"data-without-{service}")
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
    titles={
        "pt-BR": (
            "Fail-closed: volume ausente ou destino sem escrita -> saída não-zero nomeando a causa, sem link latest "
            "para arquivo parcial"
        )
    },
    needs_stack=True,
    requires=("backup/script-static",),
    params={"type": "object", "properties": {**VOLUME_PARAMS}, "additionalProperties": False},
)
def fail_closed(ctx: Context) -> None:
    volumes = backup_volumes(ctx)
    work = ctx.run_dir
    dest = fresh_dir(work / "backups")
    # A good backup first: a failed run afterwards must leave its latest links on these complete archives.
    good = run_backup(ctx, dest)
    if not good.ok:
        ctx.fail(f"the reference backup exited {good.exit_code}: {good.stderr.strip()[-300:]}")
    before = dir_listing(dest)
    scenarios = []

    next_second()
    args, missing, how = _missing_volume_args(ctx, work, volumes)
    result = run_backup(ctx, dest, args)
    scenarios.append(_judge_failure(ctx, "missing volume", how, result, missing, dest, before, volumes))

    blocked = fresh_dir(work / "backups-unwritable")
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
    after = dir_listing(dest) if dest.is_dir() else {}
    outcome["destination_changed"] = sorted(set(after.items()) ^ set(before.items()))
    if after != before:
        ctx.finding(f"{scenario}: the failed run changed the backup directory: {outcome['destination_changed']}")
    for volume in volumes:
        link = dest / f"{archive_prefix(volume)}_latest.tar.gz"
        if link.is_symlink():
            target = link.resolve()
            facts = archive_facts(target) if target.is_file() else {"valid": False, "error": "dangling"}
            if not facts["valid"]:
                ctx.finding(f"{scenario}: {link.name} points at a partial archive ({facts.get('error')})")
    return outcome


# --- restore drill ---------------------------------------------------------------------------------------------------


@check(
    "backup/restore-drill",
    title="Restore drill: the restored Prometheus answers the same queries, the restored database has the same rows, "
    "every SQLite database opens intact",
    titles={
        "pt-BR": (
            "Restore drill: o Prometheus restaurado responde as mesmas queries, o banco restaurado tem as mesmas "
            "linhas, todo banco SQLite abre íntegro"
        )
    },
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

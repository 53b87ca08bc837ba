"""A stack's backup script: what it must print and write (its output contract), and running it for real.

The script is the stack description's `backup.script` (or the spec's `script`), run against the running stack with the
arguments its `backup.args` give for the running backend (e.g. compose volumes or the local backend's data
directories), always into a temporary directory of this run. The volumes are the description's `backup.volumes`
(volume key -> the service whose data it holds), unless the spec names them.

What the checks expect of a backup script (its output contract): `--dest DIR` appended to its arguments; one archive
per volume named `<name>_<UTC stamp %Y%m%dT%H%M%SZ>.tar.gz` (mode 0600) with a `<name>_latest.tar.gz` link on it
(`<name>` is the volume key without a trailing `_data`, its `archive_prefix`); one line per volume on stdout,
`backup: <volume> method=<how it made a consistent copy> archive=<path> sha256=<hex>` (`REPORT_LINE`); a non-zero exit
naming the cause on stderr when anything is missing or unwritable, leaving the destination untouched.

Shared by the backup checks (checks/backup.py), the offsite checks (checks/offsite.py) and the restore drill
(analysis/restore.py); it registers no check.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import tarfile
import time
import zlib
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from sealgate.analysis.described import param_error
from sealgate.api.context import CommandRecord, Context
from sealgate.api.params import REPO_PATH
from sealgate.backends.description import BackupDecl
from sealgate.kernel.fsutil import sha256_file

SCRIPT_TIMEOUT_S = 300.0
# `backup: prometheus_data method=snapshot-api archive=DEST/prometheus_…tar.gz sha256=… bytes=N` (the script's
# documented output contract, one line per volume).
REPORT_LINE = re.compile(
    r"^backup: (?P<volume>\w+) method=(?P<method>\S+) archive=(?P<archive>\S+) sha256=(?P<sha256>[0-9a-f]{64})",
    re.MULTILINE,
)

# The parameters of every check that runs the script: which script, which volumes (JSON schema properties).
VOLUME_PARAMS: dict[str, Any] = {
    "script": {**REPO_PATH, "description": "default: the stack description's backup.script"},
    "volumes": {
        "type": "array",
        "description": "default: the stack description's backup.volumes",
        "items": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "minItems": 1,
        "uniqueItems": True,
    },
}


# --- what is backed up, and by which script -----------------------------------------------------------------------


def archive_prefix(volume: str) -> str:
    """Archive name prefix of a volume: postgres_data -> postgres (postgres_<stamp>.tar.gz, postgres_latest.tar.gz)."""
    return volume.removesuffix("_data")


def backup_decl(ctx: Context) -> BackupDecl:
    """The stack description's `backup:` section (the check errors when there is none)."""
    description = ctx.description
    if description.backup is None:
        ctx.error(f"{description.path}: no `backup:` section says how the stack is backed up")
    return description.backup


def backup_volumes(ctx: Context) -> list[str]:
    """The spec's volumes, else the described ones; each must be one the description knows (its service)."""
    if not ctx.params.get("volumes"):
        return list(backup_decl(ctx).volumes)
    volumes = [str(v) for v in ctx.params["volumes"]]
    described = backup_decl(ctx).volumes
    for index, volume in enumerate(volumes):
        if described and volume not in described:
            param_error(
                ctx,
                ("volumes", index),
                f"volume {volume!r} is not in backup.volumes of {ctx.description.path}",
                f"described: {', '.join(described)}",
            )
    return volumes


def script_path(ctx: Context) -> str:
    """The backup script, relative to the repository: the spec's `script`, else the description's."""
    return str(ctx.params.get("script") or backup_decl(ctx).script)


def judge_script(ctx: Context) -> Path:
    """The backup script as a judged file of this stage (an evidence subject); the check fails when it is missing."""
    return ctx.judge(script_path(ctx))


# --- reading an archive ----------------------------------------------------------------------------------------------


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


# --- running the script ----------------------------------------------------------------------------------------------


def _relative_dest(ctx: Context, dest: Path) -> str:
    """The destination as the script is told it: relative to the repository when inside it, so evidence does not
    carry this machine's absolute paths."""
    try:
        return dest.resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return str(dest)


def backup_args(ctx: Context) -> list[str]:
    """The backup script's arguments for the running backend, from the stack description's `backup.args`."""
    decl = backup_decl(ctx)
    return ctx.stack.script_args(decl.args, f"{ctx.description.path}: backup.args")


def run_backup(ctx: Context, dest: Path, args: list[str] | None = None) -> CommandRecord:
    """Run the script (executed directly: its shebang and exec bit are part of what is judged) into `dest`."""
    script = judge_script(ctx)
    argv = [str(script), *(backup_args(ctx) if args is None else args), "--dest", _relative_dest(ctx, dest)]
    return ctx.run(argv, timeout=SCRIPT_TIMEOUT_S, cwd=ctx.root)


def reports_of(output: str) -> dict[str, dict[str, str]]:
    """The script's `backup: <volume> method=… archive=… sha256=…` lines, by volume."""
    return {m["volume"]: m.groupdict() for m in REPORT_LINE.finditer(output)}


def next_second() -> None:
    """Archive names carry a one-second UTC stamp: make sure the next run gets a new one."""
    time.sleep(1.05 - (time.time() % 1.0))


# --- destinations ----------------------------------------------------------------------------------------------------


def fresh_dir(path: Path) -> Path:
    """`path` as a new empty directory (whatever was there before removed, immutable or read-only included)."""
    if path.exists():
        make_mutable(path)
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def make_mutable(path: Path) -> None:
    """Undo what made a directory unwritable (chattr +i, chmod 0555), so it can be written or removed again."""
    if shutil.which("chattr"):
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)
    with suppress(OSError):
        path.chmod(0o755)


def dir_listing(dest: Path) -> dict[str, str]:
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


# --- where the archives of a backup are --------------------------------------------------------------------------


# Where a drill takes the archives it restores from: (ctx, the backup's destination, the volumes, the backup's output)
# -> volume -> archive file on this host.
ArchiveSource = Callable[[Context, Path, list[str], str], dict[str, Path]]


def local_archives(ctx: Context, dest: Path, volumes: list[str], output: str) -> dict[str, Path]:
    """The archives the `<name>_latest.tar.gz` links of the backup's destination point at."""
    latest = {v: dest / f"{archive_prefix(v)}_latest.tar.gz" for v in volumes}
    missing = [link.name for link in latest.values() if not link.exists()]
    if missing:
        ctx.fail(f"the backup left no {missing}")
    return {v: link.resolve() for v, link in latest.items()}

"""Offsite copies of the backups in S3-compatible storage: copied intact, retained for N days, and restorable.

The backup script is the stack description's `backup.script`, run for real with the description's `backup.args` for
the running backend (as the backup checks run it): copying offsite is part of the project's backup, not something
these checks do for it. The storage is the described service with role `storage` (or `with.service`), reached at the
address the running backend gives it; the bucket and key prefix the copies must land in are the spec's.

What the checks expect of a backup script, beyond the backup checks' contract (analysis/backups.py): one line per
volume on stdout for its offsite copy,

    backup: offsite <volume> object=s3://<bucket>/<key> sha256=<hex> bytes=<n>

with the key named like the local archive, `[<prefix>/]<name>_<UTC stamp %Y%m%dT%H%M%SZ>.tar.gz`, and an offsite
retention that deletes the script's own objects whose *name* stamp is older than the retention. The age is read from
the name because S3 sets an object's LastModified itself, at upload, and no client can back-date it: the only way to
make an object that is really "40 days old" for a test — and the only age a restore cares about, the time the data
was captured — is the backup time the uploader writes into the object's name.

The checks read the bucket themselves (sealgate.backends.s3: the S3 REST API with Signature V4), independently of the
client the script uploads with, with the credentials in the environment variables the spec names (never recorded).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import time
from pathlib import Path
from typing import Any

from sealgate.analysis.backups import (
    REPORT_LINE,
    VOLUME_PARAMS,
    archive_prefix,
    backup_volumes,
    fresh_dir,
    next_second,
    reports_of,
    run_backup,
)
from sealgate.analysis.described import service_by_role
from sealgate.analysis.restore import RESTORE_PARAMS, drill_restore
from sealgate.api.context import Context
from sealgate.api.registry import check
from sealgate.backends.errors import ServiceNotRunning, StackError
from sealgate.backends.s3 import S3, S3Error, S3Object
from sealgate.kernel.fsutil import sha256_file

DAY = 86400.0
OFFSITE_LINE = re.compile(
    r"^backup: offsite (?P<volume>\w+) object=s3://(?P<bucket>[^/\s]+)/(?P<key>\S+) sha256=(?P<sha256>[0-9a-f]{64})"
    r"(?: bytes=(?P<bytes>\d+))?",
    re.MULTILINE,
)
STAMPED = re.compile(r"^(?P<stem>.*_)(?P<stamp>\d{8}T\d{6}Z)(?P<ext>\.tar\.gz)$")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"

STORAGE_PARAMS: dict[str, Any] = {
    "bucket": {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "description": "the S3 bucket"},
    "prefix": {"type": "string", "description": "key prefix of the copies (no leading or trailing /); default none"},
    "service": {"type": "string", "description": "the S3-compatible storage service; default: role storage"},
    "access_key_env": {
        "type": "string",
        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
        "description": "variable holding the storage's access key id (default AWS_ACCESS_KEY_ID)",
    },
    "secret_key_env": {
        "type": "string",
        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
        "description": "variable holding the storage's secret access key (default AWS_SECRET_ACCESS_KEY)",
    },
    "region": {"type": "string", "minLength": 1, "description": "signing region (default us-east-1)"},
}


def offsite_reports(output: str) -> dict[str, dict[str, str]]:
    return {m["volume"]: m.groupdict() for m in OFFSITE_LINE.finditer(output)}


def _key_prefix(ctx: Context) -> str:
    prefix = str(ctx.params.get("prefix") or "").strip("/")
    return f"{prefix}/" if prefix else ""


def storage(ctx: Context) -> S3:
    """The S3 client on the described storage service of the running stack (skipped where it does not run)."""
    service = service_by_role(ctx, "storage", "service")
    try:
        endpoint = ctx.stack.url(service)
    except ServiceNotRunning as exc:
        ctx.skip(f"the storage {service} does not run on this stack ({ctx.stack.name}): {exc.reason}")
    names = (str(ctx.params.get("access_key_env") or "AWS_ACCESS_KEY_ID"),
             str(ctx.params.get("secret_key_env") or "AWS_SECRET_ACCESS_KEY"))  # fmt: skip
    unset = [name for name in names if not os.environ.get(name)]
    if unset:
        ctx.error(f"{' and '.join(unset)} not set: the check reads the bucket with the storage's credentials")
    ctx.record("storage", {"service": service, "endpoint": endpoint, "credentials_from": list(names)})
    return S3(endpoint, os.environ[names[0]], os.environ[names[1]], str(ctx.params.get("region") or "us-east-1"))


def _listing(client: S3, bucket: str, prefix: str) -> dict[str, S3Object]:
    return {o.key: o for o in client.objects(bucket, prefix)}


def _backup(ctx: Context, dest: Path, what: str) -> str:
    result = run_backup(ctx, dest)
    ctx.attach(f"backup-{what}.log", result.output)
    if not result.ok:
        ctx.fail(f"the backup ({what}) exited {result.exit_code}: {result.stderr.strip()[-300:]}")
    return result.stdout


# --- the copy --------------------------------------------------------------------------------------------------------


@check(
    "backup/offsite-copy",
    title="Every archive of a real backup has its offsite copy in the bucket, byte for byte (sha256 of the object "
    "downloaded back = sha256 of the local archive)",
    titles={
        "pt-BR": (
            "Todo arquivo de um backup real tem sua cópia offsite no bucket, idêntica (sha256 do objeto "
            "baixado = sha256 do arquivo local)"
        )
    },
    needs_stack=True,
    requires=("backup/script-static",),
    params={
        "type": "object",
        "properties": {**VOLUME_PARAMS, **STORAGE_PARAMS},
        "required": ["bucket"],
        "additionalProperties": False,
    },
)
def offsite_copy(ctx: Context) -> None:
    volumes = backup_volumes(ctx)
    bucket, prefix = str(ctx.params["bucket"]), _key_prefix(ctx)
    client = storage(ctx)
    dest = fresh_dir(ctx.run_dir / "backups")
    output = _backup(ctx, dest, "offsite-copy")
    local = reports_of(output)
    offsite = offsite_reports(output)
    downloads = fresh_dir(ctx.run_dir / "offsite-downloads")
    try:
        held = _listing(client, bucket, prefix)
    except S3Error as exc:
        if exc.code != "NoSuchBucket":
            ctx.fail(f"s3://{bucket}/{prefix} cannot be listed: {exc}")
        ctx.finding(f"bucket {bucket} does not exist at {client.endpoint}: no copy can be in it")
        held = {}
    copies: dict[str, dict[str, Any]] = {}
    for volume in volumes:
        report = local.get(volume)
        if report is None:
            ctx.finding(f"{volume}: the backup's output has no `backup: {volume} method=…` line (no local archive)")
            continue
        archive = dest / Path(report["archive"]).name
        expected_key = f"{prefix}{archive.name}"
        facts: dict[str, Any] = {"archive": archive.name, "archive_sha256": sha256_file(archive)}
        copies[volume] = facts
        line = offsite.get(volume)
        if line is None:
            there = "holds" if expected_key in held else "does not hold"
            ctx.finding(
                f"{volume}: the backup reported no offsite copy (`backup: offsite {volume} object=…`), and "
                f"s3://{bucket}/{prefix} {there} {archive.name}"
            )
            continue
        facts["object"] = f"s3://{line['bucket']}/{line['key']}"
        if line["bucket"] != bucket or not line["key"].startswith(prefix):
            ctx.finding(f"{volume}: copied to {facts['object']}, not under s3://{bucket}/{prefix}")
            continue
        if Path(line["key"]).name != archive.name:
            ctx.finding(f"{volume}: the offsite object is named {Path(line['key']).name}, its archive {archive.name}")
        target = downloads / f"{volume}.tar.gz"
        try:
            facts["bytes"] = client.download(line["bucket"], line["key"], target)
            facts["metadata"] = client.head(line["bucket"], line["key"]).metadata
        except S3Error as exc:
            ctx.finding(f"{volume}: {facts['object']} cannot be read back: {exc}")
            continue
        facts["object_sha256"] = sha256_file(target)
        if facts["object_sha256"] != facts["archive_sha256"]:
            ctx.finding(
                f"{volume}: the offsite copy {facts['object']} has sha256 {facts['object_sha256']}, its local archive "
                f"{archive.name} has {facts['archive_sha256']}: the copy is not the backup"
            )
        if line["sha256"] != facts["archive_sha256"]:
            ctx.finding(f"{volume}: the script reports sha256 {line['sha256']} for {facts['object']}, the archive "
                        f"has {facts['archive_sha256']}")  # fmt: skip
    ctx.record("bucket", bucket)
    ctx.record("prefix", prefix)
    ctx.record("copies", copies)


# --- retention -------------------------------------------------------------------------------------------------------


def _restamped(key: str, when: float) -> str:
    match = STAMPED.match(key)
    assert match is not None
    stamp = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).strftime(STAMP_FORMAT)
    return f"{match['stem']}{stamp}{match['ext']}"


@check(
    "backup/offsite-retention",
    title="Offsite retention: the script's objects older than the limit (by the backup time in their name) are "
    "deleted, newer ones and foreign objects kept",
    titles={
        "pt-BR": (
            "Retenção offsite: objetos do script mais antigos que o limite (pela data de backup no nome) "
            "apagados, mais novos e alheios mantidos"
        )
    },
    needs_stack=True,
    requires=("backup/script-static",),
    params={
        "type": "object",
        "properties": {**VOLUME_PARAMS, **STORAGE_PARAMS, "retention_days": {"type": "integer", "minimum": 1}},
        "required": ["bucket", "retention_days"],
        "additionalProperties": False,
    },
)
def offsite_retention(ctx: Context) -> None:
    volumes = backup_volumes(ctx)
    bucket, prefix, days = str(ctx.params["bucket"]), _key_prefix(ctx), int(ctx.params["retention_days"])
    client = storage(ctx)
    dest = fresh_dir(ctx.run_dir / "backups")
    # A first real backup names the objects as the script names its own; copies of one under back-dated names are
    # then the script's objects from other days. Ages keep a day of margin on both sides of the limit.
    first = offsite_reports(_backup(ctx, dest, "offsite-retention-first"))
    if volumes[0] not in first or not STAMPED.match(first[volumes[0]]["key"]):
        ctx.fail(
            f"the first backup reported no offsite copy of {volumes[0]} named <name>_<UTC stamp>.tar.gz, so nothing "
            "can be retained"
        )
    model = first[volumes[0]]
    data = next(dest.glob(f"{archive_prefix(volumes[0])}_*[0-9]Z.tar.gz")).read_bytes()
    now = time.time()
    plan: dict[str, dict[str, Any]] = {}

    def plant(key: str, age_days: int, expected: str, why: str) -> None:
        stamp = datetime.datetime.fromtimestamp(now - age_days * DAY, datetime.timezone.utc).strftime(STAMP_FORMAT)
        client.upload(bucket, key, data, {"backup-time": stamp, "planted-by": "sealgate"})
        plan[key] = {"age_days": age_days, "expected": expected, "why": why, "planted": True}

    try:
        try:
            for age, expected, why in (
                (days + 2, "deleted", "the script's, older than the limit"),
                (days + 40, "deleted", "the script's, far older than the limit"),
                (days - 1, "kept", "the script's, within the limit"),
            ):
                plant(_restamped(model["key"], now - age * DAY), age, expected, why)
            for name in (
                "README.txt",
                "otherapp_20000101T000000Z.tar.gz",
                f"{archive_prefix(volumes[0])}_manual-copy.tar.gz",
            ):
                plant(f"{prefix}{name}", 9000, "kept", "not the script's object")
            if prefix:
                elsewhere = f"elsewhere/{Path(_restamped(model['key'], now - 400 * DAY)).name}"
                plant(elsewhere, 400, "kept", "outside the script's prefix")
        except S3Error as exc:
            ctx.error(f"cannot put the back-dated objects into s3://{bucket}: {exc}")
        for volume, line in first.items():
            plan[line["key"]] = {"age_days": 0, "expected": "kept", "why": f"this run's copy of {volume}"}
        next_second()
        second = offsite_reports(_backup(ctx, dest, "offsite-retention-second"))
        try:
            held = set(_listing(client, bucket, ""))
        except S3Error as exc:
            ctx.fail(f"s3://{bucket} cannot be listed after the second backup: {exc}")
        for key, item in plan.items():
            item["actual"] = "kept" if key in held else "deleted"
            if item["actual"] != item["expected"]:
                ctx.finding(
                    f"s3://{bucket}/{key} ({item['why']}, {item['age_days']} days old by its name) was "
                    f"{item['actual']}, expected {item['expected']} with a {days}-day retention"
                )
        for volume, line in second.items():
            if line["key"] not in held:
                ctx.finding(f"the second backup's copy of {volume} (s3://{bucket}/{line['key']}) is not in the bucket")
    finally:
        # What this check planted goes, whatever happened: the bucket is left holding the real backups only.
        for key in [k for k, item in plan.items() if item.get("planted")]:
            # Already gone (the retention deleted it), or the storage stopped answering: nothing more to do.
            with contextlib.suppress(S3Error, StackError):
                client.delete(bucket, key)
    ctx.record("retention_days", days)
    ctx.record("bucket", bucket)
    ctx.record("plan", plan)


# --- restore drill from the offsite copy ------------------------------------------------------------------------------


def _offsite_archives(ctx: Context, dest: Path, volumes: list[str], output: str) -> dict[str, Path]:
    """The archives of this backup, downloaded from the bucket after every local archive of the destination is
    deleted: what is restored can only have come from the offsite copy."""
    bucket, prefix = str(ctx.params["bucket"]), _key_prefix(ctx)
    client = storage(ctx)
    local = {m["volume"]: Path(m["archive"]).name for m in REPORT_LINE.finditer(output)}
    copies = offsite_reports(output)
    removed = sorted(p.name for p in dest.iterdir() if p.name.endswith(".tar.gz"))
    for path in dest.iterdir():
        if path.name.endswith(".tar.gz"):
            path.unlink()
    ctx.record("local_archives_deleted", removed)
    downloaded = fresh_dir(ctx.run_dir / "offsite-restore")
    archives: dict[str, Path] = {}
    for volume in volumes:
        line = copies.get(volume)
        if line is None or line["bucket"] != bucket or not line["key"].startswith(prefix):
            ctx.fail(f"{volume}: the backup reported no offsite copy under s3://{bucket}/{prefix}: nothing to restore")
        target = downloaded / Path(line["key"]).name
        try:
            client.download(bucket, line["key"], target)
        except S3Error as exc:
            ctx.fail(f"{volume}: s3://{bucket}/{line['key']} cannot be downloaded: {exc}")
        if sha256_file(target) != line["sha256"]:
            ctx.fail(f"{volume}: s3://{bucket}/{line['key']} downloaded with another sha256 than its backup's")
        if target.name != local.get(volume):
            ctx.finding(f"{volume}: the offsite copy {target.name} is not this backup's archive {local.get(volume)}")
        archives[volume] = target
    ctx.record("restored_from_offsite", {v: f"s3://{bucket}/{copies[v]['key']}" for v in archives})
    return archives


@check(
    "backup/offsite-restore-drill",
    title="Restore drill from the offsite copy: local archives deleted, the bucket's copies restored — Prometheus "
    "answers the same queries, the database has the same rows, every SQLite database opens",
    titles={
        "pt-BR": (
            "Restauração a partir da cópia offsite (arquivos locais apagados): Prometheus responde as mesmas "
            "queries, o banco tem as mesmas linhas, todo SQLite abre íntegro"
        )
    },
    needs_stack=True,
    requires=("backup/script-static",),
    params={
        "type": "object",
        "properties": {**RESTORE_PARAMS, **STORAGE_PARAMS},
        "required": ["queries", "seed_rows", "bucket"],
        "additionalProperties": False,
    },
)
def offsite_restore_drill(ctx: Context) -> None:
    storage(ctx)  # the storage must run here before anything is seeded
    drill_restore(ctx, _offsite_archives)

"""Restoring a stack's backup archives, to prove them: a backup is only proven by a restore.

The drill (`drill_restore`, the one procedure of the backup and offsite restore drills; they differ only in where the
archives come from) seeds known data, runs the backup as in production, then:

* brings the archive of the Prometheus service's volume up in a fresh Prometheus (on a free port, nothing scraped)
  and asks it the same questions the live one answered before the backup;
* restores the dump of the database service's volume (a PostgreSQL dump) into a scratch cluster — never into the
  live server — and counts a table seeded before the backup;
* opens every SQLite database found in the other volumes' archives (PRAGMA integrity_check).

Each volume's restore is timed, to a usable state (the restored Prometheus answered every query, the scratch
PostgreSQL counted the seeded rows, the SQLite databases passed their check), and recorded as the check's
`restore_times`: `{volume: {"seconds": s, "rto_s": stated or None}}`. The time runs from the drill starting to fetch
the archives (from the backup's destination, or downloaded from the offsite bucket) until that volume is usable; the
archives are fetched together, so each volume's time includes the whole fetch — an upper bound, never an
under-count. A spec may state an RTO per volume (`rto_s: {prometheus_data: 120}`): a restore over it fails the check,
naming the volume and both numbers.

It registers no check; the backup script's contract and running it are analysis/backups.py.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
import urllib.parse
import uuid
import zlib
from contextlib import suppress
from pathlib import Path
from typing import Any

from sealgate.analysis.backups import (
    VOLUME_PARAMS,
    ArchiveSource,
    archive_prefix,
    backup_decl,
    backup_volumes,
    fresh_dir,
    read_gzip_to_end,
    run_backup,
)
from sealgate.analysis.described import param_error, prometheus, spec_entry
from sealgate.api.context import Context, Server
from sealgate.backends.errors import StackError
from sealgate.backends.http import HttpAnswerError, Prometheus, send_traffic
from sealgate.kernel.ports import free_ports
from sealgate.model.results import Severity

RESTORE_PARAMS: dict[str, Any] = {
    **VOLUME_PARAMS,
    "queries": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "scrape_job": {"type": "string", "description": "default: the described main target's job"},
    "traffic_requests": {"type": "integer", "minimum": 1},
    "seed_rows": {"type": "integer", "minimum": 1, "maximum": 1000000},
    "rto_s": {
        "type": "object",
        "description": "volume -> the most seconds its restore may take, from fetching the archives to a usable "
        "state (its recovery time objective); a restore over it fails the check",
        "propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
    },
}
PROMETHEUS_READY_S = 60.0
SQLITE_MAGIC = b"SQLite format 3\x00"


# --- the drill -------------------------------------------------------------------------------------------------------


def drill_restore(ctx: Context, source: ArchiveSource) -> None:
    """Seed known data, back it up, take the archives from `source`, restore each and compare (the restore drills'
    one procedure; they differ only in where the archives come from)."""
    if ctx.options.no_drill:
        ctx.skip("restore drill not run (--no-drill)")
    queries, rows = ctx.params["queries"], ctx.params["seed_rows"]
    volumes = backup_volumes(ctx)
    roles = _roles(ctx, volumes)
    prometheus_volume = next((v for v, role in roles.items() if role == "prometheus"), None)
    database_volume = next((v for v, role in roles.items() if role == "database"), None)
    if prometheus_volume is None:
        param_error(ctx, ("queries",), "no backed-up volume belongs to the Prometheus service: nothing to query")
    rto = _stated_rto(ctx, volumes)
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
    psql = Psql(ctx, backup_decl(ctx).volumes[database_volume]) if database_volume else None
    table = f"sealgate_restore_drill_{uuid.uuid4().hex[:10]}"
    drill: dict[str, Any] = {"at": at, "table": table, "traffic": traffic}
    restore_times: dict[str, dict[str, float | None]] = {}
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
        dest = fresh_dir(ctx.run_dir / "backups")
        result = run_backup(ctx, dest)
        ctx.attach("backup-restore-drill.log", result.output)
        if not result.ok:
            ctx.fail(f"the backup exited {result.exit_code}: {result.stderr.strip()[-300:]}")
        fetch_started = time.monotonic()
        latest = source(ctx, dest, volumes, result.stdout)
        fetch_s = time.monotonic() - fetch_started
        drill["restored_from"] = {v: path.name for v, path in latest.items()}
        drill["fetch_s"] = round(fetch_s, 3)

        def usable_after(volume: str, restore_s: float) -> None:
            restore_times[volume] = {"seconds": round(fetch_s + restore_s, 3), "rto_s": rto.get(volume)}

        # 4. Prometheus: the restored data answers what the live server answered.
        restored, restore_s = _restore_prometheus(ctx, latest[prometheus_volume], queries, at, live)
        usable_after(prometheus_volume, restore_s)
        drill[archive_prefix(prometheus_volume)] = restored
        for query in queries:
            answer = next(a["result"] for a in restored["answers"] if a["query"] == query)
            if answer != live[query]:
                ctx.finding(
                    f"restored Prometheus answers {query!r} at {at:.3f} with {_short(answer)}, the live "
                    f"one answered {_short(live[query])}"
                )

        # 5. The database: the seeded rows come back from the dump.
        if psql is not None and database_volume is not None:
            pg, restore_s = _restore_postgres(ctx, latest[database_volume], table, rows, drill["database"])
            usable_after(database_volume, restore_s)
            drill[archive_prefix(database_volume)] = pg
            if pg["rows_restored"] != rows:
                ctx.finding(
                    f"restored Postgres has {pg['rows_restored']} rows in {table} (seeded {rows})"
                    + (f": {pg['count_error']}" if pg["count_error"] else "")
                )

        # 6. Every other volume: its SQLite databases open and pass an integrity check, when it has any.
        for volume in volumes:
            if volume in (prometheus_volume, database_volume):
                continue
            service = backup_decl(ctx).volumes.get(volume, volume)
            started = time.monotonic()
            opened = _integrity_sqlite(ctx, latest[volume], volume, service)
            if opened["status"] != "skipped":  # nothing was opened: no time to a usable state to speak of
                usable_after(volume, time.monotonic() - started)
            drill[archive_prefix(volume)] = opened
            if opened["status"] == "corrupt":
                ctx.finding(
                    f"{volume}: SQLite databases from the archive fail PRAGMA integrity_check: {opened['corrupt']}"
                )

        # 7. Each restore against its stated RTO.
        _judge_rto(ctx, rto, restore_times)
    finally:
        if psql is not None:
            with suppress(Exception):
                psql(f'DROP TABLE IF EXISTS public."{table}";')
        ctx.record("drill", drill)
        ctx.record("restore_times", restore_times)


def _stated_rto(ctx: Context, volumes: list[str]) -> dict[str, float]:
    """The spec's RTO per volume (`rto_s`); a volume this drill does not restore is a parameter error at its line."""
    stated = {str(k): float(v) for k, v in (ctx.params.get("rto_s") or {}).items()}
    for volume in stated:
        if volume not in volumes:
            param_error(
                ctx,
                ("rto_s", volume),
                f"volume {volume!r} is not one this drill restores",
                f"it restores: {', '.join(volumes)}",
            )
    return stated


def _judge_rto(ctx: Context, rto: dict[str, float], restore_times: dict[str, dict[str, float | None]]) -> None:
    """A restore slower than its stated RTO is a finding at the RTO's line of the spec, naming both numbers; a
    stated RTO of a volume the drill could not time (nothing in its archive to open) is said, as a warning."""
    located, base = spec_entry(ctx)
    for volume, limit in sorted(rto.items()):
        line = located.line_of((*base, "rto_s", volume)) if located is not None else None
        measured = restore_times.get(volume)
        if measured is None:
            ctx.finding(
                f"{volume}: its RTO of {limit:g} s is not judged: the drill restored nothing of it to a usable state",
                file=ctx.spec.relpath,
                line=line,
                severity=Severity.WARNING,
            )
            continue
        seconds = float(measured["seconds"] or 0.0)
        if seconds > limit:
            ctx.finding(
                f"{volume}: restored to a usable state in {seconds:.1f} s, over its RTO of {limit:g} s",
                file=ctx.spec.relpath,
                line=line,
            )


def _roles(ctx: Context, volumes: list[str]) -> dict[str, str]:
    """volume -> the role of the service whose data it holds (prometheus, database, ...)."""
    described = backup_decl(ctx).volumes
    return {v: ctx.description.service(described[v]).role for v in volumes if v in described}


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 200 else text[:200] + "…"


def _extract(ctx: Context, archive: Path, into: Path) -> Path:
    """The archive extracted into a fresh `into` (the check fails on a corrupt or unsafe archive)."""
    fresh_dir(into)
    try:
        read_gzip_to_end(archive)  # nothing is extracted from a corrupt archive
        with tarfile.open(archive, mode="r:gz") as tar:
            tar.extractall(into, filter="data")  # refuses absolute paths, `..`, devices
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        ctx.fail(f"{archive.name} cannot be extracted: {type(exc).__name__}: {exc}")
    return into


# --- Prometheus ------------------------------------------------------------------------------------------------------


def _answer(prom: Prometheus, query: str, at: float) -> list[dict[str, Any]]:
    """An instant query's vector, comparable across servers: (labels, value) sorted by labels, without timestamps."""
    return sorted(
        ({"metric": r.get("metric", {}), "value": r["value"][1]} for r in prom.query(query, at)),
        key=lambda r: json.dumps(r["metric"], sort_keys=True),
    )


def _tsdb_root(extracted: Path) -> Path:
    """The directory holding the TSDB blocks (ULID directories with a meta.json), wherever the archive put them."""
    metas = sorted(extracted.rglob("meta.json"))
    return metas[0].parent.parent if metas else extracted


def _in_run_dir(ctx: Context, path: Path) -> str:
    """A path as evidence shows it: relative to the run directory (the server's working directory) when inside it."""
    try:
        return path.relative_to(ctx.run_dir).as_posix()
    except ValueError:
        return str(path)


def _restore_prometheus(
    ctx: Context, archive: Path, queries: list[str], at: float, live: dict[str, Any]
) -> tuple[dict[str, Any], float]:
    """Bring the archive's TSDB up in a fresh Prometheus that scrapes nothing and ask it the live queries at `at`.
    Also returns the seconds from the start of the restore until it had answered them all (its stop not counted)."""
    restore_started = time.monotonic()
    usable_s = 0.0
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
    flags = [f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=3650d"]
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={tsdb}", *flags]
    shown = [
        binary,
        f"--config.file={_in_run_dir(ctx, config)}",
        f"--storage.tsdb.path={_in_run_dir(ctx, tsdb)}",
        *flags,
    ]
    answers: dict[str, Any] = {}
    restored = Prometheus(base)
    server: Server | None = None
    try:
        with ctx.serve(
            argv,
            log_name="prometheus-restore.log",
            ready_url=base + "/-/ready",
            timeout=PROMETHEUS_READY_S,
            grace=15,
            shown=shown,
        ) as server:
            if not server.ready:
                if server.exit_code is not None:
                    ctx.fail(f"the restored Prometheus exited {server.exit_code}: {server.output()[-300:]}")
                ctx.error(f"the restored Prometheus was not ready within {PROMETHEUS_READY_S:g} s")
            ctx.note_wait("restored Prometheus ready", server.waited_s)
            for query in queries:
                try:
                    answers[query] = _answer(restored, query, at)
                except (HttpAnswerError, StackError) as exc:
                    answers[query] = {"error": str(exc)}
            usable_s = time.monotonic() - restore_started
    finally:
        if server is not None:  # stopped by now: its whole log
            ctx.attach("prometheus-restore.log", server.output()[-20000:])
    # Lists of {query, result}, not mappings keyed by the query: evidence redaction hides the value of any key that
    # looks like a secret name (a metric called `tokens_total` contains TOKEN).
    return {
        "blocks": sorted(blocks),
        "answers": [{"query": q, "result": a} for q, a in answers.items()],
        "live": [{"query": q, "result": live[q]} for q in answers],
        "server": f"prometheus {found.group(1) if found else '?'} on 127.0.0.1:{port}, --storage.tsdb.path=<archive>",
    }, usable_s


# --- PostgreSQL ------------------------------------------------------------------------------------------------------


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


def _restore_postgres(
    ctx: Context, archive: Path, table: str, rows: int, database: str
) -> tuple[dict[str, Any], float]:
    """Load the dump into a scratch PostgreSQL cluster (never into the live server) and count the seeded table. Also
    returns the seconds from the start of the restore until the rows were counted (the cluster's stop not counted)."""
    restore_started = time.monotonic()
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
        usable_s = time.monotonic() - restore_started
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
        }, usable_s
    finally:
        if started:
            ctx.run(
                _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data / "pg"), "-m", "immediate", "stop"]),
                timeout=60,
                cwd=Path("/"),
            )
        shutil.rmtree(data, ignore_errors=True)


# --- SQLite ----------------------------------------------------------------------------------------------------------


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


def _integrity_sqlite(ctx: Context, archive: Path, volume: str, service: str) -> dict[str, Any]:
    """Every SQLite database in the archive opens and passes PRAGMA integrity_check (a service's own database, e.g.
    a dashboard server's); with none, there is nothing to open, and the result says why."""
    extracted = _extract(ctx, archive, ctx.run_dir / f"restore-{archive_prefix(volume)}")
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

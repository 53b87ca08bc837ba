"""Backup faults, for real: the compose stack, the real backup script and the real checks of EIXO 3.

What this proves, one test per fault, is the pipeline's promise for a fault: the check ends FAILED (not crashed,
not passed) with a reason that names the cause; the backups already in the destination are untouched, still valid
gzip tars with their `*_latest.tar.gz` links on them; no half-written archive, staging directory or link temp file
is left behind; and the stage's evidence (eixo_3.json and the attached script log) says the same.

* target full — a small tmpfs holding a previous complete backup, filled until only as much room is left as that
  backup's archives took: the script's next run cannot fit (it also needs room for its dump and logs) and stops at
  ENOSPC. The tmpfs is mounted on the project copy's `.sealgate`, where `backup/run-live` makes its destination, so
  the check meets the full filesystem through its own code path; the previous backup on the same filesystem is
  then backed up onto by the script directly (the check starts from an empty directory by design).
* target read-only — a tmpfs holding a previous backup, remounted read-only (EROFS: root ignores permission bits,
  and chattr +i is `backup/fail-closed`'s "unwritable destination", a different fault).
* archive corrupted after writing — bit rot injected by a copy of the script right after it hashed and reported an
  archive: `backup/run-live` must refuse it, and the restore drill must refuse to extract it.

A volume missing is tested in tests/checks/test_backup.py (`backup/fail-closed`, "missing volume" scenario, and
test_missing_volume_in_the_script_fails_run_live); it is not repeated here.

Mounting needs root: skipped with the reason on a developer's machine, a failure under CI=true.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from checkrun import explain, run_checks
from conftest import need, need_docker
from stack_fixtures import run_backup

from sealgate.analysis.backups import archive_facts, reports_of
from sealgate.evidence.store import EvidenceStore
from sealgate.kernel.fsutil import sha256_file as sha256_of
from sealgate.model.results import CheckResult, Status
from sealgate.run.plan import open_spec

SCRIPT = "stack/scripts/backup_observability.sh"
PREFIXES = ("postgres", "prometheus", "grafana")
ENOSPC = os.strerror(errno.ENOSPC)  # "No space left on device"
EROFS = os.strerror(errno.EROFS)  # "Read-only file system"
# The script's report line, after which it has written, moved into place and hashed an archive.
REPORT_ECHO = '  echo "backup: ${name}_data method=${method[$name]} archive=$archive sha256=$sum bytes=$bytes"\n'
# Bit rot: six bytes in the middle of the Prometheus archive overwritten, after its sha256 was reported.
BIT_ROT = (
    "  if [[ $name == prometheus ]]; then\n"
    '    printf BITROT | dd of="$archive" bs=1 seek=$((bytes / 2)) conv=notrunc status=none\n'
    "  fi\n"
)


@pytest.fixture
def compose(compose_stack: Any) -> Any:
    need_docker()
    return compose_stack


def edit(root: Path, old: str, new: str) -> None:
    path = root / SCRIPT
    text = path.read_text()
    assert text.count(old) == 1, f"{SCRIPT}: anchor {old!r} not found exactly once"
    path.write_text(text.replace(old, new))


def assert_failed_not_crashed(result: CheckResult) -> None:
    assert result.status is Status.FAILED, explain(result)
    assert not result.reason.startswith("check crashed:"), explain(result)


@contextmanager
def tmpfs(path: Path, size: str = "8m") -> Iterator[Path]:
    """A fresh tmpfs mounted on `path` (created if needed), always unmounted afterwards."""
    need(os.geteuid() == 0 and shutil.which("mount") is not None, "mounting a tmpfs needs root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    need(mounted.returncode == 0, f"cannot mount a tmpfs on {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=60).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60)


def remount_read_only(mount: Path, timeout: float = 15.0) -> None:
    """`mount -o remount,ro`, retried: it is refused (busy) while a file on it is open for writing, and the script's
    retention `find` (a process substitution it does not wait for) can outlive it for a moment holding the inherited
    descriptor of DEST/.backup.lock."""
    deadline = time.monotonic() + timeout
    while True:
        remounted = subprocess.run(["mount", "-o", "remount,ro", str(mount)], capture_output=True, text=True)
        if remounted.returncode == 0:
            return
        if time.monotonic() > deadline:
            fuser = shutil.which("fuser")
            holders = subprocess.run([fuser, "-vm", str(mount)], capture_output=True, text=True).stderr if fuser else ""
            pytest.fail(f"cannot remount {mount} read-only: {remounted.stderr.strip()}\n{holders}")
        time.sleep(0.2)


def free_pages(mount: Path) -> int:
    return os.statvfs(mount).f_bavail


def fill(mount: Path, leave_pages: int) -> None:
    """Write a filler file until exactly `leave_pages` blocks of the filesystem are free."""
    block = os.statvfs(mount).f_bsize
    excess = (free_pages(mount) - leave_pages) * block
    assert excess > 0, f"{mount} has only {free_pages(mount)} free blocks"
    chunk = b"\xa5" * (1 << 20)
    with (mount / "filler").open("wb") as handle:
        while excess > 0:
            excess -= handle.write(chunk[: min(excess, len(chunk))])
    assert free_pages(mount) == leave_pages


def listing(dest: Path) -> dict[str, str]:
    """Everything in a destination: links with their target, files with size and sha256 (hidden ones too)."""
    found: dict[str, str] = {}
    for entry in sorted(dest.iterdir()):
        if entry.is_symlink():
            found[entry.name] = f"-> {os.readlink(entry)}"
        elif entry.is_dir():
            found[entry.name] = "dir"
        else:
            found[entry.name] = f"{entry.stat().st_size} bytes {sha256_of(entry)}"
    return found


def previous_backup(output: str) -> dict[str, str]:
    """archive name -> sha256, from a successful run's report lines."""
    reports = reports_of(output)
    assert sorted(reports) == sorted(f"{p}_data" for p in PREFIXES), output
    return {Path(r["archive"]).name: r["sha256"] for r in reports.values()}


def assert_previous_backup_intact(dest: Path, previous: dict[str, str]) -> None:
    """The earlier archives are there, unchanged, valid; the latest links on them; nothing else was added."""
    for name, sha256 in previous.items():
        facts = archive_facts(dest / name)
        assert facts["valid"] and facts["sha256"] == sha256, facts
        prefix = name.split("_", 1)[0]
        link = dest / f"{prefix}_latest.tar.gz"
        assert link.is_symlink() and os.readlink(link) == name, f"{link.name} -> {os.readlink(link)}"
    links = {f"{p}_latest.tar.gz" for p in PREFIXES}
    assert {p.name for p in dest.iterdir()} == {*previous, *links, ".backup.lock"}, sorted(os.listdir(dest))


def stage_evidence(root: Path) -> tuple[EvidenceStore, dict[str, dict[str, Any]]]:
    """The stage 3 evidence run_checks wrote in `root` (schema and attachment digests verified), checks by id."""
    store = EvidenceStore(root, open_spec(root, "F9.10").slug)
    document = store.read_stage(3)
    return store, {c["id"]: c for c in document["predicate"]["checks"]}


def assert_evidence_says(root: Path, result: CheckResult, log: str, *needles: str) -> None:
    store, checks = stage_evidence(root)
    recorded = checks[result.check_id]
    assert (recorded["status"], recorded["reason"]) == ("failed", result.reason), recorded
    text = (store.attachments_dir(3) / log).read_text()
    for needle in needles:
        assert needle in text, f"{log} does not say {needle!r}:\n{text[-2000:]}"


# --- faults ------------------------------------------------------------------------------------------------------


@pytest.mark.stack
def test_backup_target_full(project_copy: Path, compose: Any) -> None:
    with tmpfs(project_copy / ".sealgate") as fs:
        # A complete backup first, with room; then the filesystem filled to as much room as its archives took.
        dest = fs / "previous-backups"
        first = run_backup(compose, dest)
        assert first.returncode == 0, first.stderr
        previous = previous_backup(first.stdout)
        block = os.statvfs(fs).f_bsize
        room = sum(-(-(dest / name).stat().st_size // block) for name in previous)
        fill(fs, room)
        before = listing(dest)

        # The check, as a seal runs it: its destination under .sealgate is on the full filesystem.
        result = run_checks(project_copy, 3, ["backup/script-static", "backup/run-live"], stack=compose)[
            "backup/run-live"
        ]
        assert_failed_not_crashed(result)
        assert result.reason.startswith("the backup exited 1: "), explain(result)
        assert re.search(rf"backup: FAILED \w+.*\(dest \S+ is full: {ENOSPC}\)", result.reason), explain(result)
        [own] = fs.glob("*/checks/backup__run-live/backups")
        assert sorted(os.listdir(own)) == [".backup.lock"], "the failed check run left something in its destination"
        assert_evidence_says(project_copy, result, "backup-run-live.log", ENOSPC)

        # The script onto the previous backup, on the same full filesystem.
        second = run_backup(compose, dest)
        assert second.returncode == 1, f"{second.stdout}\n{second.stderr}"
        assert f"(dest {dest.resolve()} is full: {ENOSPC})" in second.stderr, second.stderr
        assert listing(dest) == before
        assert_previous_backup_intact(dest, previous)
        # Staging, partial archives, link temp files: all gone, down to the last block.
        assert free_pages(fs) == room


@pytest.mark.stack
def test_backup_target_read_only(project_copy: Path, compose: Any, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "backup-fs") as fs:
        dest = (fs / "backups").resolve()
        first = run_backup(compose, dest)
        assert first.returncode == 0, first.stderr
        previous = previous_backup(first.stdout)
        remount_read_only(fs)
        with pytest.raises(OSError) as refused:
            (fs / "probe").write_text("x")
        assert refused.value.errno == errno.EROFS  # the fault is a read-only filesystem, not permissions
        before = listing(dest)

        # The script, directly.
        second = run_backup(compose, dest)
        assert second.returncode == 1, f"{second.stdout}\n{second.stderr}"
        said = f"backup: FAILED dest {dest}: not writable ({EROFS})"
        assert said in second.stderr, second.stderr

        # The check: it always backs up into its own scratch directory, so a copy of the script is pointed at the
        # read-only destination (one line) to put a real check run in front of it.
        edit(project_copy, 'dest="${dest%/}"\n', f"dest={shlex.quote(str(dest))}\n")
        result = run_checks(project_copy, 3, ["backup/script-static", "backup/run-live"], stack=compose)[
            "backup/run-live"
        ]
        assert_failed_not_crashed(result)
        assert result.reason == f"the backup exited 1: {said}", explain(result)
        assert_evidence_says(project_copy, result, "backup-run-live.log", said)

        assert listing(dest) == before
        assert_previous_backup_intact(dest, previous)


@pytest.mark.stack
def test_archive_corrupted_after_writing(project_copy: Path, compose: Any) -> None:
    edit(project_copy, REPORT_ECHO, REPORT_ECHO + BIT_ROT)
    results = run_checks(
        project_copy, 3, ["backup/script-static", "backup/run-live", "backup/restore-drill"], stack=compose
    )

    # run-live: the archive is named as not a valid gzip tar, and as not matching the sha256 the script reported.
    live = results["backup/run-live"]
    assert_failed_not_crashed(live)
    archives = live.data["archives"]
    rotten = archives["prometheus_data"]
    assert not rotten["valid"], rotten
    summaries = [f.summary for f in live.findings]
    assert f"prometheus_data: {rotten['name']} is not a valid gzip tar: {rotten['error']}" in summaries, summaries
    reported = re.search(r"sha256=([0-9a-f]{64})", rotten["reported_line"])
    assert reported and reported.group(1) != rotten["sha256"], rotten
    assert (
        f"prometheus_data: the script reports sha256 {reported.group(1)}, the archive has {rotten['sha256']}"
        in summaries
    ), summaries
    assert len(summaries) == 2, summaries  # the two other archives are judged sound
    assert archives["postgres_data"]["valid"] and archives["grafana_data"]["valid"], archives
    assert live.reason == f"{summaries[0]} (+1 more)", explain(live)

    # restore-drill: it takes the archives its own backup run links as latest, and refuses to extract the rotten one.
    drill = results["backup/restore-drill"]
    assert_failed_not_crashed(drill)
    named = re.match(r"(prometheus_[0-9]{8}T[0-9]{6}Z\.tar\.gz) cannot be extracted: \w+: ", drill.reason)
    assert named, explain(drill)
    [drill_dest] = (project_copy / ".sealgate").glob("*/checks/backup__restore-drill/backups")
    assert os.readlink(drill_dest / "prometheus_latest.tar.gz") == named.group(1)
    assert not archive_facts(drill_dest / named.group(1))["valid"]
    extracted = list((project_copy / ".sealgate").glob("*/checks/backup__restore-drill/restore-prometheus/*"))
    assert extracted == [], "nothing may be extracted from a corrupt archive"

    _store, checks = stage_evidence(project_copy)
    for result in (live, drill):
        recorded = checks[result.check_id]
        assert (recorded["status"], recorded["reason"]) == ("failed", result.reason), recorded

"""backup/offsite-copy, backup/offsite-retention, backup/offsite-restore-drill on the running stack (local backend:
the storage is moto's S3 server, the script uploads with awscli, the checks read the bucket over the S3 API).

Passing: the repository's backup script. Failing, each for its own reason, with the script of a project copy changed
the way a real defect would change it: a copy corrupted on its way and not checked by the script (sha256 mismatch),
the upload silently skipped, a retention that keeps what it should delete. And the parameters are the spec's: another
bucket and key prefix pass when the script uses them, and fail when it does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from checkrun import explain, run_checks
from conftest import commit_all, need_tool

from sealgate.model.results import Severity, Status

SCRIPT = "stack/scripts/backup_observability.sh"
SPEC = "sprint/F9.11.yaml"
STATIC = "backup/script-static"
ORDER = ["postgres_data", "prometheus_data", "grafana_data"]  # the spec's volumes, in its order


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


def errors(result: Any) -> list[str]:
    return [f.summary for f in result.findings if f.severity is Severity.ERROR]


def run(root: Path, stack: Any, *checks: str) -> dict[str, Any]:
    commit_all(root, "edits of the test")
    return run_checks(root, 4, [STATIC, *checks], stack=stack, sprint="F9.11")


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_tool("aws", "curl", "pg_dumpall", "moto_server")


@pytest.mark.stack
def test_offsite_checks_pass_on_the_reference_script(project_copy: Path, local_stack: Any) -> None:
    checks = ["backup/offsite-copy", "backup/offsite-retention", "backup/offsite-restore-drill"]
    results = run(project_copy, local_stack, *checks)
    for check_id in checks:
        assert results[check_id].status is Status.PASSED, f"{check_id}: {explain(results[check_id])}"
    copies = results["backup/offsite-copy"].data["copies"]
    assert set(copies) == {"postgres_data", "prometheus_data", "grafana_data"}
    for facts in copies.values():
        assert facts["object_sha256"] == facts["archive_sha256"] == facts["metadata"]["sha256"]
        assert facts["object"] == f"s3://observability-backups/{facts['archive']}"
    plan = results["backup/offsite-retention"].data["plan"]
    verdicts = {(item["why"], item["actual"]) for item in plan.values()}
    assert ("the script's, older than the limit", "deleted") in verdicts
    assert ("the script's, within the limit", "kept") in verdicts
    assert ("not the script's object", "kept") in verdicts
    drill = results["backup/offsite-restore-drill"].data
    assert drill["drill"]["postgres"]["rows_restored"] == 1234
    assert sorted(drill["local_archives_deleted"])  # the local archives were gone before the restore
    assert all(url.startswith("s3://observability-backups/") for url in drill["restored_from_offsite"].values())


@pytest.mark.stack
def test_offsite_copy_that_differs_from_its_archive_fails(project_copy: Path, local_stack: Any) -> None:
    """The script uploads a truncated archive and does not check what the storage holds: the check downloads the
    copy back and finds another sha256."""
    edit(
        project_copy,
        SCRIPT,
        '  s3 s3api put-object --bucket "$offsite_bucket" --key "$key" --body "$archive" \\',
        '  head -c -1 "$archive" >"$work/truncated"\n'
        '  s3 s3api put-object --bucket "$offsite_bucket" --key "$key" --body "$work/truncated" \\',
    )
    edit(
        project_copy,
        SCRIPT,
        '  [[ "$size" == "$bytes" && "$etag" == "$md5" && "$recorded" == "$sum" ]] \\',
        "  true \\",
    )
    result = run(project_copy, local_stack, "backup/offsite-copy")["backup/offsite-copy"]
    assert result.status is Status.FAILED, explain(result)
    found = errors(result)
    assert len(found) == 3, found
    for summary in found:
        assert " has sha256 " in summary and ": the copy is not the backup" in summary, summary


@pytest.mark.stack
def test_offsite_upload_silently_skipped_fails(project_copy: Path, local_stack: Any) -> None:
    edit(project_copy, SCRIPT, '  for name in "${NAMES[@]}"; do offsite_upload "$name"; done', "  :")
    results = run(project_copy, local_stack, "backup/offsite-copy", "backup/offsite-restore-drill")
    copy = results["backup/offsite-copy"]
    assert copy.status is Status.FAILED
    for volume in ("postgres_data", "prometheus_data", "grafana_data"):
        assert any(
            s.startswith(f"{volume}: the backup reported no offsite copy") and "does not hold" in s
            for s in errors(copy)
        ), errors(copy)
    drill = results["backup/offsite-restore-drill"]
    assert drill.status is Status.FAILED
    assert drill.reason.endswith("the backup reported no offsite copy under s3://observability-backups/: nothing "
                                 "to restore")  # fmt: skip


@pytest.mark.stack
def test_offsite_retention_that_keeps_old_copies_fails(project_copy: Path, local_stack: Any) -> None:
    edit(project_copy, SCRIPT, '"$offsite_retention_days days ago"', '"$((offsite_retention_days * 10)) days ago"')
    result = run(project_copy, local_stack, "backup/offsite-retention")["backup/offsite-retention"]
    assert result.status is Status.FAILED
    found = errors(result)
    assert len(found) == 2, found
    assert "(the script's, older than the limit, 32 days old by its name) was kept, expected deleted with a 30-day " \
        "retention" in found[0]  # fmt: skip
    assert "(the script's, far older than the limit, 70 days old by its name) was kept" in found[1]


@pytest.mark.stack
def test_bucket_and_prefix_are_the_specs(project_copy: Path, local_stack: Any) -> None:
    """Another bucket and a key prefix, in the stack description's arguments and in the spec: the copies are judged
    there. A spec naming another bucket than the script's fails, naming both."""
    for _backend in ("compose", "local"):
        edit(
            project_copy,
            "stack/stack.yaml",
            "--offsite-bucket, observability-backups,",
            "--offsite-bucket, shop-archive, --offsite-prefix, nightly/db,",
        )
    edit(project_copy, SPEC, "bucket: observability-backups", "bucket: shop-archive\n            prefix: nightly/db")
    results = run(project_copy, local_stack, "backup/offsite-copy", "backup/offsite-retention")
    for check_id in ("backup/offsite-copy", "backup/offsite-retention"):
        assert results[check_id].status is Status.PASSED, f"{check_id}: {explain(results[check_id])}"
    copies = results["backup/offsite-copy"].data["copies"]
    assert all(f["object"].startswith("s3://shop-archive/nightly/db/") for f in copies.values())

    edit(project_copy, SPEC, "bucket: shop-archive", "bucket: another-bucket")
    result = run(project_copy, local_stack, "backup/offsite-copy")["backup/offsite-copy"]
    assert result.status is Status.FAILED
    assert errors(result)[0].startswith("bucket another-bucket does not exist at http://127.0.0.1:")
    assert errors(result)[1:] == [
        f"{volume}: copied to s3://shop-archive/nightly/db/{copy['archive']}, not under s3://another-bucket/nightly/db/"
        for volume, copy in sorted(result.data["copies"].items(), key=lambda item: ORDER.index(item[0]))
    ]

"""Keyed digests of unsigned evidence, kept outside the evidence directory.

The manifest's sha256 list proves nothing against whoever edits an evidence file: they can rewrite the manifest in
the same breath. Re-seal reuses an unsigned stage only when an HMAC-SHA256 of each of its files, keyed with a random
per-checkout key under `.sealgate/` (git-ignored, outside `artifacts/`), still matches what this checkout's last run
recorded: evidence and manifest edited together are re-run, never reused. (Signed evidence is trusted through its
DSSE envelope instead: evidence/signing.py.)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from pathlib import Path

from sealgate.evidence.store import EvidenceStore
from sealgate.kernel.fsutil import STATE_DIR, atomic_write, pretty_json

KEY_FILE = "evidence.key"


def _key(root: Path) -> bytes:
    path = root / STATE_DIR / KEY_FILE
    if not path.is_file():
        atomic_write(path, secrets.token_hex(32).encode() + b"\n", mode=0o600)
    return path.read_bytes().strip()


def _records_path(root: Path, slug: str) -> Path:
    return root / STATE_DIR / "keyed" / f"{slug}.json"


def _digest(key: bytes, name: str, data: bytes) -> str:
    # The name is keyed too: two evidence files swapped with each other do not verify.
    return hmac.new(key, name.encode() + b"\0" + data, hashlib.sha256).hexdigest()


def record(root: Path, store: EvidenceStore, stages: list[int]) -> None:
    """Record the keyed digest of every file of the stages this run wrote or verified. Other stages keep the
    digests of the run that wrote them: a file of theirs edited since must not be laundered by an unrelated run."""
    key = _key(root)
    path = _records_path(root, store.slug)
    try:
        digests = json.loads(path.read_bytes()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        digests = {}
    if not isinstance(digests, dict):
        digests = {}
    for stage in stages:
        prefix = f"eixo_{stage}"
        digests = {n: d for n, d in digests.items() if not (n.startswith(f"{prefix}.") or n.startswith(f"{prefix}/"))}
        for name in stage_files(store, stage):
            digests[name] = _digest(key, name, (store.directory / name).read_bytes())
    atomic_write(path, pretty_json(digests), mode=0o600)


def unverified(root: Path, store: EvidenceStore, names: list[str]) -> tuple[list[str], bool]:
    """(the files among `names` whose keyed digest does not match, whether this checkout recorded any at all)."""
    records_file = _records_path(root, store.slug)
    key_file = root / STATE_DIR / KEY_FILE
    if not records_file.is_file() or not key_file.is_file():
        return names, False
    try:
        recorded = json.loads(records_file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return names, False
    key = key_file.read_bytes().strip()
    bad = []
    for name in names:
        path = store.directory / name
        expected = recorded.get(name) if isinstance(recorded, dict) else None
        if (
            not isinstance(expected, str)
            or not path.is_file()
            or not hmac.compare_digest(expected, _digest(key, name, path.read_bytes()))
        ):
            bad.append(name)
    return bad, True


def stage_files(store: EvidenceStore, stage: int) -> list[str]:
    """Every file of one stage's evidence, relative to the evidence directory: statement, envelope, attachments."""
    names = []
    for path in (store.stage_path(stage), store.envelope_path(stage)):
        if path.is_file():
            names.append(path.name)
    folder = store.attachments_dir(stage)
    if folder.is_dir():
        names += sorted(
            p.relative_to(store.directory).as_posix()
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".")
        )
    return names

"""Where seals are: a seal commit adds `seals/<ID>/` (its evidence, report and `seal.json` record) on top of the
commit it judged, and an annotated tag names it. These lookups find a seal by its tag or, where the tag is absent
(a tag-less clone, a CI checkout), by its record in HEAD's history. They read git objects only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sealgate.kernel.gitrepo import Repo, TagInfo

SEALS_DIR = "seals"
RECORD = "seal.json"


def seal_folder(sprint_id: str) -> str:
    return f"{SEALS_DIR}/{sprint_id}"


def _tag_sprint(message: str) -> str:
    """The `sprint:` line of a sealgate tag message ('' when there is none)."""
    for line in message.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "sprint":
            return value.strip()
    return ""


@dataclass(frozen=True)
class SealRef:
    """Where a seal is: its seal commit, and the tag that names it when the tag is in this repository."""

    tag_name: str
    sprint: str
    seal_commit: str
    tag: TagInfo | None  # None: found in HEAD's history; the tag itself was not checked

    @property
    def folder(self) -> str:
        return seal_folder(self.sprint)


def from_tag(repo: Repo, tag_name: str) -> SealRef | None:
    """The seal a local tag names (None: no such tag). A tag that is not a sealgate seal has sprint ''."""
    info = repo.tag(tag_name)
    if info is None:
        return None
    sprint = _tag_sprint(info.message) if info.annotated else ""
    return SealRef(tag_name, sprint, info.commit, info)


def seals_in_history(repo: Repo, rev: str = "HEAD") -> list[tuple[str, str]]:
    """(seal commit, sprint id) for every commit in `rev`'s history that added a `seals/<ID>/seal.json`, newest
    first."""
    done = repo.run(
        "log", "--format=%x00%H", "--diff-filter=A", "--name-only", rev, "--", f"{SEALS_DIR}/*/{RECORD}", check=False
    )
    found = []
    for chunk in done.stdout.decode().split("\0")[1:]:
        lines = [line for line in chunk.splitlines() if line.strip()]
        if not lines:
            continue
        for name in lines[1:]:
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == SEALS_DIR and parts[2] == RECORD:
                found.append((lines[0], parts[1]))
    return found


def read_record(repo: Repo, seal_commit: str, sprint: str) -> dict[str, Any] | None:
    data = repo.show(seal_commit, f"{seal_folder(sprint)}/{RECORD}")
    if data is None:
        return None
    try:
        record = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def in_history(repo: Repo, tag_name: str, sprint: str | None = None, rev: str = "HEAD") -> SealRef | None:
    """The newest seal in `rev`'s history whose record names `tag_name` (and `sprint`, when given)."""
    for seal_commit, sprint_id in seals_in_history(repo, rev):
        if sprint and sprint_id != sprint:
            continue
        record = read_record(repo, seal_commit, sprint_id)
        if record is not None and record.get("tag") == tag_name:
            return SealRef(tag_name, sprint_id, seal_commit, None)
    return None

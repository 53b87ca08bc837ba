"""The seal itself: the preconditions for the annotated tag, and its message (criteria table + manifest digest).

The message is both for humans (`git show F9.10-SEALED`) and for `verify`, which parses the `key: value` lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import git

from sealgate import __version__
from sealgate.evidence.judge import Judgement
from sealgate.kernel.gitrepo import Repo
from sealgate.sprint.seals import in_history

MESSAGE_KEYS = ("sprint", "commit", "manifest-sha256", "base", "sealed-by")


@dataclass
class BaseFacts:
    """What was (and was not) verified about the spec's base tag."""

    kind: str  # "ok" | "missing" | "not_ancestor" | "first"
    tag: str | None
    commit: str | None = None
    declared_commit: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind in ("ok", "first")


def base_facts(repo: Repo, judgement: Judgement, head: str) -> BaseFacts:
    spec = judgement.spec
    declared = spec.raw.get("base_commit")
    if spec.first_in_chain or not spec.base_tag:
        return BaseFacts("first", None, declared_commit=declared)
    info = repo.tag(spec.base_tag)
    if info is None:
        # A tag-less clone still holds the base's seal commit in HEAD's history (seals/<ID>/seal.json names the tag):
        # that is the base; verify re-checks it from there.
        found = in_history(repo, spec.base_tag, rev=head)
        if found is None:
            return BaseFacts("missing", spec.base_tag, declared_commit=declared)
        return BaseFacts("ok", spec.base_tag, found.seal_commit, declared)
    # A sealgate base tag points at its seal commit; its judged commit (`commit:`) is an ancestor of HEAD even when
    # the branch was not fast-forwarded to the seal commit.
    judged = parse_message(info.message).get("commit") if info.annotated else None
    if not repo.is_ancestor(info.commit, head) and not (judged and _is_ancestor(repo, judged, head)):
        return BaseFacts("not_ancestor", spec.base_tag, info.commit, declared)
    return BaseFacts("ok", spec.base_tag, info.commit, declared)


@dataclass
class TagDecision:
    allowed: bool
    already_sealed: bool
    reasons: list[str]


def decide(repo: Repo, judgement: Judgement, head: str, base: BaseFacts, manifest_digest: str) -> TagDecision:
    """Every reason the tag may not be created; none → allowed. An identical existing seal → already sealed."""
    spec = judgement.spec
    reasons = []
    for criterion in judgement.failing:
        reasons.append(f"criterion {criterion.id} ({criterion.title}): {criterion.reason or criterion.verdict.value}")
    for stage in judgement.stages.values():
        if not stage.verdict.ok:
            reasons.append(f"{spec.stage_label(stage.number)} ({stage.name}): {stage.verdict.value}")
    if repo.is_dirty():
        paths = ", ".join(repo.dirty_paths()[:5])
        reasons.append(f"working tree is dirty ({paths}): commit or stash, then seal again")
    external = spec.raw.get("base_external")
    if base.kind == "missing" and not external:
        reasons.append(f"base tag {base.tag} does not exist in this repository")
    if base.kind == "not_ancestor":
        reasons.append(f"base tag {base.tag} ({base.commit[:12] if base.commit else '?'}) is not an ancestor of HEAD")
    existing = repo.tag(spec.tag)
    if existing is not None:
        fields = parse_message(existing.message)
        same = fields.get("commit") == head and fields.get("manifest-sha256") == manifest_digest
        if same and not reasons:
            return TagDecision(False, True, [])
        reasons.append(f"tag {spec.tag} already exists at {existing.commit[:12]} and is never moved")
    return TagDecision(not reasons, False, reasons)


def message(judgement: Judgement, head: str, manifest_digest: str, base: BaseFacts) -> str:
    spec = judgement.spec
    width = max(len(c.id) for c in judgement.criteria)
    lines = [
        f"SEAL {spec.id} — {spec.raw['title']}",
        "",
        f"sprint: {spec.id}",
        f"commit: {head}",
        f"manifest-sha256: {manifest_digest}",
        f"base: {_base_line(base, spec.raw.get('base_external'))}",
        f"sealed-by: sealgate {__version__}",
        "",
        "criteria:",
    ]
    lines += [f"  {c.id.ljust(width)}  {c.verdict.value:<7}  {c.title}" for c in judgement.criteria]
    waivers = judgement.waivers_used
    if waivers:
        lines += ["", "waivers:"]
        lines += [
            f"  {w.target_kind} {w.target}: {w.justification} (approver: {w.approver}; expires {w.expires})"
            for w in waivers
        ]
    return "\n".join(lines) + "\n"


def _is_ancestor(repo: Repo, ancestor: str, descendant: str) -> bool:
    try:
        return repo.is_ancestor(ancestor, descendant)
    except git.GitCommandError:  # a judged commit named by a hand-edited message, not in this repository
        return False


def _base_line(base: BaseFacts, external: dict[str, str] | None) -> str:
    if base.kind == "first":
        return "none (first sprint of its chain)"
    if base.kind == "missing" and external:
        declared = f" (declared commit {base.declared_commit})" if base.declared_commit else ""
        return f"{base.tag}{declared} is in {external.get('repository', 'another repository')}; NOT verified here"
    return f"{base.tag} {base.commit or ''} {base.kind}".strip()


def parse_message(text: str) -> dict[str, str]:
    """The `key: value` header lines of a seal message (unknown lines ignored, signature blocks included)."""
    fields = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z0-9-]+): (.+)$", line)
        if match and match[1] in MESSAGE_KEYS:
            fields.setdefault(match[1], match[2].strip())
    return fields


def criteria_lines(text: str) -> dict[str, str]:
    """`criterion id → verdict` from the message's criteria block."""
    out: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if line == "criteria:":
            inside = True
            continue
        if inside:
            match = re.match(r"^  (\S+)\s+(\S+)\s+", line)
            if not match:
                break
            out[match[1]] = match[2]
    return out

"""`verify TAG`: re-check a seal from what is on disk, as small named steps (the in-toto verifylib pattern).

Nothing from the run that made the tag is trusted: the tag message, the manifest and every evidence file are read
back, digests recomputed, schemas re-validated, and the criteria re-judged with the spec as of the tagged commit and
the judged files' contents as of that commit.
"""

from __future__ import annotations

import datetime
import io
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import git

from sealgate.errors import EvidenceError, Problem, SealgateError
from sealgate.evidence.judge import Judgement, judge
from sealgate.evidence.store import EvidenceStore
from sealgate.gitrepo import Repo, TagInfo
from sealgate.reports.tag import criteria_lines, parse_message
from sealgate.sprint.spec import SPRINT_DIR, Spec, load_spec


@dataclass
class VerifyState:
    root: Path
    repo: Repo
    tag_name: str
    sprint_id: str | None
    tag: TagInfo | None = None
    fields: dict[str, str] = field(default_factory=dict)
    spec: Spec | None = None
    store: EvidenceStore | None = None
    manifest: dict | None = None
    judgement: Judgement | None = None


Step = Callable[[VerifyState], list[Problem]]


def verify_tag_annotated(state: VerifyState) -> list[Problem]:
    state.tag = state.repo.tag(state.tag_name)
    if state.tag is None:
        return [Problem(f"tag {state.tag_name}", "does not exist")]
    if not state.tag.annotated:
        return [Problem(f"tag {state.tag_name}", "is a lightweight tag; a seal is always annotated")]
    state.fields = parse_message(state.tag.message)
    missing = [k for k in ("sprint", "commit", "manifest-sha256") if k not in state.fields]
    if missing:
        return [Problem(f"tag {state.tag_name}", f"message lacks {', '.join(missing)}: not made by sealgate or edited")]
    if state.fields["commit"] != state.tag.commit:
        return [
            Problem(
                f"tag {state.tag_name}",
                f"message names commit {state.fields['commit'][:12]} but the tag points at "
                f"{state.tag.commit[:12]} (re-tagged by hand?)",
            )
        ]
    return []


def verify_signature(state: VerifyState) -> list[Problem]:
    assert state.tag
    if not state.tag.signed:
        return []
    ok, output = state.repo.verify_tag_signature(state.tag_name)
    return (
        []
        if ok
        else [
            Problem(
                f"tag {state.tag_name}",
                f"signature does not verify: {output.splitlines()[-1] if output else 'no output'}",
            )
        ]
    )


def verify_manifest_digest(state: VerifyState) -> list[Problem]:
    sprint_id = state.sprint_id or state.fields["sprint"]
    state.spec = _spec_at(state, sprint_id)
    state.store = EvidenceStore(state.root, state.spec.slug)
    try:
        state.manifest, digest = state.store.read_manifest()
    except EvidenceError as exc:
        return exc.problems
    if digest != state.fields["manifest-sha256"]:
        where = state.store.display(state.store.directory / "manifest.json")
        return [
            Problem(
                where,
                f"sha256 {digest[:16]}… differs from the tag's manifest-sha256 {state.fields['manifest-sha256'][:16]}…",
            )
        ]
    return []


def verify_evidence_digests(state: VerifyState) -> list[Problem]:
    assert state.store and state.manifest is not None
    return state.store.manifest_problems(state.manifest)


def verify_schemas(state: VerifyState) -> list[Problem]:
    assert state.store and state.spec
    problems = []
    for number in state.spec.stages:
        try:
            state.store.read_stage(number)
        except EvidenceError as exc:
            problems += exc.problems
    return problems


def verify_commit(state: VerifyState) -> list[Problem]:
    assert state.store and state.spec and state.tag and state.manifest is not None
    problems = []
    if state.manifest["commit"] != state.tag.commit:
        problems.append(
            Problem(
                state.store.display(state.store.directory / "manifest.json"),
                f"made at {state.manifest['commit'][:12]}, tag is at {state.tag.commit[:12]}",
            )
        )
    for number in state.spec.stages:
        document = state.store.read_stage(number)
        commit = document["predicate"]["run"]["commit"]
        if commit != state.tag.commit:
            problems.append(
                Problem(
                    state.store.display(state.store.stage_path(number)),
                    f"made at {commit[:12]}, tag is at {state.tag.commit[:12]} (evidence from another commit)",
                )
            )
    return problems


def verify_criteria(state: VerifyState) -> list[Problem]:
    assert state.spec and state.tag
    judgement = judge(
        state.spec, state.root, state.tag.commit, digest_source=_blob_digests(state.repo, state.tag.commit)
    )
    state.judgement = judgement
    problems = [Problem(f"criterion {c.id}", f"{c.verdict.value}: {c.reason}") for c in judgement.failing]
    recorded = criteria_lines(state.tag.message)
    for c in judgement.criteria:
        if recorded.get(c.id) != c.verdict.value:
            problems.append(
                Problem(
                    f"tag {state.tag_name}",
                    f"message says criterion {c.id} is {recorded.get(c.id, 'absent')}, evidence says {c.verdict.value}",
                )
            )
    return problems


STEPS: list[tuple[str, Step]] = [
    ("tag is annotated and names its commit", verify_tag_annotated),
    ("signature", verify_signature),
    ("manifest digest matches the tag", verify_manifest_digest),
    ("evidence files match the manifest", verify_evidence_digests),
    ("evidence validates against its schemas", verify_schemas),
    ("evidence was made at the tagged commit", verify_commit),
    ("criteria re-evaluate to pass", verify_criteria),
]


def verify(root: Path, tag_name: str, sprint_id: str | None, report: Callable[[str], None] = print) -> bool:
    state = VerifyState(root, Repo(root), tag_name, sprint_id)
    ok = True
    for title, step in STEPS:
        try:
            problems = step(state)
        except SealgateError as exc:
            problems = exc.problems
        if problems:
            ok = False
            report(f"FAILED  {title}")
            for problem in problems:
                report(f"        {problem}")
            break  # later steps depend on earlier ones
        report(f"ok      {title}")
    return ok


def _spec_at(state: VerifyState, sprint_id: str) -> Spec:
    """The spec (and its waivers and plugins) as of the tagged commit, judged as of the tag's date."""
    assert state.tag
    archive = state.repo._repo.git.archive(state.tag.commit, SPRINT_DIR, format="tar", stdout_as_string=False)
    tagged_on = _tag_date(state.repo, state.tag_name)
    with tempfile.TemporaryDirectory(prefix="sealgate-verify-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        spec = load_spec(Path(tmp), sprint_id, today=tagged_on)
    spec.path = state.root / spec.relpath  # displayed paths stay the repository's
    return spec


def _tag_date(repo: Repo, name: str) -> datetime.date:
    tag_object = repo._repo.tags[name].tag
    return (
        datetime.datetime.fromtimestamp(tag_object.tagged_date, datetime.timezone.utc).date()
        if tag_object
        else datetime.date.today()
    )


def _blob_digests(repo: Repo, commit: str) -> Callable[[str], str | None]:
    """sha256 of a file as of `commit` (from git's object store on disk), None if absent there."""
    import hashlib

    tree = repo._repo.commit(commit).tree

    def digest(relative: str) -> str | None:
        try:
            blob = tree / relative
        except KeyError:
            return None
        if not isinstance(blob, git.Blob):
            return None
        return hashlib.sha256(blob.data_stream.read()).hexdigest()

    return digest

"""The seal commit: the seal's evidence and report stored in git objects, so the seal travels with the repository.

`seal` makes one commit on top of the judged commit, with git plumbing and a temporary index (the user's index and
files are never touched): its tree is the judged tree plus `seals/<ID>/` — the evidence exactly as in
`artifacts/<slug>/` (statements, envelopes, attachments, manifest), the rendered `SEAL_<ID>.md` and `seal.json` (the
seal's record: sprint, tag, judged commit, manifest digest, base, criteria, waivers). The annotated tag points at
that commit; its message still names the judged commit (`commit:`). When the checked-out branch is at the judged
commit and the tree is clean, the branch is fast-forwarded to the seal commit, so only new files under `seals/<ID>/`
appear and a clone of the branch — even one with no tags — holds every seal of its history.

Why a commit on the branch rather than a ref of our own (refs/seals/…): a plain clone brings branch history and, by
default, tags; nothing custom has to be fetched or pushed, a CI checkout without tags still finds every seal, and a
reviewer reads `seals/<ID>/SEAL_<ID>.md` on the forge at the seal.
"""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path
from typing import Any

from sealgate import __version__
from sealgate.evidence import signing
from sealgate.evidence.judge import Judgement
from sealgate.evidence.store import MANIFEST, EvidenceStore, schema_problems
from sealgate.kernel.errors import EvidenceError, Problem, SealRefused
from sealgate.kernel.fsutil import pretty_json
from sealgate.kernel.gitrepo import Repo
from sealgate.seal import tag as tagging
from sealgate.seal.tag import BaseFacts
from sealgate.sprint import seals
from sealgate.sprint.seals import RECORD, seal_folder


def report_name(sprint_id: str) -> str:
    return f"SEAL_{sprint_id}.md"


# --- making a seal --------------------------------------------------------------------------------------------------


def build_record(
    repo: Repo, judgement: Judgement, head: str, digest: str, base: BaseFacts, signers: list[str], signed: bool
) -> dict[str, Any]:
    spec = judgement.spec
    return {
        "sealgate": 1,
        "sprint": spec.id,
        "title": str(spec.raw["title"]),
        "tag": spec.tag,
        "commit": head,
        "manifest_sha256": digest,
        "sealed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "sealed_by": f"sealgate {__version__}",
        "signed": signed,
        "signers": signers,
        "base": _base_record(repo, base, spec.raw.get("base_external")),
        "criteria": [{"id": c.id, "title": c.title, "verdict": c.verdict.value} for c in judgement.criteria],
        "waivers": [w.to_json() for w in judgement.waivers_used],
    }


def _base_record(repo: Repo, base: BaseFacts, external: dict[str, str] | None) -> dict[str, Any] | None:
    if base.kind == "first" or base.tag is None:
        return None
    entry: dict[str, Any] = {"tag": base.tag, "commit": base.commit, "sprint": None}
    if base.kind == "missing" and external:
        entry["external"] = str(external.get("repository", "another repository"))
        return entry
    info = repo.tag(base.tag)
    if info is not None:
        sprint = tagging.parse_message(info.message).get("sprint")
        if sprint and repo.show(info.commit, f"{seal_folder(sprint)}/{RECORD}") is not None:
            entry["sprint"] = sprint
    elif base.commit:  # no tag here: the base was found by its seal commit in HEAD's history
        found = seals.in_history(repo, base.tag, rev=base.commit)
        if found is not None and found.seal_commit == base.commit:
            entry["sprint"] = found.sprint
    return entry


def create(
    repo: Repo,
    judgement: Judgement,
    head: str,
    digest: str,
    base: BaseFacts,
    report_text: str,
    sign: bool,
) -> list[str]:
    """Make the seal commit and the annotated tag on it; return what to say (the seal commit, the branch)."""
    spec = judgement.spec
    folder = seal_folder(spec.id)
    if repo.run("cat-file", "-e", f"{head}:{folder}", check=False).returncode == 0:
        raise SealRefused(f"{folder}/ already exists at {head[:12]}: a seal commit only adds it (remove it, commit)")
    store = EvidenceStore(repo.root, spec.slug)
    manifest, _ = store.read_manifest()
    files = {MANIFEST: (store.directory / MANIFEST).read_bytes()}
    for entry in manifest["files"]:
        files[entry["name"]] = (store.directory / entry["name"]).read_bytes()
    signers = _signers(repo, store, spec.stages, files) if sign else []
    files[report_name(spec.id)] = report_text.encode()
    files[RECORD] = pretty_json(build_record(repo, judgement, head, digest, base, signers, signed=bool(signers)))
    seal = _commit(repo, head, folder, files, _commit_message(spec.id, spec.tag, head), sign)
    message = tagging.message(judgement, head, digest, base)
    message += f"\nevidence: {folder}/ in the seal commit this tag points at (its only parent is {head[:12]})\n"
    repo.create_tag(spec.tag, message, sign=sign, target=seal)
    left_out = [
        f"left out of the seal: {store.display(path)} ({spec.relpath} declares no stage {_stage_number(path)})"
        for path in store.undeclared_files(spec.stages)
    ]
    return [
        *left_out,
        f"seal commit {seal[:12]} adds {folder}/ on the judged commit {head[:12]}",
        *_fast_forward(repo, head, seal, folder),
    ]


def _stage_number(path: Path) -> str:
    """`9` of an evidence file of stage 9 (`eixo_9.json`, `eixo_9/…`)."""
    name = path.name if path.name.startswith("eixo_") else path.parent.name
    return name.removeprefix("eixo_").split(".", 1)[0]


def _signers(repo: Repo, store: EvidenceStore, stages: Any, files: dict[str, bytes]) -> list[str]:
    """Every statement's envelope verified before anything is tagged (fail closed); the principals who signed."""
    allowed = signing.verifier_for(repo)
    principals = set()
    problems = []
    for number in stages:
        statement, envelope = store.stage_path(number).name, store.envelope_path(number).name
        if envelope not in files:
            problems.append(Problem(store.display(store.directory / envelope), "missing: every statement is signed"))
            continue
        try:
            principals.add(signing.verify_envelope(files[envelope], files[statement], allowed).principal)
        except signing.SignatureProblem as exc:
            problems.append(Problem(store.display(store.directory / envelope), str(exc)))
    if problems:
        raise EvidenceError(*problems)
    return sorted(principals)


def _commit_message(sprint: str, tag: str, head: str) -> str:
    return (
        f"SEAL {sprint}: evidence and report of {tag}\n\n"
        f"Adds {seal_folder(sprint)}/ (evidence, manifest, {report_name(sprint)}, {RECORD}) on top of the judged "
        f"commit {head}.\nCheck it from any clone: sealgate verify {tag}\n"
    )


def _commit(repo: Repo, head: str, folder: str, files: dict[str, bytes], message: str, sign: bool) -> str:
    """judged tree + folder/files, as a commit whose only parent is the judged commit; the user's index untouched."""
    with tempfile.TemporaryDirectory(prefix="sealgate-seal-") as tmp:
        staged = Path(tmp) / "files"
        names = sorted(files)
        paths = []
        for index, name in enumerate(names):
            path = staged / str(index)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[name])
            paths.append(str(path))
        # --no-filters: the bytes stored are exactly the evidence's (no end-of-line or attribute conversion).
        done = repo.run("hash-object", "-w", "--no-filters", "--stdin-paths", input="\n".join(paths).encode() + b"\n")
        shas = done.stdout.decode().split()
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        repo.run("read-tree", head, env=env)
        entries = "".join(f"100644 {sha}\t{folder}/{name}\n" for sha, name in zip(shas, names, strict=True))
        repo.run("update-index", "--add", "--index-info", input=entries.encode(), env=env)
        tree = repo.run("write-tree", env=env).stdout.decode().strip()
    args = ["commit-tree", tree, "-p", head, *(["-S"] if sign else []), "-F", "-"]
    return repo.run(*args, input=message.encode()).stdout.decode().strip()


def _fast_forward(repo: Repo, head: str, seal: str, folder: str) -> list[str]:
    branch = repo.current_branch()
    if branch is None:
        return [f"HEAD is detached: the seal commit {seal[:12]} is reachable from its tag only"]
    if repo.head() != head or repo.is_dirty():
        return [
            f"branch {branch} left where it is (moved or dirty): the seal commit {seal[:12]} is reachable from its tag"
        ]
    repo.run("merge", "--ff-only", "--quiet", seal)
    return [f"branch {branch} fast-forwarded to the seal commit {seal[:12]} (it adds {folder}/ only)"]


# --- reading seals back from git objects ------------------------------------------------------------------------------


def record_problems(record: Any, display: str) -> list[Problem]:
    return schema_problems(record, "seal.schema.json", display)


def sealed_date(repo: Repo, seal_commit: str) -> datetime.date:
    """The day the seal was made: its seal commit's committer date (what waivers are judged against at the seal)."""
    stamp = int(repo.out("show", "-s", "--format=%ct", seal_commit))
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).date()

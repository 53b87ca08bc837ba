"""`verify TAG`: re-check a seal from git objects alone, as small named steps (the in-toto verifylib pattern).

Nothing from the run that made the seal, and nothing in `artifacts/`, is trusted or even read: the tag, the seal
commit and the `seals/<ID>/` it adds, the spec and the judged files as of the judged commit are read back from git's
object store, digests recomputed, schemas re-validated, envelopes checked against the allowed signers, the criteria
re-judged and the waivers re-judged against today's date. So any clone verifies: one that has the tag (a local tag,
else `git fetch origin tag TAG`), or — when the tag cannot be had — one whose branch history holds the seal commit
(said so: the tag itself was not checked). Then the seal's base is verified the same way, recursively, as long as
the base's seal is in the repository, and the chain is printed oldest first.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealgate.evidence import signing
from sealgate.evidence.judge import Judgement, judge
from sealgate.evidence.store import MANIFEST, EvidenceStore
from sealgate.kernel.errors import EXIT_OK, EXIT_REFUSED, EXIT_WAIVER_EXPIRED, EvidenceError, Problem, SealgateError
from sealgate.kernel.gitrepo import Repo
from sealgate.run.plan import open_spec
from sealgate.seal import commit as sealcommit
from sealgate.seal.tag import criteria_lines, parse_message
from sealgate.sprint import seals
from sealgate.sprint.model import Spec
from sealgate.sprint.seals import RECORD, SealRef
from sealgate.sprint.spec import SPRINT_DIR

Report = Callable[[str], None]


class Skipped(Exception):
    """The step does not apply to this seal; the message says why (printed, never counted as passed or failed)."""


class Expired(Exception):
    """Sealed and intact, but a waiver the seal relied on has expired since: a status of its own."""

    def __init__(self, lines: list[str], first: datetime.date) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines
        self.first = first


@dataclass
class VerifyState:
    repo: Repo
    ref: SealRef
    today: datetime.date
    workdir: Path  # seals/<ID>/ of the seal commit and sprint/ of the judged commit, extracted from git objects
    fields: dict[str, str] = field(default_factory=dict)
    judged: str | None = None
    record: dict[str, Any] | None = None
    spec: Spec | None = None
    store: EvidenceStore | None = None
    manifest: dict[str, Any] | None = None
    judgement: Judgement | None = None
    note: str = ""
    signatures: list[str] = field(default_factory=list)  # "tag", "seal commit": signed, and the signature verifies

    @property
    def tag_name(self) -> str:
        return self.ref.tag_name


Step = Callable[[VerifyState], list[Problem]]


def verify_tag(state: VerifyState) -> list[Problem]:
    tag = state.ref.tag
    if tag is None:
        raise Skipped(
            f"tag {state.tag_name} is not in this clone: the seal commit {state.ref.seal_commit[:12]} found in HEAD's "
            f"history is verified instead, the tag itself is NOT checked (fetch it: git fetch origin tag "
            f"{state.tag_name})"
        )
    where = f"tag {state.tag_name}"
    if not tag.annotated:
        return [Problem(where, "is a lightweight tag; a seal is always annotated")]
    state.fields = parse_message(tag.message)
    missing = [k for k in ("sprint", "commit", "manifest-sha256") if k not in state.fields]
    if missing:
        return [Problem(where, f"message lacks {', '.join(missing)}: not made by sealgate or edited")]
    judged = state.fields["commit"]
    if tag.commit == judged:
        return [Problem(where, f"points at the judged commit {judged[:12]} itself, not at a seal commit on it")]
    parents = state.repo.parents(tag.commit)
    if parents != [judged]:
        return [
            Problem(
                where,
                f"message names commit {judged[:12]} but the tag points at {tag.commit[:12]}, whose parent is "
                f"{', '.join(p[:12] for p in parents) or 'none'} (re-tagged by hand?)",
            )
        ]
    state.judged = judged
    return []


def verify_signature(state: VerifyState) -> list[Problem]:
    problems, said = [], []
    tag = state.ref.tag
    if tag is not None and tag.signed:
        ok, output = state.repo.verify_tag_signature(state.tag_name)
        if not ok:
            problems.append(Problem(f"tag {state.tag_name}", f"signature does not verify: {_last(output)}"))
        else:
            state.signatures.append("tag")
        said.append("tag")
    seal = state.ref.seal_commit
    if b"\ngpgsig " in state.repo.run("cat-file", "commit", seal).stdout:
        done = state.repo.run("verify-commit", seal, check=False)
        if done.returncode != 0:
            problems.append(
                Problem(f"seal commit {seal[:12]}", f"signature does not verify: {_last(done.stderr.decode())}")
            )
        else:
            state.signatures.append("seal commit")
        said.append("seal commit")
    if not said:
        raise Skipped("neither the tag nor the seal commit is signed")
    state.note = f"{' and '.join(said)} signed"
    return problems


def verify_seal_commit(state: VerifyState) -> list[Problem]:
    seal, folder = state.ref.seal_commit, state.ref.folder
    parents = state.repo.parents(seal)
    where = f"seal commit {seal[:12]}"
    if len(parents) != 1:
        return [Problem(where, f"has {len(parents)} parents; a seal commit has exactly one, the judged commit")]
    if state.judged is None:  # found in history: its parent is what it judged (checked against seal.json next)
        state.judged = parents[0]
    problems = []
    listing = state.repo.run("diff-tree", "-r", "--no-commit-id", "--name-status", "-z", parents[0], seal).stdout
    parts = listing.decode(errors="replace").split("\0")
    added = 0
    for status, path in zip(parts[0::2], parts[1::2], strict=False):
        if not path:
            continue
        if not path.startswith(f"{folder}/"):
            problems.append(Problem(where, f"changes {path}, outside {folder}/: a seal commit only adds its seal"))
        elif status != "A":
            problems.append(Problem(where, f"{path} is not new ({status}): a seal commit only adds files"))
        else:
            added += 1
    if not added:
        problems.append(Problem(where, f"adds nothing under {folder}/"))
    if not problems:
        _extract(state.repo, seal, folder, state.workdir / "seal")
        _extract(state.repo, state.judged, SPRINT_DIR, state.workdir / "spec")
    return problems


def verify_seal_record(state: VerifyState) -> list[Problem]:
    display = f"{state.ref.folder}/{RECORD}"
    path = state.workdir / "seal" / display
    if not path.is_file():
        return [Problem(display, "missing: the seal commit carries no seal record")]
    try:
        record = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return [Problem(display, f"not valid JSON: {exc}")]
    problems = sealcommit.record_problems(record, display)
    if problems:
        return problems
    state.record = record
    expected = {"sprint": state.ref.sprint, "tag": state.tag_name, "commit": state.judged}
    if state.fields:
        expected["manifest_sha256"] = state.fields["manifest-sha256"]
    for key, value in expected.items():
        if record[key] != value:
            problems.append(Problem(display, f"$.{key}: is {record[key]!r}, the seal is {value!r}"))
    return problems


def verify_manifest_digest(state: VerifyState) -> list[Problem]:
    assert state.record is not None and state.judged
    state.spec = _spec_at(state, state.ref.sprint)
    state.store = EvidenceStore(state.workdir / "seal", state.spec.slug, folder=state.ref.folder)
    try:
        state.manifest, digest = state.store.read_manifest()
    except EvidenceError as exc:
        return exc.problems
    expected = state.record["manifest_sha256"]
    if digest != expected:
        source = "the tag's manifest-sha256" if state.fields else f"{RECORD}'s manifest_sha256"
        where = state.store.display(state.store.directory / MANIFEST)
        return [Problem(where, f"sha256 {digest[:16]}… differs from {source} {expected[:16]}…")]
    return []


def verify_evidence_digests(state: VerifyState) -> list[Problem]:
    assert state.store and state.manifest is not None and state.spec
    problems = state.store.manifest_problems(state.manifest)  # also names unlisted statements and attachments
    known = {MANIFEST, RECORD, sealcommit.report_name(state.spec.id)} | {e["name"] for e in state.manifest["files"]}
    known |= {p.relative_to(state.store.directory).as_posix() for p in state.store.evidence_files()}
    for path in sorted(state.store.directory.rglob("*")):
        if path.is_file() and path.relative_to(state.store.directory).as_posix() not in known:
            problems.append(Problem(state.store.display(path), "is in the seal but is no evidence the manifest lists"))
    return problems


def verify_stage_set(state: VerifyState) -> list[Problem]:
    """The seal holds the evidence of exactly the stages its spec declares: none missing, none extra."""
    assert state.store and state.spec
    sealed = _sealed_statements(state)
    problems = [
        Problem(state.store.display(state.store.stage_path(n)), f"missing: {state.spec.relpath} declares stage {n}")
        for n in state.spec.stages
        if n not in sealed
    ]
    problems += [
        Problem(state.store.display(path), f"is in the seal but {state.spec.relpath} declares no stage {n}")
        for n, path in sorted(sealed.items())
        if n not in state.spec.stages
    ]
    return problems


def _sealed_statements(state: VerifyState) -> dict[int, Path]:
    assert state.store
    found = (re.fullmatch(r"eixo_(\d+)\.json", p.name) for p in state.store.directory.glob("eixo_*.json"))
    return {int(m[1]): state.store.directory / m[0] for m in found if m}


def verify_schemas(state: VerifyState) -> list[Problem]:
    assert state.store and state.spec
    problems = []
    for number in state.spec.stages:
        try:
            state.store.read_stage(number)
        except EvidenceError as exc:
            problems += exc.problems
    return problems


def verify_envelopes(state: VerifyState) -> list[Problem]:
    assert state.store and state.spec and state.record is not None
    envelopes = {n: state.store.envelope_path(n) for n in state.spec.stages}
    present = {n: p for n, p in envelopes.items() if p.is_file()}
    if not state.record["signed"] and not present:
        raise Skipped("the statements are not signed (sealed without --sign)")
    try:
        allowed = signing.verifier_for(state.repo)
    except SealgateError as exc:
        return [Problem(f"{state.ref.folder}/", "the statements are signed but cannot be checked here"), *exc.problems]
    problems, principals = [], set()
    for number, path in envelopes.items():
        display = state.store.display(path)
        if number not in present:
            problems.append(Problem(display, "missing: the seal says every statement is signed"))
            continue
        try:
            signed = signing.verify_envelope(path.read_bytes(), state.store.stage_path(number).read_bytes(), allowed)
        except signing.SignatureProblem as exc:
            problems.append(Problem(display, str(exc)))
            continue
        principals.add(f"{signed.principal} ({signed.keyid})")
    names = sorted({p.split(" (")[0] for p in principals})
    if not problems and names != sorted(state.record["signers"]):
        problems.append(
            Problem(f"{state.ref.folder}/{RECORD}", f"names signers {state.record['signers']}, the envelopes {names}")
        )
    state.note = f"signed by {', '.join(sorted(principals))}"
    return problems


def verify_commit(state: VerifyState) -> list[Problem]:
    assert state.store and state.spec and state.manifest is not None and state.judged
    problems = []
    if state.manifest["commit"] != state.judged:
        problems.append(
            Problem(
                state.store.display(state.store.directory / MANIFEST),
                f"made at {state.manifest['commit'][:12]}, the judged commit is {state.judged[:12]}",
            )
        )
    for number in sorted(_sealed_statements(state)):  # every statement the seal holds, declared or not
        commit = state.store.read_statement(number).run.commit
        if commit != state.judged:
            problems.append(
                Problem(
                    state.store.display(state.store.stage_path(number)),
                    f"made at {commit[:12]}, the judged commit is {state.judged[:12]} (evidence from another commit)",
                )
            )
    return problems


def verify_criteria(state: VerifyState) -> list[Problem]:
    assert state.spec and state.judged and state.store and state.record is not None
    judgement = judge(
        state.spec, state.store.root, state.judged, digest_source=_blob_digests(state.repo, state.judged),
        store=state.store,
    )  # fmt: skip
    state.judgement = judgement
    problems = [Problem(f"criterion {c.id}", f"{c.verdict.value}: {c.reason}") for c in judgement.failing]
    recorded = {c["id"]: c["verdict"] for c in state.record["criteria"]}
    told = criteria_lines(state.ref.tag.message) if state.ref.tag else {}
    for c in judgement.criteria:
        for source, said in ((f"tag {state.tag_name}", told), (f"{state.ref.folder}/{RECORD}", recorded)):
            if (source.startswith("tag") and not state.ref.tag) or said.get(c.id) == c.verdict.value:
                continue
            problems.append(
                Problem(source, f"says criterion {c.id} is {said.get(c.id, 'absent')}, evidence says {c.verdict.value}")
            )
    return problems


def verify_waivers(state: VerifyState) -> list[Problem]:
    assert state.judgement
    used = state.judgement.waivers_used
    if not used:
        raise Skipped("the seal relies on no waiver")
    expired = sorted((w for w in used if w.expires < state.today), key=lambda w: w.expires)
    if expired:
        raise Expired(
            [f"waiver for {w.target_kind} {w.target} ({w.source}) expired on {w.expires}" for w in expired],
            expired[0].expires,
        )
    state.note = f"{len(used)} waiver(s), the first to expire on {min(w.expires for w in used)}"
    return []


def verify_branch_copy(state: VerifyState) -> list[Problem]:
    """A later commit that edits the seal's files on the branch would make the record a reviewer reads on the forge
    disagree with the seal: named, file by file."""
    folder, seal = state.ref.folder, state.ref.seal_commit
    at_head = _tree(state.repo, "HEAD", folder)
    if not at_head:
        raise Skipped(f"HEAD's tree holds no {folder}/ (the branch was not fast-forwarded to the seal)")
    if state.repo.head() == seal:
        return []
    sealed = _tree(state.repo, seal, folder)
    problems = []
    for path in sorted(set(at_head) | set(sealed)):
        if at_head.get(path) == sealed.get(path):
            continue
        change = state.repo.out("log", "-1", "--format=%h", f"{seal}..HEAD", "--", path) or "?"
        what = "added" if path not in sealed else "deleted" if path not in at_head else "changed"
        problems.append(
            Problem(path, f"{what} at HEAD after the seal (commit {change}): the seal's copy is the record")
        )
    return problems


STEPS: list[tuple[str, Step]] = [
    ("tag is annotated and names the judged commit", verify_tag),
    ("signatures", verify_signature),
    ("seal commit only adds its seal on the judged commit", verify_seal_commit),
    ("seal record names this seal", verify_seal_record),
    ("manifest digest matches the tag", verify_manifest_digest),
    ("evidence files match the manifest", verify_evidence_digests),
    ("the seal holds the evidence of exactly the spec's stages", verify_stage_set),
    ("evidence validates against its schemas", verify_schemas),
    ("statements are signed by an allowed signer", verify_envelopes),
    ("evidence was made at the judged commit", verify_commit),
    ("criteria re-evaluate to pass", verify_criteria),
    ("waivers still in force today", verify_waivers),
    ("the branch's copy of the seal is unchanged", verify_branch_copy),
]


# --- one seal, then the chain -------------------------------------------------------------------------------------


@dataclass
class LinkResult:
    ref: SealRef
    ok: bool
    expired: datetime.date | None = None
    judged: str | None = None
    # What a summary of the verification (the VSA, seal/vsa.py) is made from: each step's outcome by its function's
    # name ("ok", "skip", "expired", "failed"; a step after a failure is absent: it did not run) and the signatures
    # that verified ("tag", "seal commit").
    steps: dict[str, str] = field(default_factory=dict)
    signatures: list[str] = field(default_factory=list)


def verify_seal(repo: Repo, ref: SealRef, today: datetime.date, report: Report) -> LinkResult:
    with tempfile.TemporaryDirectory(prefix="sealgate-verify-") as tmp:
        state = VerifyState(repo, ref, today, Path(tmp))
        result = LinkResult(ref, True)
        for title, step in STEPS:
            state.note = ""
            try:
                problems = step(state)
            except Skipped as exc:
                report(f"skip    {title} — {exc}")
                result.steps[step.__name__] = "skip"
                continue
            except Expired as exc:
                report(f"EXPIRED {title}")
                for line in exc.lines:
                    report(f"        {line}")
                result.expired = exc.first
                result.steps[step.__name__] = "expired"
                continue
            except SealgateError as exc:
                problems = exc.problems
            if problems:
                result.ok = False
                result.steps[step.__name__] = "failed"
                report(f"FAILED  {title}")
                for problem in problems:
                    report(f"        {problem}")
                break  # later steps depend on earlier ones
            result.steps[step.__name__] = "ok"
            report(f"ok      {title}" + (f" — {state.note}" if state.note else ""))
        result.judged = state.judged
        result.signatures = list(state.signatures)
        return result


def verify_base_link(repo: Repo, ref: SealRef, judged: str | None) -> tuple[SealRef | None, str, bool]:
    """(the base's seal to verify next, what to say about the link, whether the link itself holds)."""
    record = seals.read_record(repo, ref.seal_commit, ref.sprint)
    base = record.get("base") if record else None
    if not isinstance(base, dict):
        return None, "first sprint of its chain", True
    tag, commit, sprint = base.get("tag"), base.get("commit"), base.get("sprint")
    if base.get("external"):
        return None, f"base {tag} is in {base['external']}: NOT verified here", True
    if not sprint:
        return None, f"base {tag} is not a sealgate seal: the chain starts there", True
    if not commit or not repo.has_commit(commit):
        return None, f"base {tag} (seal {str(commit)[:12]}) is not in this repository: NOT verified", True
    local = seals.from_tag(repo, tag)
    if local is not None and local.seal_commit != commit:
        return (
            None,
            f"base tag {tag} now points at {local.seal_commit[:12]}, {ref.tag_name} recorded {commit[:12]}",
            False,
        )
    base_judged = repo.parents(commit)
    if judged and not (repo.is_ancestor(commit, judged) or (base_judged and repo.is_ancestor(base_judged[0], judged))):
        return None, f"base {tag} ({commit[:12]}) is not an ancestor of {ref.tag_name}'s judged commit", False
    return SealRef(tag, sprint, commit, local.tag if local else None), f"base {tag}", True


def locate(repo: Repo, tag_name: str, sprint: str | None, report: Report) -> SealRef:
    """The seal TAG names: the local tag; else the tag fetched from origin; else the seal commit in HEAD's history."""
    ref = seals.from_tag(repo, tag_name)
    if ref is not None:
        return ref
    if "origin" in repo.remotes():
        fetched = repo.run(
            "fetch", "--quiet", "--no-tags", "origin", "tag", tag_name, env={"GIT_TERMINAL_PROMPT": "0"}, check=False
        )
        ref = seals.from_tag(repo, tag_name) if fetched.returncode == 0 else None
        if ref is not None:
            report(f"fetched tag {tag_name} from origin")
            return ref
    ref = seals.in_history(repo, tag_name, sprint)
    if ref is not None:
        return ref
    raise EvidenceError(f"evidence for {tag_name} not found: fetch it with `git fetch origin tag {tag_name}`")


@dataclass
class ChainVerdict:
    """What `verify TAG` found: its exit code, and each seal of the chain it verified, oldest first (TAG's last)."""

    code: int
    results: list[LinkResult]

    @property
    def top(self) -> LinkResult:
        return self.results[-1]


def verify(
    root: Path, tag_name: str, sprint_id: str | None, report: Report = print, today: datetime.date | None = None
) -> int:
    """Verify TAG and every base whose seal is in the repository, oldest first; the exit code (0, 1 or 3)."""
    return verify_chain(root, tag_name, sprint_id, report, today).code


def verify_chain(
    root: Path, tag_name: str, sprint_id: str | None, report: Report = print, today: datetime.date | None = None
) -> ChainVerdict:
    """`verify`, returning what each seal's verification found besides the exit code (for a summary of it)."""
    repo = Repo(root)
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    top = locate(repo, tag_name, sprint_id, report)
    chain: list[tuple[SealRef, str]] = [(top, "")]
    seen = {top.seal_commit}
    start, broken_links = "", []
    while chain[-1][0].sprint:  # (a tag that is no sealgate seal fails its first step; it has no base to walk)
        ref = chain[-1][0]
        parents = repo.parents(ref.seal_commit)
        base, said, holds = verify_base_link(repo, ref, parents[0] if parents else None)
        if not holds:
            broken_links.append((ref, said))
        if base is None or base.seal_commit in seen:
            start = said
            break
        seen.add(base.seal_commit)
        chain.append((base, f"base of {ref.tag_name}"))
    names = [ref.tag_name for ref, _ in reversed(chain)]
    if start:  # what is known of the oldest seal's own base reads beside it
        names[0] += f" ({start})"
    report("chain: " + " → ".join(names))
    results = []
    for ref, role in reversed(chain):
        head = f"seal {ref.seal_commit[:12]}" + ("" if ref.tag else ", found in HEAD's history")
        report(f"── {ref.tag_name}: {head}" + (f" ({role})" if role else ""))
        results.append(verify_seal(repo, ref, today, report))
    for ref, said in broken_links:
        report(f"FAILED  link {ref.tag_name} → its base: {said}")
    broken = [r for r in results if not r.ok]
    top_result = results[-1]
    if broken or broken_links:
        bases = [r.ref.tag_name for r in broken if r is not top_result]
        why = f" — its base {', '.join(bases)} does not verify (the chain is broken there)" if bases else ""
        if broken_links and not bases:
            why = f" — the link to its base is broken: {broken_links[0][1]}"
        report(f"verify {tag_name}: FAILED{why}")
        return ChainVerdict(EXIT_REFUSED, results)
    expired = [r.expired for r in results if r.expired]
    if expired:
        report(f"verify {tag_name}: SEALED, waiver expired on {min(expired)}")
        return ChainVerdict(EXIT_WAIVER_EXPIRED, results)
    tail = "" if top.tag else " from the seal commit in HEAD's history — the tag itself was not checked"
    report(f"verify {tag_name}: OK{tail}")
    return ChainVerdict(EXIT_OK, results)


# --- reading from git objects --------------------------------------------------------------------------------------


def _tree(repo: Repo, rev: str, folder: str) -> dict[str, str]:
    """path → blob id of every file under `folder` as of `rev`."""
    done = repo.run("ls-tree", "-r", "-z", rev, "--", f"{folder}/", check=False)
    entries = {}
    for line in done.stdout.decode(errors="replace").split("\0"):
        if "\t" in line:
            meta, path = line.split("\t", 1)
            entries[path] = meta.split()[2]
    return entries


def _extract(repo: Repo, commit: str, folder: str, dest: Path) -> None:
    """Write `folder` as of `commit` under `dest`, byte for byte from git's objects (no attributes, no filters)."""
    entries = _tree(repo, commit, folder)
    if not entries:
        return
    names = sorted(entries)
    batch = repo.run("cat-file", "--batch", input="".join(f"{entries[n]}\n" for n in names).encode()).stdout
    stream = io.BytesIO(batch)
    for name in names:
        header = stream.readline().split()
        size = int(header[2])
        data = stream.read(size)
        stream.read(1)  # the newline after each object
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _spec_at(state: VerifyState, sprint_id: str) -> Spec:
    """The spec (and its waivers and plugins) as of the judged commit, its waivers judged as of the seal's day (the
    waivers are judged against today by their own step)."""
    spec = open_spec(
        state.workdir / "spec",
        sprint_id,
        today=sealcommit.sealed_date(state.repo, state.ref.seal_commit),
        with_stack=False,  # judging recorded evidence needs no stack
    )
    spec.path = state.repo.root / spec.relpath  # displayed paths stay the repository's
    return spec


def _blob_digests(repo: Repo, commit: str) -> Callable[[str], str | None]:
    """sha256 of a file as of `commit` (from git's object store), None if absent there."""

    def digest(relative: str) -> str | None:
        data = repo.show(commit, relative)
        return hashlib.sha256(data).hexdigest() if data is not None else None

    return digest


def _last(output: str) -> str:
    lines = output.strip().splitlines()
    return lines[-1] if lines else "no output"

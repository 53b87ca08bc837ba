"""`verify TAG --vsa FILE`: what `verify` concluded, as a SLSA Verification Summary Attestation (VSA v1).

A consumer who trusts sealgate (and, signed, the key) can act on a seal without re-running `verify` or reading the
evidence: the VSA is an in-toto Statement v1 whose predicate (https://slsa.dev/verification_summary/v1) says who
verified what, when, against which policy, from which attestations, and the outcome. Everything in it is read from
git objects and from the verification just made, never from `artifacts/` or the working tree:

- `subject`: the seal commit (`gitCommit`, named by the seal's tag) — the one object that holds the evidence, the
  report and the record, and the one a tag-less clone verifies — plus, when the tag was in this clone and checked,
  the tag object itself (`gitTag`, named `refs/tags/<TAG>`): a tag can be deleted and re-made on the same commit
  by anyone with push access, so the summary names the very tag object it checked;
- `resourceUri`: the repository and the judged commit — `git+<origin URL>@<commit>` (credentials dropped), or,
  with no origin URL (none, or a local path, which names nothing on another machine), `pkg:generic/<name>@<commit>`
  with the repository's path-free name;
- `policy`: the sprint spec as of the judged commit (`#sprint/<ID>.yaml` of that resource), with its digests;
- `inputAttestations`: every in-toto statement sealed in every seal of the chain that was verified (the stage
  statements, their DSSE envelopes, and attachments that are statements themselves, `*.intoto.json`);
- `verificationResult`: PASSED exactly when `verify` exits 0 — a seal whose waiver has expired since (exit 3) no
  longer meets its policy today, so it is FAILED here too, as it is never silently fine on the console;
- `verifiedLevels`: sealgate's own levels (the spec allows custom values not starting with `SLSA_`):
  `SEALGATE_SEALED_V1` (every step of `verify` passed: integrity, schemas, commit, criteria, waivers, chain) and
  `SEALGATE_SIGNED_V1` (also: every statement's DSSE envelope, the seal commit and the checked tag are signed and
  verify against the allowed signers); `["FAILED"]` when verification failed, as the spec asks;
- `dependencyLevels`: the bases of the chain that verified, counted per level (a base is what a sprint builds on).

The file is written atomically, PASSED or FAILED alike (a FAILED summary is a summary too); `--sign` writes it as a
DSSE envelope signed like the evidence (`evidence/signing.py`). `verify`'s exit code is unchanged by either.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

from sealgate import __version__
from sealgate.evidence import signing
from sealgate.kernel.errors import EXIT_OK, InputError, Problem, SealgateError
from sealgate.kernel.fsutil import atomic_write, pretty_json, sha256_bytes
from sealgate.kernel.gitrepo import Repo
from sealgate.seal.verify import ChainVerdict, LinkResult, Report, verify_chain
from sealgate.sprint.spec import SPRINT_DIR

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
# The verifier and its version in one URI: the VSA v1 predicate has no other field for a version (SLSA 1.2 adds
# `verifier.version`, which the in-toto-attestation 0.9.3 definitions refuse as an unknown field).
VERIFIER_ID = f"urn:sealgate:verify:{__version__}"
SEALED = "SEALGATE_SEALED_V1"
SIGNED = "SEALGATE_SIGNED_V1"
PASSED, FAILED = "PASSED", "FAILED"

# A sealed file that is an in-toto attestation: a stage statement, its envelope, a statement attached by a check.
_ATTESTATION = re.compile(r"eixo_\d+(\.dsse)?\.json|.+\.intoto\.json")
# git's scp-like remote syntax, `[user@]host:path` (a colon before any slash): an SSH URL in another spelling.
_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^/:]+):(?P<path>.+)$")


def write_summary(
    root: Path,
    tag_name: str,
    sprint_id: str | None,
    path: Path,
    *,
    sign: bool = False,
    report: Report = print,
    today: datetime.date | None = None,
    now: datetime.datetime | None = None,
) -> int:
    """Verify TAG (printing exactly what `verify` prints), write its VSA to `path`, return verify's exit code."""
    repo = Repo(root)
    signer = signing.signer_for(repo) if sign else None  # a missing signing setting is said before verifying
    try:
        verdict = verify_chain(root, tag_name, sprint_id, report, today)
    except SealgateError as exc:  # no seal found: nothing to be the VSA's subject
        raise type(exc)(*exc.problems, Problem(str(path), f"not written: no seal of {tag_name} to summarize")) from None
    statement = summary(repo, verdict, now or datetime.datetime.now(datetime.timezone.utc))
    payload = pretty_json(statement)
    try:
        atomic_write(path, signing.make_envelope(payload, signer) if signer is not None else payload)
    except OSError as exc:  # a directory, a read-only place: said in one line (verify's own lines are printed)
        raise InputError(
            Problem(str(path), f"the verification summary cannot be written there: {exc.strerror or exc}")
        ) from None
    predicate = statement["predicate"]
    how = "a DSSE envelope signed with user.signingKey" if signer is not None else "an unsigned in-toto Statement"
    report(
        f"vsa: wrote {path} ({how}): verificationResult {predicate['verificationResult']}, "
        f"verifiedLevels {', '.join(predicate['verifiedLevels'])}"
    )
    return verdict.code


def summary(repo: Repo, verdict: ChainVerdict, now: datetime.datetime) -> dict[str, Any]:
    """The VSA Statement (a dict, ready for deterministic JSON) of a verification of a chain."""
    top = verdict.top
    ref = top.ref
    location = repository_location(repo)
    judged = top.judged or _only_parent(repo, ref.seal_commit)
    resource = f"{location}@{judged}"
    subject: list[dict[str, Any]] = [{"name": ref.tag_name, "digest": {"gitCommit": ref.seal_commit}}]
    if ref.tag is not None and ref.tag.annotated:  # (a lightweight tag is no object of its own; it fails verify)
        tag_object = repo.out("rev-parse", f"refs/tags/{ref.tag_name}")
        subject.append({"name": f"refs/tags/{ref.tag_name}", "digest": {"gitTag": tag_object}})

    passed = verdict.code == EXIT_OK
    dependencies: Counter[str] = Counter()
    for base in verdict.results[:-1]:
        if base.ok and base.expired is None:
            dependencies.update(levels_of(base))
    predicate: dict[str, Any] = {
        "verifier": {"id": VERIFIER_ID},
        "timeVerified": now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resourceUri": resource,
        "policy": _policy(repo, resource, judged, ref.sprint),
        "inputAttestations": [a for result in verdict.results for a in _attestations(repo, location, result)],
        "verificationResult": PASSED if passed else FAILED,
        # The SLSA spec's type: an array of strings (the 0.9.3 Python binding declares one string; the spec wins).
        "verifiedLevels": levels_of(top) if passed else [FAILED],
    }
    if dependencies:
        predicate["dependencyLevels"] = dict(sorted(dependencies.items()))
    return {"_type": STATEMENT_TYPE, "subject": subject, "predicateType": PREDICATE_TYPE, "predicate": predicate}


def levels_of(result: LinkResult) -> list[str]:
    """The levels one verified seal reached: sealed; signed when everything `seal --sign` signs verified."""
    signed = (
        result.steps.get("verify_envelopes") == "ok"
        and "seal commit" in result.signatures
        and (result.ref.tag is None or "tag" in result.signatures)
    )
    return [SEALED, SIGNED] if signed else [SEALED]


def repository_location(repo: Repo) -> str:
    """`git+<origin URL>` without credentials, or `pkg:generic/<name>` when there is no URL another machine could
    use (no origin, or a local path): never a path of this machine."""
    done = repo.run("remote", "get-url", "origin", check=False)  # get-url applies url.<base>.insteadOf
    url = done.stdout.decode(errors="replace").strip() if done.returncode == 0 else ""
    remote = _remote_url(url) if url else None
    if remote is not None:
        return remote
    name = Path(url.rstrip("/")).name if url else repo.root.name
    name = name.removesuffix(".git") or repo.root.name
    return f"pkg:generic/{urllib.parse.quote(name, safe='')}"


def _remote_url(url: str) -> str | None:
    """An SPDX-style `git+<scheme>://host/path` for a network remote; None for a local one."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.removeprefix("git+")
    if len(scheme) > 1 and scheme != "file":  # (a one-letter "scheme" is a Windows drive)
        try:
            port = parts.port
        except ValueError:  # not a port number: git could not reach it either; keep the host alone
            port = None
        host = parts.hostname or ""
        netloc = f"{host}:{port}" if port else host  # user and password dropped: no secret in a VSA
        return f"git+{scheme}://{netloc}{parts.path}"
    scp = _SCP_LIKE.match(url) if not parts.scheme and "/" not in url.split(":", 1)[0] else None
    if scp is not None:
        return f"git+ssh://{scp['host']}/{scp['path'].lstrip('/')}"
    return None


def _policy(repo: Repo, resource: str, judged: str, sprint: str) -> dict[str, Any]:
    relative = f"{SPRINT_DIR}/{sprint}.yaml" if sprint else f"{SPRINT_DIR}/"  # (a tag that is no seal: no spec)
    policy: dict[str, Any] = {"uri": f"{resource}#{relative}"}
    blobs = _blob_ids(repo, judged, relative) if sprint else {}
    data = repo.show(judged, relative) if relative in blobs else None
    if data is not None:
        policy["digest"] = {"sha256": sha256_bytes(data), "gitBlob": blobs[relative]}
    return policy


def _attestations(repo: Repo, location: str, result: LinkResult) -> list[dict[str, Any]]:
    """Every in-toto statement (or envelope) the seal commit holds under seals/<ID>/, with its digests."""
    if not result.ref.sprint:
        return []
    folder, commit = result.ref.folder, result.ref.seal_commit
    found = []
    for path, blob in sorted(_blob_ids(repo, commit, f"{folder}/").items()):
        if not _ATTESTATION.fullmatch(path.removeprefix(f"{folder}/")):
            continue
        data = repo.show(commit, path)
        if data is None:
            continue
        found.append({"uri": f"{location}@{commit}#{path}", "digest": {"sha256": sha256_bytes(data), "gitBlob": blob}})
    return found


def _blob_ids(repo: Repo, commit: str, pathspec: str) -> dict[str, str]:
    """path → blob id of the files `pathspec` names as of `commit` (empty when the commit is not here)."""
    done = repo.run("ls-tree", "-r", "-z", commit, "--", pathspec, check=False)
    entries = {}
    for line in done.stdout.decode(errors="replace").split("\0"):
        meta, tab, path = line.partition("\t")
        if tab and meta.split()[1] == "blob":
            entries[path] = meta.split()[2]
    return entries


def _only_parent(repo: Repo, commit: str) -> str:
    """The judged commit of a seal whose verification stopped before naming it: a seal commit's one parent."""
    parents = repo.parents(commit)
    return parents[0] if len(parents) == 1 else commit

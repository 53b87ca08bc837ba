"""What closes a run's evidence, and what lets a later run trust it again.

`finalize` ends every run: with `--sign` each stage statement gets a DSSE envelope next to it (unsigned runs drop
envelopes, so a seal is either wholly signed or not at all), then the manifest is written, then the keyed digests.
`reuse_refusal` is the question a re-seal asks before letting a stage's evidence stand for a re-run: signed evidence
must still verify under its envelope; unsigned evidence must still match this checkout's keyed digests.
"""

from __future__ import annotations

from pathlib import Path

from sealgate.evidence import keyed, signing
from sealgate.evidence.store import EvidenceStore
from sealgate.kernel.errors import SealgateError
from sealgate.kernel.fsutil import atomic_write
from sealgate.kernel.gitrepo import Repo
from sealgate.sprint.model import Spec


def finalize(root: Path, spec: Spec, commit: str, stages: list[int], sign: bool) -> None:
    """`stages`: those this run wrote or verified (re-seal reuse); only theirs get fresh keyed digests."""
    store = EvidenceStore(root, spec.slug)
    if sign:
        repo = Repo(root)
        signer, allowed = signing.signer_for(repo), signing.verifier_for(repo)
        for number in spec.stages:
            statement = store.stage_path(number)
            if not statement.is_file():
                continue
            envelope = store.envelope_path(number)
            if envelope.is_file() and _envelope_holds(envelope, statement, allowed):
                continue  # a reused stage keeps the envelope that made it trusted
            atomic_write(envelope, signing.make_envelope(statement.read_bytes(), signer))
    else:
        for envelope in store.directory.glob("eixo_*.dsse.json"):
            envelope.unlink()
    store.write_manifest(spec.id, commit, spec.stages)
    keyed.record(root, store, stages)


def _envelope_holds(envelope: Path, statement: Path, allowed: signing.AllowedSigners) -> bool:
    try:
        signing.verify_envelope(envelope.read_bytes(), statement.read_bytes(), allowed)
    except signing.SignatureProblem:
        return False
    return True


def reuse_refusal(root: Path, store: EvidenceStore, stage: int) -> str | None:
    """None when the stage's evidence on disk is what a run of this checkout (or the holder of an allowed key)
    wrote; otherwise why it must be re-run."""
    envelope = store.envelope_path(stage)
    display = store.display(store.stage_path(stage))
    if envelope.is_file():
        try:
            allowed = signing.verifier_for(Repo(root))
        except SealgateError:
            allowed = None  # no allowed-signers file here: the keyed digests decide, as for unsigned evidence
        if allowed is not None:
            try:
                signing.verify_envelope(envelope.read_bytes(), store.stage_path(stage).read_bytes(), allowed)
            except signing.SignatureProblem as exc:
                return f"its evidence was edited after the run ({store.display(envelope)}: {exc})"
            return None
    bad, recorded = keyed.unverified(root, store, keyed.stage_files(store, stage))
    if not recorded:
        return f"{display} carries no keyed digest of this checkout (made elsewhere, or before keyed digests)"
    if bad:
        return f"its evidence was edited after the run ({', '.join(store.display(store.directory / n) for n in bad)})"
    return None

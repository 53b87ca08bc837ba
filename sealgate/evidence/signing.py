"""Signed evidence: each stage statement wrapped in a DSSE envelope (in-toto's signing format), signed with the SSH
key git signs with.

The envelope, its JSON form and its pre-authentication encoding (PAE) are securesystemslib's `dsse.Envelope` — the
in-toto projects' own implementation, so the files are what in-toto tooling reads. securesystemslib has no SSH
signer, so the two pieces it leaves open are here: `SSHSigner` signs the PAE bytes with `ssh-keygen -Y sign`
(namespace `sealgate-dsse`, so a signature made for git commits can never pass for one over evidence, nor the reverse)
and `AllowedSignerKey` verifies with `ssh-keygen -Y verify` against `gpg.ssh.allowedSignersFile` — the same file
that says whose signed commits and tags git accepts — and names the signer's principal.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib import exceptions as sslib_errors
from securesystemslib.dsse import Envelope
from securesystemslib.signer import Key, SecretsHandler, Signature, Signer

from sealgate.kernel.errors import InputError, Problem, SealgateError
from sealgate.kernel.gitrepo import Repo

PAYLOAD_TYPE = "application/vnd.in-toto+json"
NAMESPACE = "sealgate-dsse"
_ARMOR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_ARMOR_END = "-----END SSH SIGNATURE-----"


class SignatureProblem(Exception):
    """An envelope that does not verify; the message says why, in one line."""


# --- the key git signs with -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningConfig:
    program: str  # gpg.ssh.program, ssh-keygen by default
    key: str | None  # user.signingKey: a key file, or "key::<public key>" held by ssh-agent
    allowed_signers: Path | None  # gpg.ssh.allowedSignersFile
    format: str  # gpg.format


def git_signing_config(repo: Repo) -> SigningConfig:
    allowed = repo.config("gpg.ssh.allowedSignersFile")
    return SigningConfig(
        program=repo.config("gpg.ssh.program") or "ssh-keygen",
        key=repo.config("user.signingKey"),
        allowed_signers=_path(repo.root, allowed) if allowed else None,
        format=repo.config("gpg.format") or "openpgp",
    )


def _path(root: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else root / path


def signer_for(repo: Repo) -> SSHSigner:
    """The signer `--sign` uses, or one clear line saying which git setting is missing."""
    config = git_signing_config(repo)
    if config.format != "ssh":
        raise InputError(
            Problem(
                "git config gpg.format",
                f"is {config.format!r}: --sign signs evidence with an SSH key only",
                "git config gpg.format ssh && git config user.signingKey ~/.ssh/id_ed25519.pub",
            )
        )
    if not config.key:
        raise InputError(Problem("git config user.signingKey", "is not set: --sign needs the key git signs with"))
    verifier_for(repo)  # what is signed is verified before the tag is made: the allowed signers must exist
    return SSHSigner(config.program, config.key, repo.root)


def verifier_for(repo: Repo) -> AllowedSigners:
    config = git_signing_config(repo)
    if config.allowed_signers is None:
        raise InputError(
            Problem(
                "git config gpg.ssh.allowedSignersFile",
                "is not set: signed evidence is verified against the file that says who may sign",
                "point it at a file of `<principal> <key type> <public key>` lines",
            )
        )
    if not config.allowed_signers.is_file():
        raise InputError(Problem("git config gpg.ssh.allowedSignersFile", f"{config.allowed_signers} does not exist"))
    return AllowedSigners(config.program, config.allowed_signers)


# --- SSH signatures as securesystemslib signers and keys ----------------------------------------------------------


def _armor(blob: bytes) -> bytes:
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return "\n".join([_ARMOR_BEGIN, *lines, _ARMOR_END, ""]).encode()


def _unarmor(text: bytes) -> bytes:
    lines = text.decode().strip().splitlines()
    if not lines or lines[0] != _ARMOR_BEGIN or lines[-1] != _ARMOR_END:
        raise SignatureProblem("ssh-keygen did not print an SSH signature")
    return base64.b64decode("".join(lines[1:-1]))


def _ssh_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    start = offset + 4
    return blob[start : start + length], start + length


def signing_key_of(blob: bytes) -> tuple[str, str]:
    """(fingerprint, "type base64") of the public key inside an SSHSIG blob (PROTOCOL.sshsig: the magic, a version,
    then the public key as an SSH string)."""
    if not blob.startswith(b"SSHSIG") or len(blob) < 14:
        raise SignatureProblem("the signature is not an SSH signature (SSHSIG)")
    try:
        public, _ = _ssh_string(blob, 10)
        key_type, _ = _ssh_string(public, 0)
    except struct.error:
        raise SignatureProblem("the SSH signature is truncated") from None
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(public).digest()).decode().rstrip("=")
    return fingerprint, f"{key_type.decode(errors='replace')} {base64.b64encode(public).decode()}"


class SSHSigner(Signer):
    """Signs with `ssh-keygen -Y sign`, the way git signs commits with `gpg.format ssh`."""

    def __init__(self, program: str, key: str, root: Path) -> None:
        self.program = program
        self.key = key
        self.root = root

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: Key, secrets_handler: SecretsHandler | None = None
    ) -> SSHSigner:
        raise NotImplementedError("sealgate builds its signer from git's configuration (signer_for)")

    @property
    def public_key(self) -> Key:
        raise NotImplementedError("the signing key is read from each signature (signing_key_of)")

    def sign(self, payload: bytes) -> Signature:
        with tempfile.TemporaryDirectory(prefix="sealgate-sign-") as tmp:
            argv = [self.program, "-Y", "sign", "-n", NAMESPACE, "-f"]
            if self.key.startswith("key::"):  # a literal public key, its private half in ssh-agent (as git does)
                literal = Path(tmp) / "signing_key.pub"
                literal.write_text(self.key[len("key::") :] + "\n")
                argv += [str(literal), "-U"]
            else:
                argv.append(str(_path(self.root, self.key)))
            try:
                done = subprocess.run(argv, input=payload, capture_output=True, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SealgateError(f"{self.program} -Y sign could not run: {exc}") from None
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise SealgateError(
                f"{self.program} -Y sign with user.signingKey {self.key[:60]} failed: "
                f"{said[-1] if said else f'exit {done.returncode}'}"
            )
        blob = _unarmor(done.stdout)
        keyid, _ = signing_key_of(blob)
        return Signature(keyid, blob.hex())


@dataclass(frozen=True)
class AllowedSigners:
    program: str
    path: Path

    def principal_for(self, signature: Signature, data: bytes) -> str:
        """The principal the allowed-signers file names for the key that made `signature` over `data`."""
        blob = bytes.fromhex(signature.signature)
        keyid, _ = signing_key_of(blob)
        if keyid != signature.keyid:
            raise SignatureProblem(f"keyid {signature.keyid} is not the key that made the signature ({keyid})")
        with tempfile.TemporaryDirectory(prefix="sealgate-verify-") as tmp:
            sig_file = Path(tmp) / "envelope.sig"
            sig_file.write_bytes(_armor(blob))
            found = self._run(["-Y", "find-principals", "-s", str(sig_file), "-f", str(self.path)], b"")
            principals = found.stdout.decode().split() if found.returncode == 0 else []
            if not principals:
                raise SignatureProblem(f"signed by key {keyid}, which {self.path.name} does not allow to sign")
            for principal in principals:
                argv = ["-Y", "verify", "-f", str(self.path), "-I", principal, "-n", NAMESPACE, "-s", str(sig_file)]
                if self._run(argv, data).returncode == 0:
                    return principal
        raise SignatureProblem(f"the signature by {principals[0]} ({keyid}) does not verify over this statement")

    def _run(self, args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run([self.program, *args], input=data, capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SignatureProblem(f"{self.program} {args[1]} could not run: {exc}") from None


class AllowedSignerKey(Key):
    """A public key that counts only as far as the allowed-signers file vouches for it; ssh-keygen decides."""

    def __init__(self, keyid: str, public: str, allowed: AllowedSigners) -> None:
        super().__init__(keyid, "ssh", "sshsig", {"public": public})
        self.allowed = allowed
        self.principal: str | None = None

    @classmethod
    def from_dict(cls, keyid: str, key_dict: dict[str, Any]) -> AllowedSignerKey:
        raise NotImplementedError("keys come from the signatures and the allowed-signers file, never from a dict")

    def to_dict(self) -> dict[str, Any]:
        return self._to_dict()

    def verify_signature(self, signature: Signature, data: bytes) -> None:
        try:
            self.principal = self.allowed.principal_for(signature, data)
        except SignatureProblem as exc:
            raise sslib_errors.UnverifiedSignatureError(str(exc)) from None


# --- envelopes ----------------------------------------------------------------------------------------------------


def make_envelope(statement: bytes, signer: SSHSigner) -> bytes:
    envelope = Envelope(statement, PAYLOAD_TYPE, {})
    envelope.sign(signer)
    return (json.dumps(envelope.to_dict(), sort_keys=True, indent=2) + "\n").encode()


@dataclass(frozen=True)
class Signed:
    principal: str
    keyid: str


def verify_envelope(envelope_bytes: bytes, statement: bytes, allowed: AllowedSigners) -> Signed:
    """The envelope signs exactly `statement`, and a key the allowed-signers file names made its signature."""
    try:
        data = json.loads(envelope_bytes)
        envelope = Envelope.from_dict(copy.deepcopy(data))  # from_dict rewrites the dict it is given
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SignatureProblem(f"not a DSSE envelope: {type(exc).__name__}: {exc}") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise SignatureProblem(f"payloadType is {envelope.payload_type!r}, expected {PAYLOAD_TYPE!r}")
    if envelope.payload != statement:
        raise SignatureProblem("the statement differs from the payload its envelope signs (edited after signing)")
    if not envelope.signatures:
        raise SignatureProblem("the envelope carries no signature")
    keys: list[AllowedSignerKey] = []
    for signature in envelope.signatures.values():
        try:
            _, public = signing_key_of(bytes.fromhex(signature.signature))
        except ValueError:
            raise SignatureProblem("a signature is not hex-encoded SSHSIG") from None
        keys.append(AllowedSignerKey(signature.keyid, public, allowed))
    try:
        accepted = envelope.verify(keys, 1)
    except sslib_errors.UnverifiedSignatureError:
        reasons = []
        for signature in envelope.signatures.values():
            try:
                allowed.principal_for(signature, envelope.pae())
            except SignatureProblem as exc:
                reasons.append(str(exc))
        raise SignatureProblem("; ".join(reasons) or "no signature verifies") from None
    key = next(k for k in keys if k.keyid in accepted)
    assert key.principal is not None
    return Signed(key.principal, key.keyid)

"""Signed evidence: `seal --sign` wraps every statement in a DSSE envelope signed with the SSH key git signs with
(real ssh-keygen keys made in a temp dir), `verify` names the signer from `gpg.ssh.allowedSignersFile`, and an
envelope re-signed with another key or a statement edited under a valid envelope fails, naming the file."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import git, need_tool
from demo import make_demo_repo

from sealgate import engine
from sealgate.api.context import RunOptions
from sealgate.evidence import signing
from sealgate.kernel.errors import InputError
from sealgate.kernel.gitrepo import Repo
from seals import allow_signers, configure_signing, edit_json, forge_seal, sealed_file, ssh_key

PRINCIPAL = "tester@example.invalid"


@pytest.fixture
def signed_repo(tmp_path: Path) -> tuple[Path, Path, Path]:
    need_tool("ssh-keygen")
    root = make_demo_repo(tmp_path)
    key, other = ssh_key(tmp_path, "sealer"), ssh_key(tmp_path, "intruder")
    configure_signing(root, key, allow_signers(tmp_path, (PRINCIPAL, key)))
    return root, key, other


def seal(root: Path, **kw: object) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = engine.seal(root, "DEMO", RunOptions(backend="local", **kw), out=lines.append)  # type: ignore[arg-type]
    return code, lines


def verify(root: Path) -> tuple[int, list[str]]:
    out: list[str] = []
    return engine.verify(root, "DEMO-SEALED", None, out=out.append), out


def test_signed_seal_verifies_and_names_the_signer(signed_repo: tuple[Path, Path, Path]) -> None:
    root, key, _ = signed_repo
    code, lines = seal(root, sign=True)
    assert code == 0, lines
    envelope = json.loads(sealed_file(root, "DEMO-SEALED", "eixo_0.dsse.json"))
    statement = sealed_file(root, "DEMO-SEALED", "eixo_0.json")
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope["payload"]) == statement
    assert "eixo_0.dsse.json" in {
        e["name"] for e in json.loads(sealed_file(root, "DEMO-SEALED", "manifest.json"))["files"]
    }
    # Independently of sealgate's code: the signature is an SSH signature over the DSSE PAE of the statement.
    pae = b"DSSEv1 %d %b %d %b" % (28, b"application/vnd.in-toto+json", len(statement), statement)
    armored = signing._armor(base64.b64decode(envelope["signatures"][0]["sig"]))
    sig_file = root.parent / "eixo_0.sig"
    sig_file.write_bytes(armored)
    allowed = git(root, "config", "gpg.ssh.allowedSignersFile")
    checked = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", allowed, "-I", PRINCIPAL, "-n", "sealgate-dsse", "-s", str(sig_file)],
        input=pae,
        capture_output=True,
    )
    assert checked.returncode == 0, checked.stderr
    code, out = verify(root)
    assert code == 0, out
    assert "ok      signatures — tag and seal commit signed" in out
    fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True).stdout.split()[1]
    assert f"ok      statements are signed by an allowed signer — signed by {PRINCIPAL} ({fingerprint})" in out
    record = json.loads(sealed_file(root, "DEMO-SEALED", "seal.json"))
    assert record["signed"] is True and record["signers"] == [PRINCIPAL]


def test_an_envelope_resigned_with_another_key_fails_verify(signed_repo: tuple[Path, Path, Path]) -> None:
    root, _, other = signed_repo
    assert seal(root, sign=True)[0] == 0
    # A forger turns a result around and signs it with a key of their own; every digest made consistent.
    edited = edit_json(sealed_file(root, "DEMO-SEALED", "eixo_1.json"), {"reason": "forged"})
    envelope = signing.make_envelope(edited, signing.SSHSigner("ssh-keygen", str(other), root))
    forge_seal(root, "DEMO-SEALED", {"eixo_1.json": edited, "eixo_1.dsse.json": envelope}, consistent=True)
    code, out = verify(root)
    assert code == 1
    assert "FAILED  statements are signed by an allowed signer" in out
    problem = next(line for line in out if line.startswith("        seals/DEMO/eixo_1.dsse.json: "))
    assert re.search(r"signed by key SHA256:\S+, which allowed_signers does not allow to sign$", problem), problem


def test_a_statement_edited_under_a_valid_envelope_fails_verify(signed_repo: tuple[Path, Path, Path]) -> None:
    root, _, _ = signed_repo
    assert seal(root, sign=True)[0] == 0
    edited = edit_json(sealed_file(root, "DEMO-SEALED", "eixo_0.json"), {"reason": "edited"})
    forge_seal(root, "DEMO-SEALED", {"eixo_0.json": edited}, consistent=True)
    code, out = verify(root)
    assert code == 1
    assert (
        "        seals/DEMO/eixo_0.dsse.json: the statement differs from the payload its envelope signs "
        "(edited after signing)" in out
    ), out
    # Dropping the envelopes does not help: the seal record says every statement is signed.
    forge_seal(root, "DEMO-SEALED", {"eixo_0.dsse.json": None, "eixo_1.dsse.json": None}, consistent=True)
    code, out = verify(root)
    assert code == 1 and "        seals/DEMO/eixo_0.dsse.json: missing: the seal says every statement is signed" in out


def test_signed_evidence_is_reused_only_while_its_envelope_verifies(signed_repo: tuple[Path, Path, Path]) -> None:
    root, _, other = signed_repo
    assert seal(root, sign=True, no_tag=True)[0] == 0
    code, lines = seal(root, sign=True, no_tag=True)
    assert code == 0 and any(line.startswith("stage 1 (containerize): reusing fresh evidence") for line in lines)
    statement = root / "artifacts" / "demo" / "eixo_1.json"
    envelope = root / "artifacts" / "demo" / "eixo_1.dsse.json"
    edited = edit_json(statement.read_bytes(), {"reason": "edited"})
    statement.write_bytes(edited)
    envelope.write_bytes(signing.make_envelope(edited, signing.SSHSigner("ssh-keygen", str(other), root)))
    code, lines = seal(root, sign=True, no_tag=True)
    refusal = next(
        line for line in lines if line.startswith("re-running stage 1: its evidence was edited after the run")
    )
    assert "artifacts/demo/eixo_1.dsse.json: signed by key SHA256:" in refusal
    # An unsigned run drops the envelopes: a seal is wholly signed or not at all.
    assert seal(root, no_tag=True)[0] == 0
    assert not list((root / "artifacts" / "demo").glob("*.dsse.json"))


def test_sign_without_the_git_settings_is_refused_before_any_stage_runs(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    with pytest.raises(InputError, match=r"git config gpg.format: is 'openpgp': --sign signs evidence with an SSH key"):
        seal(root, sign=True)
    git(root, "config", "gpg.format", "ssh")
    with pytest.raises(InputError, match=r"git config user.signingKey: is not set"):
        seal(root, sign=True)
    git(root, "config", "user.signingKey", str(tmp_path / "missing-key"))
    with pytest.raises(InputError, match=r"git config gpg.ssh.allowedSignersFile: is not set"):
        seal(root, sign=True)
    assert not (root / "artifacts").exists()
    assert signing.git_signing_config(Repo(root)).format == "ssh"


def test_a_signed_seal_cannot_be_checked_without_an_allowed_signers_file(signed_repo: tuple[Path, Path, Path]) -> None:
    root, _, _ = signed_repo
    assert seal(root, sign=True)[0] == 0
    git(root, "config", "--unset", "gpg.ssh.allowedSignersFile")
    code, out = verify(root)
    assert code == 1 and "FAILED  signatures" in out, out  # git itself cannot check the signed tag
    forge_seal(root, "DEMO-SEALED", {})  # the same seal, its tag and commit unsigned: the envelopes still are
    code, out = verify(root)
    assert code == 1
    assert "        seals/DEMO/: the statements are signed but cannot be checked here" in out, out
    assert any(line.startswith("        git config gpg.ssh.allowedSignersFile: is not set") for line in out), out

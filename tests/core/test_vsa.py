"""`verify TAG --vsa FILE`: the DEMO sprint sealed for real, verified, and the outcome written as a SLSA Verification
Summary Attestation that in-toto-attestation's own definitions parse (unknown fields refused) — PASSED for a good
seal, FAILED for a forged one (verify's exit code unchanged), a DSSE envelope with --sign that verifies against the
allowed signers, and a tampered or re-signed one that does not."""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from attestations import Invalid, parse_vsa
from conftest import commit_all, git, need_tool
from demo import make_demo_repo, waive_beta_skip

from sealgate import __version__, cli, engine
from sealgate.api.context import RunOptions
from sealgate.evidence import signing
from sealgate.kernel.errors import InputError
from sealgate.kernel.gitrepo import Repo
from sealgate.seal.vsa import repository_location
from seals import allow_signers, configure_signing, edit_json, forge_seal, sealed_file, ssh_key

PRINCIPAL = "tester@example.invalid"
SEALED, SIGNED = "SEALGATE_SEALED_V1", "SEALGATE_SIGNED_V1"


def seal(root: Path, sprint: str = "DEMO", **kw: Any) -> None:
    lines: list[str] = []
    assert engine.seal(root, sprint, RunOptions(backend="local", **kw), out=lines.append) == 0, lines


def verify(root: Path, tag: str = "DEMO-SEALED", **kw: Any) -> tuple[int, list[str]]:
    out: list[str] = []
    return engine.verify(root, tag, None, out=out.append, **kw), out


def read_vsa(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_bytes())
    parse_vsa(document)
    return document


def add_second_sprint(root: Path) -> None:
    """DEMO2: the same checks, its base the DEMO seal (as tests/core/test_lifecycle.py builds it)."""
    text = (root / "sprint" / "DEMO.yaml").read_text()
    text = text.replace("id: DEMO\n", "id: DEMO2\n").replace("\ntag: DEMO-SEALED", "\ntag: DEMO2-SEALED")
    (root / "sprint" / "DEMO2.yaml").write_text(text.replace("base_tag: DEMO-BASE", "base_tag: DEMO-SEALED"))
    commit_all(root, "sprint DEMO2")


@pytest.fixture
def sealed_demo(tmp_path: Path) -> Path:
    root = make_demo_repo(tmp_path)
    seal(root)
    return root


@pytest.fixture
def signed_demo(tmp_path: Path) -> tuple[Path, Path]:
    need_tool("ssh-keygen")
    root = make_demo_repo(tmp_path)
    key, intruder = ssh_key(tmp_path, "sealer"), ssh_key(tmp_path, "intruder")
    configure_signing(root, key, allow_signers(tmp_path, (PRINCIPAL, key)))
    seal(root, sign=True)
    return root, intruder


# --- PASSED ---------------------------------------------------------------------------------------------------------


def test_a_verified_seal_gets_a_passed_vsa_that_in_toto_attestation_parses(sealed_demo: Path, tmp_path: Path) -> None:
    root = sealed_demo
    plain_code, plain_out = verify(root)
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    code, out = verify(root, vsa=tmp_path / "vsa.json")
    assert code == plain_code == 0
    # verify says exactly what it says without --vsa, and then one line about the summary.
    assert out[:-1] == plain_out
    assert out[-1] == (
        f"vsa: wrote {tmp_path / 'vsa.json'} (an unsigned in-toto Statement): verificationResult PASSED, "
        f"verifiedLevels {SEALED}"
    )

    document = read_vsa(tmp_path / "vsa.json")
    summary, levels = parse_vsa(document)
    seal_commit = git(root, "rev-parse", "DEMO-SEALED^{commit}")
    judged = git(root, "rev-parse", "DEMO-SEALED^{commit}^")
    # Subject: the seal commit, and the tag object verify checked.
    assert document["subject"] == [
        {"name": "DEMO-SEALED", "digest": {"gitCommit": seal_commit}},
        {"name": "refs/tags/DEMO-SEALED", "digest": {"gitTag": git(root, "rev-parse", "refs/tags/DEMO-SEALED")}},
    ]
    assert summary.verifier.id == f"urn:sealgate:verify:{__version__}"
    assert summary.time_verified.ToDatetime(tzinfo=datetime.timezone.utc) >= before
    # No origin: the repository's path-free name, and the judged commit.
    assert summary.resource_uri == f"pkg:generic/demo@{judged}"
    assert str(tmp_path) not in (tmp_path / "vsa.json").read_text()
    spec = Repo(root).show(judged, "sprint/DEMO.yaml")
    assert spec is not None
    assert summary.policy.uri == f"pkg:generic/demo@{judged}#sprint/DEMO.yaml"
    assert dict(summary.policy.digest) == {
        "sha256": hashlib.sha256(spec).hexdigest(),
        "gitBlob": git(root, "rev-parse", f"{judged}:sprint/DEMO.yaml"),
    }
    # Every sealed statement, with the digest of its bytes in the seal commit.
    assert [(a.uri, a.digest["sha256"]) for a in summary.input_attestations] == [
        (
            f"pkg:generic/demo@{seal_commit}#seals/DEMO/{name}",
            hashlib.sha256(sealed_file(root, "DEMO-SEALED", name)).hexdigest(),
        )
        for name in ("eixo_0.json", "eixo_1.json")
    ]
    assert summary.verification_result == "PASSED" and levels == [SEALED]
    assert "dependencyLevels" not in document["predicate"]  # DEMO-BASE is a plain tag: no base seal was verified


def test_the_cli_writes_the_vsa_and_says_when_there_is_no_seal_to_summarize(
    sealed_demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "demo.vsa.json"
    assert cli.main(["verify", "DEMO-SEALED", "--repo", str(sealed_demo), "--vsa", str(target)]) == 0
    assert read_vsa(target)["predicate"]["verificationResult"] == "PASSED"
    capsys.readouterr()
    missing = tmp_path / "none.json"
    assert cli.main(["verify", "NO-SUCH-SEALED", "--repo", str(sealed_demo), "--vsa", str(missing)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "sealgate: evidence for NO-SUCH-SEALED not found: fetch it with `git fetch origin tag NO-SUCH-SEALED`",
        f"sealgate: {missing}: not written: no seal of NO-SUCH-SEALED to summarize",
    ]
    assert not missing.exists()


def test_a_chain_lists_every_sealed_statement_and_counts_its_verified_base(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    seal(root)
    base_seal = git(root, "rev-parse", "HEAD")
    add_second_sprint(root)
    seal(root, "DEMO2")
    code, out = verify(root, "DEMO2-SEALED", vsa=tmp_path / "vsa.json")
    assert code == 0, out
    document = read_vsa(tmp_path / "vsa.json")
    predicate = document["predicate"]
    assert predicate["verifiedLevels"] == [SEALED]
    assert predicate["dependencyLevels"] == {SEALED: 1}
    top_seal = git(root, "rev-parse", "DEMO2-SEALED^{commit}")
    assert [a["uri"].split("@", 1)[1] for a in predicate["inputAttestations"]] == [
        f"{base_seal}#seals/DEMO/eixo_0.json",
        f"{base_seal}#seals/DEMO/eixo_1.json",
        f"{top_seal}#seals/DEMO2/eixo_0.json",
        f"{top_seal}#seals/DEMO2/eixo_1.json",
    ]


# --- FAILED ---------------------------------------------------------------------------------------------------------


def test_a_forged_seal_gets_a_failed_vsa_and_verify_keeps_its_exit_code(sealed_demo: Path, tmp_path: Path) -> None:
    root = sealed_demo
    target = tmp_path / "vsa.json"
    target.write_text("the previous summary\n")
    forged_statement = edit_json(sealed_file(root, "DEMO-SEALED", "eixo_1.json"), {"reason": "forged"})
    forged = forge_seal(root, "DEMO-SEALED", {"eixo_1.json": forged_statement})
    plain_code, plain_out = verify(root)
    code, out = verify(root, vsa=target)
    assert code == plain_code == 1
    assert out[:-1] == plain_out and "FAILED  evidence files match the manifest" in out
    assert out[-1].endswith("verificationResult FAILED, verifiedLevels FAILED")

    document = read_vsa(target)  # a FAILED summary is a valid summary too
    summary, levels = parse_vsa(document)
    assert summary.verification_result == "FAILED" and levels == ["FAILED"]
    assert document["subject"][0] == {"name": "DEMO-SEALED", "digest": {"gitCommit": forged}}
    digests = {a.uri.rsplit("/", 1)[1]: a.digest["sha256"] for a in summary.input_attestations}
    assert digests["eixo_1.json"] == hashlib.sha256(forged_statement).hexdigest()  # what was judged, forged or not
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".vsa.json.")] == []  # no temporary file left


def test_statements_attached_to_a_stage_are_input_attestations_and_other_attachments_are_not(
    sealed_demo: Path, tmp_path: Path
) -> None:
    # (The stack suite attaches its in-toto Test Result as eixo_<N>/test-result.intoto.json; DEMO attaches none.)
    forge_seal(
        sealed_demo,
        "DEMO-SEALED",
        {"eixo_1/test-result.intoto.json": b"{}\n", "eixo_1/pytest.log": b"log\n"},
        consistent=True,
    )
    assert verify(sealed_demo, vsa=tmp_path / "vsa.json")[0] == 1  # attachments the statement does not list
    uris = [a["uri"] for a in read_vsa(tmp_path / "vsa.json")["predicate"]["inputAttestations"]]
    assert [uri.rsplit("#", 1)[1] for uri in uris] == [
        "seals/DEMO/eixo_0.json",
        "seals/DEMO/eixo_1.json",
        "seals/DEMO/eixo_1/test-result.intoto.json",
    ]


def test_a_waiver_expired_since_is_a_failed_summary(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    waive_beta_skip(root)
    seal(root)
    assert verify(root, vsa=tmp_path / "today.json")[0] == 0
    assert read_vsa(tmp_path / "today.json")["predicate"]["verificationResult"] == "PASSED"
    code, out = verify(root, vsa=tmp_path / "later.json", today=datetime.date(2100, 1, 1))
    assert code == 3 and out[-2] == "verify DEMO-SEALED: SEALED, waiver expired on 2099-12-31"
    predicate = read_vsa(tmp_path / "later.json")["predicate"]
    assert (predicate["verificationResult"], predicate["verifiedLevels"]) == ("FAILED", ["FAILED"])


# --- where the repository is ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "location"),
    [
        ("https://ci-bot:s3cr3t-token@example.invalid/team/demo.git", "git+https://example.invalid/team/demo.git"),
        ("https://example.invalid:8443/team/demo", "git+https://example.invalid:8443/team/demo"),
        ("git@example.invalid:team/demo.git", "git+ssh://example.invalid/team/demo.git"),
        ("ssh://git@example.invalid/team/demo.git", "git+ssh://example.invalid/team/demo.git"),
        ("../elsewhere/upstream.git", "pkg:generic/upstream"),
        ("file:///srv/git/upstream.git", "pkg:generic/upstream"),
    ],
)
def test_the_resource_is_the_origin_url_without_credentials_or_a_path_free_name(
    tmp_path: Path, origin: str, location: str
) -> None:
    root = make_demo_repo(tmp_path)
    git(root, "remote", "add", "origin", origin)
    assert repository_location(Repo(root)) == location


def test_an_origin_url_names_the_resource_and_no_secret_reaches_the_vsa(sealed_demo: Path, tmp_path: Path) -> None:
    git(sealed_demo, "remote", "add", "origin", "https://ci-bot:s3cr3t-token@example.invalid/team/demo.git")
    assert verify(sealed_demo, vsa=tmp_path / "vsa.json")[0] == 0
    text = (tmp_path / "vsa.json").read_text()
    assert "s3cr3t" not in text and "ci-bot" not in text
    judged = git(sealed_demo, "rev-parse", "DEMO-SEALED^{commit}^")
    assert json.loads(text)["predicate"]["resourceUri"] == f"git+https://example.invalid/team/demo.git@{judged}"


# --- signed ---------------------------------------------------------------------------------------------------------


def test_a_signed_vsa_verifies_against_the_allowed_signers_and_a_tampered_one_does_not(
    signed_demo: tuple[Path, Path], tmp_path: Path
) -> None:
    root, intruder = signed_demo
    target = tmp_path / "vsa.dsse.json"
    code, out = verify(root, vsa=target, sign=True)
    assert code == 0, out
    assert out[-1] == (
        f"vsa: wrote {target} (a DSSE envelope signed with user.signingKey): verificationResult PASSED, "
        f"verifiedLevels {SEALED}, {SIGNED}"
    )
    envelope = target.read_bytes()
    payload = base64.b64decode(json.loads(envelope)["payload"])
    assert json.loads(envelope)["payloadType"] == "application/vnd.in-toto+json"
    allowed = signing.verifier_for(Repo(root))
    signed = signing.verify_envelope(envelope, payload, allowed)
    assert signed.principal == PRINCIPAL
    summary, levels = parse_vsa(json.loads(payload))
    assert levels == [SEALED, SIGNED]
    assert [a.uri.rsplit("/", 1)[1] for a in summary.input_attestations] == [
        "eixo_0.dsse.json",
        "eixo_0.json",
        "eixo_1.dsse.json",
        "eixo_1.json",
    ]

    # A summary turned around under its signature: the envelope no longer signs what it carries.
    turned = json.loads(payload)
    turned["predicate"]["verificationResult"] = "FAILED"
    tampered = json.loads(envelope)
    tampered["payload"] = base64.b64encode(json.dumps(turned).encode()).decode()
    with pytest.raises(signing.SignatureProblem, match="does not verify over this statement"):
        signing.verify_envelope(json.dumps(tampered).encode(), json.dumps(turned).encode(), allowed)
    # Re-signed with a key the allowed-signers file does not name: refused, naming that.
    resigned = signing.make_envelope(payload, signing.SSHSigner("ssh-keygen", str(intruder), root))
    with pytest.raises(signing.SignatureProblem, match=r"which allowed_signers does not allow to sign$"):
        signing.verify_envelope(resigned, payload, allowed)


def test_a_signed_seal_remade_without_the_key_is_sealed_but_not_signed(
    signed_demo: tuple[Path, Path], tmp_path: Path
) -> None:
    root, _ = signed_demo
    forge_seal(root, "DEMO-SEALED", {})  # the same evidence and envelopes; the seal commit and the tag unsigned
    code, out = verify(root, vsa=tmp_path / "vsa.json")
    assert code == 0, out
    assert read_vsa(tmp_path / "vsa.json")["predicate"]["verifiedLevels"] == [SEALED]


def test_sign_needs_the_signing_settings_before_anything_is_verified(sealed_demo: Path, tmp_path: Path) -> None:
    out: list[str] = []
    with pytest.raises(InputError, match=r"git config gpg.format: is 'openpgp': --sign signs evidence"):
        engine.verify(sealed_demo, "DEMO-SEALED", None, out=out.append, vsa=tmp_path / "vsa.json", sign=True)
    assert out == [] and not (tmp_path / "vsa.json").exists()
    with pytest.raises(InputError, match=r"--sign: signs the verification summary: give --vsa FILE too"):
        engine.verify(sealed_demo, "DEMO-SEALED", None, out=out.append, sign=True)


def test_a_place_the_summary_cannot_be_written_is_one_clear_line(sealed_demo: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(InputError) as raised:
        verify(sealed_demo, vsa=tmp_path / "taken")
    (problem,) = raised.value.problems
    assert str(problem) == f"{tmp_path / 'taken'}: the verification summary cannot be written there: Is a directory"


# --- what does not validate -----------------------------------------------------------------------------------------


def _broken(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `document` with the value at a dotted path replaced (a None value deletes the key)."""
    broken = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = broken
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        ("predicate.verifier.name", "sealgate", 'no field named "name"'),  # an unknown field is refused
        ("predicate.verifiedLevels", "SEALGATE_SEALED_V1", "not a non-empty array of strings"),  # 0.9.3's shape
        ("predicate.verificationResult", "OK", "neither PASSED nor FAILED"),
        ("predicate.verifiedLevels", ["FAILED"], "with verificationResult PASSED"),
        ("predicate.timeVerified", "yesterday", "predicate: "),
        ("predicate.resourceUri", None, "required resourceUri missing"),
        ("predicate.policy", None, "required policy.uri missing"),
        ("predicate.inputAttestations.0.digest", None, "must carry the attestation's digest"),
        ("subject.0.digest", None, "At least one digest required"),
        ("predicateType", "https://slsa.dev/verification_summary/v0.2", "expected 'https://slsa.dev/verification_"),
    ],
)
def test_a_broken_vsa_does_not_validate(good_vsa: dict[str, Any], path: str, value: Any, says: str) -> None:
    with pytest.raises(Invalid) as raised:
        parse_vsa(_broken(good_vsa, path, value))
    assert says in str(raised.value), raised.value


@pytest.fixture(scope="module")
def good_vsa(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real PASSED summary, broken a different way by each case above."""
    tmp_path = tmp_path_factory.mktemp("vsa")
    root = make_demo_repo(tmp_path)
    seal(root)
    assert verify(root, vsa=tmp_path / "vsa.json")[0] == 0
    return read_vsa(tmp_path / "vsa.json")

"""A seal holds exactly its spec's evidence: evidence of a stage the spec no longer declares is left out of the seal
(and said), and `verify` fails, naming the file, on a seal commit forged to hold one more or one fewer."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import commit_all, git
from demo import make_demo_repo

from sealgate import engine
from sealgate.api.context import RunOptions
from seals import forge_seal, sealed_file


def seal(root: Path, **kw: object) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = engine.seal(root, "DEMO", RunOptions(backend="local", **kw), out=lines.append)  # type: ignore[arg-type]
    return code, lines


def verify(root: Path) -> tuple[int, list[str]]:
    lines: list[str] = []
    return engine.verify(root, "DEMO-SEALED", "DEMO", out=lines.append), lines


def drop_stage_1(root: Path) -> None:
    spec_file = root / "sprint" / "DEMO.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["stages"] = [s for s in spec["stages"] if s["number"] != 1]
    spec["criteria"] = [c for c in spec["criteria"] if c["id"] != "C2"]
    spec["risks"] = []
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    commit_all(root, "stage 1 is not this sprint's any more")


def test_evidence_of_a_stage_the_spec_no_longer_declares_is_left_out_of_the_seal(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root, no_tag=True)[0] == 0
    assert (root / "artifacts/demo/eixo_1.json").is_file()  # stage 1's evidence, made at an earlier commit
    drop_stage_1(root)
    code, lines = seal(root)
    assert code == 0, lines
    assert "left out of the seal: artifacts/demo/eixo_1.json (sprint/DEMO.yaml declares no stage 1)" in lines
    assert "left out of the seal: artifacts/demo/eixo_1/gamma.log (sprint/DEMO.yaml declares no stage 1)" in lines
    sealed = git(root, "ls-tree", "-r", "--name-only", "DEMO-SEALED", "seals/DEMO/").splitlines()
    assert sealed == [
        "seals/DEMO/SEAL_DEMO.md",
        "seals/DEMO/eixo_0.json",
        "seals/DEMO/manifest.json",
        "seals/DEMO/seal.json",
    ]
    assert b"eixo_1" not in sealed_file(root, "DEMO-SEALED", "manifest.json")
    code, lines = verify(root)
    assert code == 0, lines
    assert "ok      the seal holds the evidence of exactly the spec's stages" in lines


def test_a_seal_forged_to_hold_evidence_of_an_undeclared_stage_fails_verify_naming_the_file(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root, no_tag=True)[0] == 0
    stray = (root / "artifacts/demo/eixo_1.json").read_bytes()
    drop_stage_1(root)
    assert seal(root)[0] == 0
    # Someone who knows the format adds it, manifest, record and tag made consistent (no signing key needed).
    forge_seal(root, "DEMO-SEALED", {"eixo_1.json": stray}, consistent=True)
    code, lines = verify(root)
    assert code == 1, lines
    failed = lines.index("FAILED  the seal holds the evidence of exactly the spec's stages")
    assert (
        lines[failed + 1] == "        seals/DEMO/eixo_1.json: is in the seal but sprint/DEMO.yaml declares no stage 1"
    )


def test_a_seal_forged_without_the_evidence_of_a_declared_stage_fails_verify_naming_the_file(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    assert seal(root)[0] == 0
    forge_seal(root, "DEMO-SEALED", {"eixo_1.json": None, "eixo_1/gamma.log": None}, consistent=True)
    code, lines = verify(root)
    assert code == 1, lines
    failed = lines.index("FAILED  the seal holds the evidence of exactly the spec's stages")
    assert lines[failed + 1] == "        seals/DEMO/eixo_1.json: missing: sprint/DEMO.yaml declares stage 1"

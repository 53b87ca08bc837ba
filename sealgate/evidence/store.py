"""Evidence on disk: `artifacts/<slug>/eixo_<N>.json` (+ attachments under `eixo_<N>/`) and `manifest.json`.

Every document is validated against its shipped JSON Schema when written and again when read; writes are atomic.
Reading also checks freshness: evidence counts only for the commit it was made at and while every file it judged
still has the digest it recorded.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealgate.evidence.model import Statement
from sealgate.kernel.errors import EvidenceError, Problem
from sealgate.kernel.fsutil import atomic_write, pretty_json, sha256_bytes, sha256_file
from sealgate.kernel.schemas import document_problems, load_schema

ARTIFACTS_DIR = "artifacts"
MANIFEST = "manifest.json"
# A stage's statement, its DSSE envelope, or one of its attachments (stages are numbered 0-99 by their spec).
EVIDENCE_NAME = re.compile(r"eixo_(?:[0-9]|[1-9][0-9])(?:\.json|\.dsse\.json|/[^/.][^/]*)")


def schema_problems(document: Any, schema_name: str, display: str) -> list[Problem]:
    """Problems of an evidence document against one of the evidence room's schemas (`evidence/schema/<name>`)."""
    return document_problems(document, load_schema("sealgate.evidence", schema_name), display)


@dataclass
class EvidenceStore:
    root: Path  # repository root
    slug: str
    # Where the files are, relative to root: `artifacts/<slug>` for a run; `seals/<ID>` for a seal read back from git.
    folder: str | None = None

    @property
    def directory(self) -> Path:
        return self.root / (self.folder or f"{ARTIFACTS_DIR}/{self.slug}")

    def stage_path(self, stage: int) -> Path:
        return self.directory / f"eixo_{stage}.json"

    def envelope_path(self, stage: int) -> Path:
        """The stage statement's DSSE envelope (sealed with --sign)."""
        return self.directory / f"eixo_{stage}.dsse.json"

    def attachments_dir(self, stage: int) -> Path:
        return self.directory / f"eixo_{stage}"

    def display(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # --- stage documents ------------------------------------------------------------------------------------
    def write_stage(self, stage: int, document: dict[str, Any]) -> Path:
        path = self.stage_path(stage)
        problems = schema_problems(document, "eixo.schema.json", self.display(path))
        if problems:  # a bug in sealgate, not user input: never write evidence that would not validate
            raise EvidenceError(*problems)
        atomic_write(path, pretty_json(document))
        return path

    def read_statement(self, stage: int) -> Statement:
        """The stage's evidence as a typed Statement (read_stage's checks first)."""
        return Statement.from_json(self.read_stage(stage))

    def read_stage(self, stage: int) -> dict[str, Any]:
        """The stage's evidence, schema-validated and with its attachments' digests checked."""
        path = self.stage_path(stage)
        display = self.display(path)
        if not path.is_file():
            raise EvidenceError(Problem(display, "no evidence", f"run `nox -s eixo_{stage}` or `nox -s seal`"))
        try:
            document = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EvidenceError(Problem(display, f"not valid JSON: {exc}", "re-run the stage")) from None
        problems = schema_problems(document, "eixo.schema.json", display)
        if not problems and document["predicate"]["stage"]["number"] != stage:
            problems.append(
                Problem(
                    display,
                    f"$.predicate.stage.number: is {document['predicate']['stage']['number']}, expected {stage}",
                )
            )
        if not problems:
            for index, attachment in enumerate(document["predicate"]["attachments"]):
                problems += self._digest_problems(
                    self.directory / attachment["name"],
                    attachment["digest"]["sha256"],
                    f"{display}: $.predicate.attachments[{index}]",
                )
        if problems:
            raise EvidenceError(*problems)
        return document

    def _digest_problems(self, path: Path, expected: str, where: str) -> list[Problem]:
        if not path.is_file():
            return [Problem(where, f"{self.display(path)} is missing")]
        if sha256_file(path) != expected:
            return [Problem(where, f"{self.display(path)} was changed after the run (sha256 differs)")]
        return []

    def staging_dir(self, stage: int) -> Path:
        """Attachments of a stage being run: swapped in only once the stage's evidence is written."""
        folder = self.directory / f".eixo_{stage}.partial"
        if folder.exists():  # left by an interrupted run
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder

    def commit_stage(self, stage: int, document: dict[str, Any], staging: Path) -> Path:
        """Replace the stage's attachments and evidence with the new ones. A crash in between leaves evidence whose
        attachment digests do not match: refused on read, never silently mixed."""
        final = self.attachments_dir(stage)
        retired = self.directory / f".eixo_{stage}.old"
        if retired.exists():
            shutil.rmtree(retired)
        if final.exists():
            final.rename(retired)
        if any(staging.iterdir()):
            staging.rename(final)
        else:
            staging.rmdir()
        self.envelope_path(stage).unlink(missing_ok=True)  # it signed the statement being replaced
        path = self.write_stage(stage, document)
        if retired.exists():
            shutil.rmtree(retired)
        return path

    # --- manifest -----------------------------------------------------------------------------------------
    def evidence_files(self, stages: Iterable[int] | None = None) -> list[Path]:
        """Every statement, envelope and attachment here — of `stages` only, when given (a spec's declared ones)."""
        candidates = [*self.directory.glob("eixo_*.json"), *self.directory.glob("eixo_*/*")]
        wanted = None if stages is None else {f"eixo_{n}" for n in stages}
        files = [
            p
            for p in candidates
            if p.is_file()
            and EVIDENCE_NAME.fullmatch(p.relative_to(self.directory).as_posix())
            and (wanted is None or _stage_prefix(p.relative_to(self.directory).as_posix()) in wanted)
        ]
        return sorted(files, key=lambda p: p.relative_to(self.directory).as_posix())

    def undeclared_files(self, stages: Iterable[int]) -> list[Path]:
        """Evidence of stages the spec does not declare (left by an earlier spec): never sealed, never listed."""
        declared = set(self.evidence_files(stages))
        return [p for p in self.evidence_files() if p not in declared]

    def write_manifest(self, sprint: str, commit: str, stages: Iterable[int]) -> tuple[Path, str]:
        """The manifest of the evidence of `stages` (the spec's declared ones): exactly what a seal holds."""
        document = {
            "sprint": sprint,
            "commit": commit,
            "files": [
                {"name": p.relative_to(self.directory).as_posix(), "sha256": sha256_file(p)}
                for p in self.evidence_files(stages)
            ],
        }
        path = self.directory / MANIFEST
        problems = schema_problems(document, "manifest.schema.json", self.display(path))
        if problems:
            raise EvidenceError(*problems)
        data = pretty_json(document)
        atomic_write(path, data)
        return path, sha256_bytes(data)

    def read_manifest(self) -> tuple[dict[str, Any], str]:
        path = self.directory / MANIFEST
        display = self.display(path)
        if not path.is_file():
            raise EvidenceError(Problem(display, "no manifest", "run `nox -s seal` or `nox -s report`"))
        data = path.read_bytes()
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise EvidenceError(Problem(display, f"not valid JSON: {exc}")) from None
        problems = schema_problems(document, "manifest.schema.json", display)
        if problems:
            raise EvidenceError(*problems)
        return document, sha256_bytes(data)

    def manifest_problems(self, manifest: dict[str, Any], stages: Iterable[int] | None = None) -> list[Problem]:
        """Every listed file has its digest, and no evidence file (of `stages`, when given) exists that the manifest
        does not list."""
        display = self.display(self.directory / MANIFEST)
        problems = []
        listed = set()
        for index, entry in enumerate(manifest["files"]):
            listed.add(entry["name"])
            problems += self._digest_problems(
                self.directory / entry["name"], entry["sha256"], f"{display}: $.files[{index}]"
            )
        for path in self.evidence_files(stages):
            name = path.relative_to(self.directory).as_posix()
            if name not in listed:
                problems.append(Problem(display, f"{self.display(path)} is not listed in the manifest"))
        return problems


def _stage_prefix(name: str) -> str:
    """`eixo_2` of `eixo_2.json`, `eixo_2.dsse.json` and `eixo_2/promtool.junit.xml`."""
    return name.split("/", 1)[0].split(".", 1)[0]


@dataclass
class Freshness:
    stale: list[Problem] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.stale


DigestSource = Callable[[str], "str | None"]


def working_tree_digests(root: Path) -> DigestSource:
    def digest(relative: str) -> str | None:
        path = root / relative
        return sha256_file(path) if path.is_file() else None

    return digest


def freshness(statement: Statement, head: str, display: str, digest_of: DigestSource) -> Freshness:
    """Evidence is stale when made at another commit or when a judged file no longer has its recorded digest."""
    result = Freshness()
    commit = statement.run.commit
    if commit != head:
        result.stale.append(
            Problem(display, f"made at commit {commit[:12]}, but HEAD is {head[:12]}", "re-run the stage")
        )
    for index, subject in enumerate(statement.subjects):
        actual = digest_of(subject.name)
        where = f"{display}: $.subject[{index}]"
        if actual is None:
            result.stale.append(Problem(where, f"judged file {subject.name} no longer exists"))
        elif actual != subject.sha256:
            result.stale.append(Problem(where, f"judged file {subject.name} changed since the run", "re-run the stage"))
    return result

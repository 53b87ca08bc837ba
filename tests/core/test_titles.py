"""Check titles and the report's fixed wording come from the spec, the check or the report language's catalog: a
check's title is the spec's `title:` when it gives one, else the check's own in the spec's language
(`@check(titles=...)`), else the code's (English); the word for a stage is the catalog's ("EIXO" in pt-BR, "Stage"
in en)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import PROJECT_ROOT, commit_all
from demo import make_demo_repo

from sealgate import engine
from sealgate.api.context import RunOptions
from sealgate.checks import library
from sealgate.run.plan import open_spec


def seal_demo(root: Path) -> str:
    assert engine.seal(root, "DEMO", RunOptions(backend="local", no_tag=True), out=lambda _: None) == 0
    return (root / "reports" / "SEAL_DEMO.md").read_text()


def test_f9_10_titles_come_from_its_spec_then_the_checks_own_pt_br_title() -> None:
    spec = open_spec(PROJECT_ROOT, "F9.10")
    # F9.10's own wording lives in its spec...
    assert spec.check_title("containerize/network") == "Todos os serviços na rede techno-network"
    assert spec.check_title("dashboard/json-structure").startswith("Dashboard llm-metrics-f910: ")
    # ...a library title is the check's own in the report's language (the code's title is English).
    worktree = library()["preflight/worktree"]
    assert spec.check_title("preflight/worktree") == worktree.titles["pt-BR"]
    assert worktree.title == "Working tree state recorded (a dirty tree blocks only the tag)"
    assert worktree.titles["pt-BR"] == "Estado da árvore de trabalho registrado (árvore suja bloqueia só a tag)"


def test_check_titles_are_given_only_in_languages_the_report_has() -> None:
    languages = {p.stem for p in (PROJECT_ROOT / "sealgate" / "reports" / "i18n").glob("*.yaml")}
    unknown = {c.id: sorted(set(c.titles) - languages) for c in library().values() if set(c.titles) - languages}
    assert unknown == {}, f"titles in languages no report catalog has: {unknown}"


def test_the_report_shows_the_spec_title_then_the_code_title_and_its_language_word_for_a_stage(
    tmp_path: Path,
) -> None:
    root = make_demo_repo(tmp_path)
    spec_file = root / "sprint" / "DEMO.yaml"
    document = yaml.safe_load(spec_file.read_text())
    document["stages"][0]["checks"][0]["title"] = "Alpha, as this sprint names it"
    spec_file.write_text(yaml.safe_dump(document, sort_keys=False))
    commit_all(root, "a spec title")
    text = seal_demo(root)
    assert "| `demo/alpha` Alpha, as this sprint names it | ✅ passed |" in text
    assert "| `demo/beta` Beta runs a command | ✅ passed |" in text  # no spec title, no translation: the code's
    assert "### Stage 0: Preflight" in text and 'E0["Stage 0 preflight<br/>passed' in text
    assert "EIXO" not in text
    evidence = json.loads((root / "artifacts" / "demo" / "eixo_0.json").read_text())
    assert evidence["predicate"]["checks"][0]["title"] == "Alpha, as this sprint names it"

    spec_file.write_text(spec_file.read_text().replace("language: en", "language: pt-BR"))
    commit_all(root, "pt-BR")
    text = seal_demo(root)
    assert "### EIXO 0: Preflight" in text and 'E0["EIXO 0 preflight<br/>passed' in text
    assert "| `demo/alpha` Alpha, as this sprint names it | ✅ aprovado |" in text

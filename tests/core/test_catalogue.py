"""`sealgate checks`: the catalogue of the check library, read from the code — every check with its stage kind and
whether it needs the stack, one check's parameters from the JSON Schema the spec loader validates `with:` against,
an example `with:` block that schema accepts, and docs/checks.md, which must be exactly what the code generates."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT

from sealgate import catalogue
from sealgate.checks import library
from sealgate.cli import main
from sealgate.sprint.spec import params_validator

DOCS = PROJECT_ROOT / catalogue.DOCS_PAGE
LIBRARY_SIZE = 47  # every check of sealgate/checks/; a new one is listed (and documented) by the same code


def library_checks() -> list:
    return catalogue.checks_of(library(), library_only=True)


def drift(documented: str, generated: str) -> str:
    """The first lines where the page and the code disagree, as a unified diff ('' when they agree)."""
    lines = difflib.unified_diff(documented.splitlines(), generated.splitlines(), "docs", "code", n=1, lineterm="")
    return "\n".join(list(lines)[:12])


def test_the_docs_page_is_exactly_what_the_code_generates() -> None:
    generated = catalogue.markdown(library())
    assert drift(DOCS.read_text(encoding="utf-8"), generated) == "", (
        f"{catalogue.DOCS_PAGE} drifted from the checks' definitions; regenerate it: {catalogue.REGENERATE}\n"
        + drift(DOCS.read_text(encoding="utf-8"), generated)
    )


def test_a_drifted_page_is_caught_naming_the_line() -> None:
    """The drift test's own failing case: one parameter's description edited on the page (or in the code)."""
    generated = catalogue.markdown(library())
    edited = generated.replace("| `min_free_mb` | no | integer ≥ 1 |", "| `min_free_mb` | yes | integer ≥ 1 |", 1)
    assert edited != generated
    assert "-| `min_free_mb` | yes | integer ≥ 1 |" in drift(edited, generated)


def test_the_markdown_command_prints_the_docs_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checks", "--markdown"]) == 0
    assert capsys.readouterr().out == DOCS.read_text(encoding="utf-8")


def test_every_library_check_is_listed_with_its_stage_kind_and_whether_it_needs_the_stack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["checks"]) == 0
    out = capsys.readouterr().out.splitlines()
    checks = library_checks()
    assert len(checks) == LIBRARY_SIZE
    rows = {line.split()[0]: line.split()[1:3] for line in out[1:-1]}
    for definition in checks:
        # The stage kind is the id's room: the kind of stage the library wrote the check for.
        assert rows[definition.id] == [definition.id.split("/")[0], "yes" if definition.needs_stack else "no"]
    assert rows["rules/alert-drill"] == ["rules", "yes"] and rows["rules/promtool-check"] == ["rules", "no"]
    # In this process earlier tests' plugins are registered too: every registered check is listed.
    assert out[-1] == f"{len(rows)} checks; `sealgate checks ID` shows one's parameters and an example"


def test_titles_in_the_language_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checks", "--language", "pt-BR"]) == 0
    listed = capsys.readouterr().out
    assert "Estado da árvore de trabalho registrado (árvore suja bloqueia só a tag)" in listed
    assert main(["checks", "preflight/worktree", "--language", "pt-BR"]) == 0
    assert capsys.readouterr().out.startswith(
        "preflight/worktree — Estado da árvore de trabalho registrado (árvore suja bloqueia só a tag)\n"
    )


def test_every_library_check_has_a_title_in_every_spec_language() -> None:
    missing = [
        d.id for d in library_checks() for lang in catalogue.languages() if lang != "en" and lang not in d.titles
    ]
    assert missing == [], f"checks with no title in a spec language: {missing}"


def test_one_check_shows_its_parameters_from_the_schema_the_spec_is_validated_against(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["checks", "rules/promtool-check"]) == 0
    out = capsys.readouterr().out
    assert "  stage kind: rules\n  needs the stack: no (static)\n" in out
    assert "  rules    optional  list of repository glob (must match a file when the spec loads), non-empty\n" in out
    assert "  config   optional  repository path (must exist when the spec loads)\n" in out
    assert "example:\n  - id: rules/promtool-check\n" in out

    assert main(["checks", "preflight/disk-space"]) == 0
    assert "  min_free_mb  optional  integer ≥ 1\n" in capsys.readouterr().out
    # Nested parameters are named by their path; a list's items by [].
    assert main(["checks", "rules/alert-drill"]) == 0
    out = capsys.readouterr().out
    assert "  phases[].fault.post.path  " in out and "required  string matching `^/`" in out
    assert "  requires: rules/metrics-exist, rules/loaded-live, rules/routing (placed before it)\n" in out


def test_a_former_id_shows_the_check_it_became(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checks", "env_config/breaker-defaults"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("env_config/defaults — ")
    assert "  (env_config/breaker-defaults is its former id)\n" in out


@pytest.mark.parametrize("definition", library_checks(), ids=lambda d: d.id)
def test_each_example_is_accepted_by_the_schema_the_spec_loader_uses(definition) -> None:
    block = yaml.safe_load(catalogue.example_block(definition))
    assert block[0]["id"] == definition.id
    params = block[0].get("with", {})
    assert list(params_validator(definition.params_schema).iter_errors(params)) == []


def test_a_schema_that_cannot_make_an_example_is_said() -> None:
    """The failing case of the example rule: a pattern the schema alone cannot satisfy needs `examples`."""
    from sealgate.model.results import CheckDef

    bare = CheckDef(
        "demo/url", "t", lambda ctx: None,
        params_schema={"type": "object", "required": ["url"], "properties": {"url": {"type": "string", "pattern": "^https://"}}},
    )  # fmt: skip
    with pytest.raises(catalogue.ExampleError, match=r"demo/url: no valid example .*does not match.*add `examples`"):
        catalogue.example_params(bare)
    given = CheckDef("demo/url", "t", lambda ctx: None, params_schema={
        "type": "object", "required": ["url"],
        "properties": {"url": {"type": "string", "pattern": "^https://", "examples": ["https://example.org"]}},
    })  # fmt: skip
    assert catalogue.example_params(given) == {"url": "https://example.org"}


def test_an_unknown_check_is_bad_input_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checks", "rules/promtool-chek"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "sealgate: no check 'rules/promtool-chek' (did you mean 'rules/promtool-check'?)\n"
    assert captured.out == ""


def test_a_sprints_plugins_are_listed_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from demo import make_demo_repo

    root = make_demo_repo(tmp_path)
    assert main(["checks", "--repo", str(root), "--sprint", "DEMO"]) == 0
    listed = capsys.readouterr().out
    assert "\ndemo/alpha " in listed and "\nrules/promtool-check " in listed


def sealgate(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sealgate.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_the_console_script_lists_the_library_alone(tmp_path: Path) -> None:
    listed = sealgate(tmp_path, "checks")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[-1].startswith(f"{LIBRARY_SIZE} checks; ")
    shown = sealgate(tmp_path, "checks", "containerize/volumes")
    assert shown.returncode == 0, shown.stderr
    assert "volumes.<name>.volume  required  string" in shown.stdout

"""Spec loading: every mistake is reported as `file:line: what is wrong`, all at once, with no traceback."""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT
from demo import make_demo_repo
from hypothesis import given, settings
from hypothesis import strategies as st

from sealgate.kernel.errors import InputError
from sealgate.run.plan import open_spec
from sealgate.sprint.model import slug_of
from sealgate.sprint.spec import find_spec, repository_path_problem

GOOD = """\
sealgate: 1
id: DEMO
title: Demo sprint
language: en
base_tag: DEMO-BASE
tag: DEMO-SEALED
objective: Exercise every status.
plugins: [sprint/plugins/demo_checks.py]
stages:
  - number: 0
    name: first
    title: Preflight
    checks:
      - id: demo/alpha
        with: {expect: ok}
      - id: demo/beta
  - number: 1
    name: second
    title: Containerize
    checks:
      - id: demo/gamma
      - id: demo/delta
criteria:
  - id: C1
    title: Alpha and beta hold
    checks: [demo/alpha, demo/beta]
  - id: C2
    title: Gamma and delta hold
    stages: [1]
"""


def problems_for(
    tmp_path: Path, text: str, waivers: str | None = None, today: datetime.date | None = None
) -> list[str]:
    root = make_demo_repo(tmp_path)
    (root / "sprint" / "DEMO.yaml").write_text(text)
    if waivers is not None:
        (root / "sprint" / "DEMO.waivers.yaml").write_text(waivers)
    with pytest.raises(InputError) as info:
        open_spec(root, "DEMO", today=today)
    return [str(p) for p in info.value.problems]


def test_the_spec_places_checks_and_numbers_its_stages(tmp_path: Path) -> None:
    """No stage list is fixed by the framework: any numbers and names, and a library check in any EIXO (its
    prerequisite placed before it, here in an earlier EIXO)."""
    root = make_demo_repo(tmp_path)
    text = (
        GOOD.replace("number: 0", "number: 3")
        .replace("number: 1", "number: 7")
        .replace("stages: [1]", "stages: [7]")
        .replace("      - id: demo/gamma\n", "")
        .replace("      - id: demo/beta\n", "      - id: demo/beta\n      - id: demo/gamma\n")
    )
    (root / "sprint" / "DEMO.yaml").write_text(text)
    spec = open_spec(root, "DEMO")
    assert {n: (s.name, [c.id for c in s.checks]) for n, s in spec.stages.items()} == {
        3: ("first", ["demo/alpha", "demo/beta", "demo/gamma"]),
        7: ("second", ["demo/delta"]),
    }


def test_good_spec_loads(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    (root / "sprint" / "DEMO.yaml").write_text(GOOD)
    spec = open_spec(root, "DEMO")
    assert [s.number for s in spec.stages.values()] == [0, 1]
    assert spec.criteria[1].checks == ("demo/gamma", "demo/delta")  # stages expanded to their checks
    assert spec.slug == "demo"


# (mistake, edit to the good spec, expected message fragment with its line)
MISTAKES = [
    (
        "yaml syntax",
        lambda s: s.replace("title: Preflight", "title: [Preflight"),
        "sprint/DEMO.yaml:13: YAML syntax error",
    ),
    (
        "unknown key",
        lambda s: s.replace("language: en", "language: en\nlanguge: en"),
        "sprint/DEMO.yaml:5: $: unknown key: 'languge'",
    ),
    (
        "wrong type",
        lambda s: s.replace("  - number: 1", "  - number: one"),
        "sprint/DEMO.yaml:17: $.stages[1].number: 'one' is not of type 'integer'",
    ),
    (
        "unknown check id",
        lambda s: s.replace("- id: demo/beta", "- id: demo/betta"),
        "sprint/DEMO.yaml:16: unknown check id 'demo/betta' (did you mean 'demo/beta'?)",
    ),
    (
        "duplicate check",
        lambda s: s.replace("- id: demo/delta", "- id: demo/gamma"),
        "sprint/DEMO.yaml:22: check 'demo/gamma' listed twice",
    ),
    (
        "criterion names missing check",
        lambda s: s.replace("checks: [demo/alpha, demo/beta]", "checks: [demo/alpha, demo/omega]"),
        "sprint/DEMO.yaml:26: criterion C1 names check 'demo/omega', which no stage runs",
    ),
    (
        "criterion names missing stage",
        lambda s: s.replace("stages: [1]", "stages: [5]"),
        "sprint/DEMO.yaml:29: criterion C2 names stage 5, which the spec does not declare",
    ),
    (
        "duplicate criterion",
        lambda s: s.replace("- id: C2", "- id: C1"),
        "sprint/DEMO.yaml:27: criterion 'C1' declared twice",
    ),
    (
        "duplicate key",
        lambda s: s.replace("tag: DEMO-SEALED", "tag: DEMO-SEALED\ntag: X"),
        "sprint/DEMO.yaml:7: duplicate key 'tag'",
    ),
    (
        "bad check params",
        lambda s: s.replace("with: {expect: ok}", "with: {expect: 3}"),
        "sprint/DEMO.yaml:15: $.stages[0].checks[0].with.expect: 3 is not of type 'string'",
    ),
    (
        "prerequisite placed after the check",
        lambda s: s.replace(
            "      - id: demo/gamma\n      - id: demo/delta\n", "      - id: demo/delta\n      - id: demo/gamma\n"
        ),
        "sprint/DEMO.yaml:21: check 'demo/delta' requires 'demo/gamma', which the spec must place before it (earlier in this stage or in an earlier one)",
    ),
    (
        "stage without a name",
        lambda s: s.replace("    name: second\n", ""),
        "sprint/DEMO.yaml:17: $.stages[1]: 'name' is a required property",
    ),
    (
        "two stages with one name",
        lambda s: s.replace("name: second", "name: first"),
        "sprint/DEMO.yaml:18: stage name 'first' used by stage 0 too",
    ),
    (
        "id does not match file",
        lambda s: s.replace("id: DEMO\n", "id: DEMO2\n"),
        "sprint/DEMO.yaml:2: id 'DEMO2' does not match the file name 'DEMO.yaml'",
    ),
    (
        "plugin outside repo",
        lambda s: s.replace("plugins: [sprint/plugins/demo_checks.py]", "plugins: [../../etc/x.py]"),
        "sprint/DEMO.yaml:8: plugin '../../etc/x.py' is not a file inside the repository",
    ),
    ("no base", lambda s: s.replace("base_tag: DEMO-BASE\n", ""), "sprint/DEMO.yaml:1: no base_tag"),
]


@pytest.mark.parametrize(("edit", "expected"), [(m[1], m[2]) for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_spec_mistake_reported_with_file_and_line(tmp_path: Path, edit, expected: str) -> None:
    problems = problems_for(tmp_path, edit(GOOD))
    assert any(expected in p for p in problems), problems


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("- id: demo/beta", "- id: demo/betta").replace("stages: [1]", "stages: [5]")
    problems = problems_for(tmp_path, text)
    assert [p.split(": ", 1)[0] for p in problems] == [
        "sprint/DEMO.yaml:16",
        "sprint/DEMO.yaml:26",
        "sprint/DEMO.yaml:29",
    ]


WAIVER = "waivers:\n  - check: demo/beta\n    justification: beta cannot run on this machine kind\n    approver: Ana Reviewer\n    expires: {expires}\n"


def test_expired_waiver_stops_the_run(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, GOOD, WAIVER.format(expires="2020-01-31"))
    assert problems == [
        "sprint/DEMO.waivers.yaml:5: waiver for check 'demo/beta' expired on 2020-01-31 (renew it with a new approval or remove it)"
    ]


@pytest.mark.parametrize(
    ("waivers", "expected"),
    [
        (
            "waivers:\n  - check: demo/beta\n    approver: Ana\n    expires: 2099-01-01\n",
            "sprint/DEMO.waivers.yaml:2: $.waivers[0]: 'justification' is a required property",
        ),
        (
            "waivers:\n  - check: demo/nope\n    justification: long enough text\n    approver: Ana R\n    expires: 2099-01-01\n",
            "sprint/DEMO.waivers.yaml:2: waiver names check 'demo/nope', which no stage runs",
        ),
        (
            "waivers:\n  - check: demo/beta\n    justification: long enough text\n    approver: Ana R\n    expires: someday\n",
            "sprint/DEMO.waivers.yaml:5: $.waivers[0].expires: 'someday' is not a 'date'",
        ),
        ("- just a list\n", "sprint/DEMO.waivers.yaml:1: a waiver file must be a mapping"),
    ],
    ids=["no justification", "unknown target", "bad date", "not a mapping"],
)
def test_malformed_waiver_stops_the_run(tmp_path: Path, waivers: str, expected: str) -> None:
    problems = problems_for(tmp_path, GOOD, waivers)
    assert any(expected in p for p in problems), problems


def test_valid_waiver_loads(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    (root / "sprint" / "DEMO.waivers.yaml").write_text(WAIVER.format(expires="2099-12-31"))
    spec = open_spec(root, "DEMO")
    waiver = spec.waiver_for("check", "demo/beta")
    assert waiver is not None and waiver.approver == "Ana Reviewer" and waiver.source == "sprint/DEMO.waivers.yaml:2"


def test_yaml_alias_bomb_is_refused(tmp_path: Path) -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for i in range(8):
        prev, cur = chr(97 + i), chr(98 + i)
        bomb += f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]\n"
    problems = problems_for(tmp_path, bomb)
    assert problems == ["sprint/DEMO.yaml: document expands to more than 200000 values (YAML alias bomb?)"]


def test_newest_spec_is_the_default(tmp_path: Path) -> None:
    sprint = tmp_path / "sprint"
    sprint.mkdir()
    for name in ("F9.9.yaml", "F9.10.yaml", "F9.10.waivers.yaml", "F10.1.yaml"):
        (sprint / name).write_text("")
    assert find_spec(tmp_path, None).name == "F10.1.yaml"
    assert slug_of("F9.10") == "f9_10"


def test_project_spec_is_valid() -> None:
    from conftest import PROJECT_ROOT

    spec = open_spec(PROJECT_ROOT, "F9.10")
    assert spec.tag == "F9.10-SEALED" and spec.base_tag == "F9.9-C-SEALED" and spec.language == "pt-BR"
    assert [c.id for c in spec.criteria] == [f"C{i}" for i in range(1, 9)]
    assert sorted(spec.stages) == list(range(7))


def test_cli_reports_spec_error_without_traceback(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    (root / "sprint" / "DEMO.yaml").write_text(GOOD.replace("- id: demo/beta", "- id: demo/betta"))
    done = subprocess.run(
        [sys.executable, "-m", "sealgate.cli", "seal", "--sprint", "DEMO"], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sealgate: sprint/DEMO.yaml:16: unknown check id 'demo/betta' (did you mean 'demo/beta'?)",
        "sealgate: sprint/DEMO.yaml:26: criterion C1 names check 'demo/beta', which no stage runs",
    ]
    assert "Traceback" not in done.stderr


def test_a_spec_without_stack_reads_stack_yaml_at_the_root_and_nothing_else(tmp_path: Path) -> None:
    """The framework's default place for a stack description is `stack.yaml` at the repository's root (what
    `sealgate init` writes for a root compose file); a description anywhere else is read only when a spec names it."""
    from otherproject import SPEC, make_shop_project, write_spec

    root = make_shop_project(tmp_path / "shop")
    write_spec(root, "NOSTACK", SPEC.replace("stack: deploy/stack.yaml\n", "", 1))
    assert open_spec(root, "S1").stack.path == "deploy/stack.yaml"
    assert open_spec(root, "NOSTACK").stack is None  # deploy/stack.yaml is not found by default
    (root / "stack.yaml").write_text((root / "deploy" / "stack.yaml").read_text())
    assert open_spec(root, "NOSTACK").stack.path == "stack.yaml"


# --- repository paths in `with:` (a check's `repo-path` / `repo-glob` parameters) ----------------------------------

PATHS = GOOD.replace(
    "      - id: demo/delta\n",
    "      - id: demo/delta\n"
    "      - id: rules/promtool-test\n"
    "        with:\n"
    "          tests: [prometheus/tests/*.yml, prometheus/unit/**/*.yml]\n"
    "      - id: containerize/alertmanager-live\n"
    "        with: {config: prometheus/alertmanager.yml}\n",
)


def paths_repo(tmp_path: Path) -> Path:
    root = make_demo_repo(tmp_path)
    for name in ("prometheus/tests/a_test.yml", "prometheus/unit/deep/b_test.yml", "prometheus/alertmanager.yml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("# a file\n")
    return root


def test_with_paths_that_name_files_load(tmp_path: Path) -> None:
    root = paths_repo(tmp_path)
    (root / "sprint" / "DEMO.yaml").write_text(PATHS)
    spec = open_spec(root, "DEMO")
    assert spec.stages[1].checks[2].params["tests"] == ["prometheus/tests/*.yml", "prometheus/unit/**/*.yml"]


def test_with_paths_that_name_nothing_are_reported_with_every_other_problem(tmp_path: Path) -> None:
    root = paths_repo(tmp_path)
    (root / "prometheus" / "unit" / "deep" / "b_test.yml").unlink()
    text = PATHS.replace("config: prometheus/alertmanager.yml", "config: prometheus/alertmanagr.yml").replace(
        "- id: demo/beta", "- id: demo/betta"
    )
    (root / "sprint" / "DEMO.yaml").write_text(text)
    with pytest.raises(InputError) as info:
        open_spec(root, "DEMO")
    assert [str(p) for p in info.value.problems] == [
        "sprint/DEMO.yaml:16: unknown check id 'demo/betta' (did you mean 'demo/beta'?)",
        "sprint/DEMO.yaml:25: $.stages[1].checks[2].with.tests[1]: 'prometheus/unit/**/*.yml' matches no file in the "
        "repository (paths are relative to the repository root)",
        "sprint/DEMO.yaml:27: $.stages[1].checks[3].with.config: 'prometheus/alertmanagr.yml' is not in the "
        "repository (did you mean 'prometheus/alertmanager.yml'?)",
        "sprint/DEMO.yaml:31: criterion C1 names check 'demo/beta', which no stage runs",
    ]


def test_a_with_path_of_the_wrong_type_is_a_type_error_not_a_path_error(tmp_path: Path) -> None:
    root = paths_repo(tmp_path)
    (root / "sprint" / "DEMO.yaml").write_text(PATHS.replace("{config: prometheus/alertmanager.yml}", "{config: 7}"))
    with pytest.raises(InputError) as info:
        open_spec(root, "DEMO")
    assert [str(p) for p in info.value.problems] == [
        "sprint/DEMO.yaml:27: $.stages[1].checks[3].with.config: 7 is not of type 'string'"
    ]


def test_judging_recorded_evidence_reads_the_spec_without_its_files(tmp_path: Path) -> None:
    """verify reads the spec as of the judged commit from git objects, without the files it names: with_stack=False
    leaves the paths unresolved (as it leaves the stack description unread)."""
    root = paths_repo(tmp_path)
    (root / "sprint" / "DEMO.yaml").write_text(PATHS)
    shutil.rmtree(root / "prometheus")
    spec = open_spec(root, "DEMO", with_stack=False)
    assert spec.stages[1].checks[3].params == {"config": "prometheus/alertmanager.yml"}
    with pytest.raises(InputError, match=r"'prometheus/alertmanager\.yml' is not in the repository"):
        open_spec(root, "DEMO")


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=300), is_glob=st.booleans())
def test_any_with_path_is_judged_without_an_exception(value: str, is_glob: bool) -> None:
    """Whatever text a spec gives as a path (NUL bytes, huge names, `..`, glob characters), the loader answers with
    one short message or accepts it — never a traceback."""
    miss = repository_path_problem(PROJECT_ROOT, value, is_glob=is_glob)
    if miss is not None:
        assert miss.what and miss.hint and len(miss.what) < 250

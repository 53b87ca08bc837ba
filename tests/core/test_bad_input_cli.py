"""Bad input exits 2 before anything runs or is written: a stage the spec does not declare, an unknown backend, a
`with:` path that names nothing in the repository (found when the spec loads, at the spec's line). Each case is one
line on stderr, exit 2, no traceback, and nothing written (no artifacts/, no run state, earlier evidence intact).
A spec that does not load still leaves `nox -l` and `nox -s eixo_N` saying why, with its file:line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import commit_all
from demo import make_demo_repo

from sealgate.cli import main
from sealgate.run.plan import open_spec

NOXFILE = "from sealgate.noxsessions import sealgate_sessions\n\nsealgate_sessions(install_args=None)\n"
UNIT_TEST = """\
rule_files: [../alerts/up.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series: []
    alert_rule_test: []
"""


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def assert_nothing_written(root: Path) -> None:
    assert not (root / "artifacts").exists(), sorted(p.name for p in (root / "artifacts").rglob("*"))
    assert not (root / ".sealgate").exists()  # not even the run lock: nothing started
    assert not (root / "reports").exists()


def one_error_line(captured: pytest.CaptureResult[str]) -> str:
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


# --- a stage the spec does not declare ------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "word"), [("en", "stage"), ("pt-BR", "EIXO")])
def test_a_stage_the_spec_does_not_declare_is_refused_at_its_stages_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], language: str, word: str
) -> None:
    root = make_demo_repo(tmp_path)
    spec = root / "sprint" / "DEMO.yaml"
    spec.write_text(spec.read_text().replace("language: en", f"language: {language}"))
    commit_all(root, language)
    assert main(["eixo", "9", "--repo", str(root), "--backend", "local"]) == 2
    assert one_error_line(capsys.readouterr()) == (
        f"sealgate: sprint/DEMO.yaml:{line_of(spec, 'stages:')}: sprint DEMO declares no {word} 9 "
        f"(it declares {word} 0, 1: run one of them, e.g. `sealgate eixo 0`)"
    )
    assert_nothing_written(root)


def test_a_declared_stage_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_demo_repo(tmp_path)
    assert main(["eixo", "0", "--repo", str(root), "--backend", "local"]) == 0
    assert "stage 0 verdict: passed" in capsys.readouterr().out
    assert (root / "artifacts" / "demo" / "eixo_0.json").is_file()


# --- an unknown backend ---------------------------------------------------------------------------------------------


def test_an_unknown_backend_is_refused_before_the_stage_runs_or_its_evidence_is_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_demo_repo(tmp_path)
    assert main(["eixo", "0", "--repo", str(root), "--backend", "local"]) == 0
    evidence = root / "artifacts" / "demo" / "eixo_0.json"
    before = evidence.read_bytes()
    capsys.readouterr()

    assert main(["eixo", "0", "--repo", str(root), "--backend", "compsoe"]) == 2
    captured = capsys.readouterr()
    assert one_error_line(captured) == (
        "sealgate: --backend: unknown backend 'compsoe' (did you mean 'compose'? choose one of auto, compose, local)"
    )
    assert captured.out == ""  # no check ran: nothing to say
    assert evidence.read_bytes() == before


@pytest.mark.parametrize("verb", [["seal"], ["seal", "--no-tag"], ["eixo", "1"]])
def test_an_unknown_backend_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: list[str]) -> None:
    root = make_demo_repo(tmp_path)
    assert main([*verb, "--repo", str(root), "--backend", "kubernetes"]) == 2
    assert one_error_line(capsys.readouterr()) == (
        "sealgate: --backend: unknown backend 'kubernetes' (choose one of auto, compose, local)"
    )
    assert_nothing_written(root)


def test_an_unknown_backend_from_the_environment_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_demo_repo(tmp_path)
    monkeypatch.setenv("SEALGATE_BACKEND", "locl")
    assert main(["eixo", "0", "--repo", str(root)]) == 2
    assert one_error_line(capsys.readouterr()) == (
        "sealgate: SEALGATE_BACKEND: unknown backend 'locl' (did you mean 'local'? choose one of auto, compose, local)"
    )
    assert_nothing_written(root)


# --- a `with:` path that names nothing ------------------------------------------------------------------------------


def repo_with_a_path_check(tmp_path: Path, tests: str) -> Path:
    """The DEMO repository with a library check that reads repository files (promtool's unit tests) in stage 1."""
    root = make_demo_repo(tmp_path)
    (root / "prometheus" / "tests").mkdir(parents=True)
    (root / "prometheus" / "alerts").mkdir()
    (root / "prometheus" / "alerts" / "up.yml").write_text("groups: []\n")
    (root / "prometheus" / "tests" / "up_test.yml").write_text(UNIT_TEST)
    spec = root / "sprint" / "DEMO.yaml"
    spec.write_text(
        spec.read_text().replace(
            "      - id: demo/delta\n",
            f"      - id: demo/delta\n      - id: rules/promtool-test\n        with:\n          tests: [{tests}]\n",
        )
    )
    commit_all(root, "promtool unit tests")
    return root


def test_a_with_glob_that_matches_files_loads(tmp_path: Path) -> None:
    root = repo_with_a_path_check(tmp_path, "prometheus/tests/*.yml")
    spec = open_spec(root, "DEMO")
    assert spec.stages[1].checks[-1].params == {"tests": ["prometheus/tests/*.yml"]}


@pytest.mark.parametrize(
    ("tests", "what"),
    [
        ("prometheus/tests/*.yaml", "'prometheus/tests/*.yaml' matches no file in the repository "
         "(paths are relative to the repository root)"),
        ("prometheus/test/*.yml", "'prometheus/test/*.yml' matches no file in the repository "
         "(did you mean 'prometheus/tests/*.yml'?)"),
        ("/etc/prometheus/tests/*.yml", "'/etc/prometheus/tests/*.yml' is an absolute path "
         "(give it relative to the repository root)"),
        ("../outside/*.yml", "'../outside/*.yml' leaves the repository (name a file inside it)"),
    ],
    ids=["matches nothing", "a folder misspelt", "absolute", "outside the repository"],
)  # fmt: skip
@pytest.mark.parametrize("verb", [["eixo", "0"], ["seal", "--no-tag"]])
def test_a_with_path_that_names_nothing_is_refused_at_the_specs_line_before_any_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tests: str, what: str, verb: list[str]
) -> None:
    """Stage 0 does not even read the path: the spec is refused whole, before anything runs."""
    root = repo_with_a_path_check(tmp_path, tests)
    line = line_of(root / "sprint" / "DEMO.yaml", "tests: [")
    assert main([*verb, "--repo", str(root), "--backend", "local"]) == 2
    assert one_error_line(capsys.readouterr()) == (
        f"sealgate: sprint/DEMO.yaml:{line}: $.stages[1].checks[2].with.tests[0]: {what}"
    )
    assert_nothing_written(root)


def test_a_with_file_that_is_not_in_the_repository_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_demo_repo(tmp_path)
    (root / "grafana").mkdir()
    (root / "grafana" / "board.json").write_text("{}\n")
    spec = root / "sprint" / "DEMO.yaml"
    spec.write_text(
        spec.read_text().replace(
            "      - id: demo/delta\n",
            "      - id: demo/delta\n      - id: dashboard/panel-jobs\n"
            "        with: {dashboard: grafana/bord.json, panels: [{title: Up, job: app}]}\n",
        )
    )
    commit_all(root, "a dashboard")
    assert main(["report", "--repo", str(root)]) == 2
    assert one_error_line(capsys.readouterr()) == (
        f"sealgate: sprint/DEMO.yaml:{line_of(spec, 'grafana/bord.json')}: $.stages[1].checks[2].with.dashboard: "
        "'grafana/bord.json' is not in the repository (did you mean 'grafana/board.json'?)"
    )
    assert_nothing_written(root)


# --- a spec that does not load, through Nox -------------------------------------------------------------------------


def nox(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nox", *args], cwd=root, capture_output=True, text=True, check=False)


def test_a_spec_with_a_yaml_slip_still_gives_its_sessions_saying_why(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    (root / "noxfile.py").write_text(NOXFILE)
    spec = root / "sprint" / "DEMO.yaml"
    spec.write_text(spec.read_text().replace("    title: Containerize\n", "    title: Containerize\n   oops: [\n"))
    commit_all(root, "a YAML slip")
    problem = f"sprint/DEMO.yaml:{line_of(spec, 'oops')}"

    listed = nox(root, "-l")
    assert listed.returncode == 0, listed.stderr
    for number in (0, 1):
        assert f"eixo_{number} -> stage {number}: sprint/DEMO.yaml does not load: {problem}" in listed.stdout, (
            listed.stdout
        )

    ran = nox(root, "-s", "eixo_1")
    assert ran.returncode == 1  # Nox's own exit for a failed session (it reduces every result to 0 or 1)
    # Nox prints the command's output on its stdout, and its own lines on stderr.
    assert f"sealgate: {problem}: YAML syntax error:" in ran.stdout, ran.stdout + ran.stderr
    assert "failed with exit code 2" in ran.stderr
    assert "Sessions not found" not in ran.stderr
    assert_nothing_written(root)


def test_a_spec_that_parses_but_does_not_validate_is_said_by_its_session(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    (root / "noxfile.py").write_text(NOXFILE)
    spec = root / "sprint" / "DEMO.yaml"
    spec.write_text(spec.read_text().replace("    title: Containerize\n", ""))
    commit_all(root, "a stage without its title")
    assert "eixo_1 -> stage 1: Containerize" not in nox(root, "-l").stdout
    ran = nox(root, "-s", "eixo_1")
    assert ran.returncode == 1
    assert f"sealgate: sprint/DEMO.yaml:{line_of(spec, 'number: 1')}: $.stages[1]: 'title' is a required property" in (
        ran.stdout
    ), ran.stdout + ran.stderr
    assert_nothing_written(root)


def test_a_spec_whose_text_names_no_stage_is_said_by_the_specs_session(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    (root / "noxfile.py").write_text(NOXFILE)
    (root / "sprint" / "DEMO.yaml").write_text("sealgate: 1\nid: DEMO\nstages: [\n")
    commit_all(root, "a spec cut short")
    listed = nox(root, "-l")
    assert "specs -> Sprint specs that do not load: sprint/DEMO.yaml:4: YAML syntax error:" in listed.stdout, (
        listed.stdout
    )
    ran = nox(root, "-s", "specs")
    assert ran.returncode == 1 and "sealgate: sprint/DEMO.yaml:4: YAML syntax error:" in ran.stdout, ran.stdout
    assert_nothing_written(root)

"""Property-based bad input: random and mutated documents fed to the spec and waiver loaders end in a clean
result or a clean InputError (file:line), never an unhandled exception."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from conftest import PROJECT_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import node_paths, replaced, values

from sealgate.kernel.errors import InputError
from sealgate.kernel.yamlsource import parse_yaml
from sealgate.run.plan import open_spec

SPEC_TEXT = (PROJECT_ROOT / "sprint" / "F9.10.yaml").read_text()
SPEC = yaml.safe_load(SPEC_TEXT)

SPEC_PATHS = node_paths(SPEC)


def _mutate(path: tuple, value: object) -> dict:
    return replaced(SPEC, path, value)


def _load(tmp_root: Path, text: str) -> None:
    (tmp_root / "sprint" / "F9.10.yaml").write_text(text)
    try:
        open_spec(tmp_root, "F9.10")
    except InputError as exc:
        for problem in exc.problems:
            assert problem.where.startswith("sprint/F9.10"), problem
            assert problem.what


def _scratch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spec")
    shutil.copytree(PROJECT_ROOT / "sprint", root / "sprint", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(SPEC_PATHS), value=values)
def test_mutated_spec_loads_or_fails_cleanly(tmp_path_factory, path: tuple, value: object) -> None:
    root = _scratch(tmp_path_factory)
    _load(root, yaml.safe_dump(_mutate(path, value), allow_unicode=True))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(SPEC_TEXT)), junk=st.text(max_size=20))
def test_truncated_or_corrupted_spec_fails_cleanly(tmp_path_factory, cut: int, junk: str) -> None:
    root = _scratch(tmp_path_factory)
    _load(root, SPEC_TEXT[:cut] + junk)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_parses_or_fails_with_a_line(text: str) -> None:
    try:
        parse_yaml(text, "x.yaml")
    except InputError as exc:
        assert all(p.where.startswith("x.yaml") for p in exc.problems)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=values)
def test_random_waiver_file_fails_cleanly(tmp_path_factory, document: object) -> None:
    root = _scratch(tmp_path_factory)
    (root / "sprint" / "F9.10.waivers.yaml").write_text(yaml.safe_dump(document))
    try:
        open_spec(root, "F9.10")
    except InputError as exc:
        assert all(p.where.startswith("sprint/F9.10") for p in exc.problems)


def test_huge_spec_is_refused_within_a_bound(tmp_path: Path) -> None:
    root = tmp_path
    shutil.copytree(PROJECT_ROOT / "sprint", root / "sprint", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "sprint" / "F9.10.yaml").write_text(SPEC_TEXT + "#" * (3 * 1024 * 1024))
    try:
        open_spec(root, "F9.10")
    except InputError as exc:
        assert "larger than the" in str(exc)
    else:
        raise AssertionError("a 3 MiB spec was accepted")

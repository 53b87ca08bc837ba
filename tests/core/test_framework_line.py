"""The line between framework and reference project: no module of the framework names a service, job, stack path or
variable of sprint F9.10. Docstrings and comments may use them as examples; code may not.

The framework is what the wheel installs: sealgate/, sprint/*.py, checks/, evidence/, reports/ (code and templates).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

FRAMEWORK_CODE = ["sealgate", "sprint", "checks", "evidence", "reports"]
# Names that belong to the reference project's stack and sprint, never to the framework.
F9_10_NAMES = [
    r"techno",
    r"VERITTA",
    r"console-log",
    r"console_log",
    r"stack/",
    r"llm_",
    r"LLM[A-Z]",
    r"APIDown",
    r"CircuitBreaker",
    r"/v1/complete",
    r"/admin/",
    r"F9\.10",
    r"f9_10",
    r"grafana_data|prometheus_data|postgres_data",
    # F9.11's additions to the stack ("F9.11" itself is the CLI's example of a new sprint id)
    r"f9_11",
    r"APIHighErrorRate",
    r"postgres-exporter",
    r"pg_stat_",
]
PATTERN = re.compile("|".join(F9_10_NAMES))


def code_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal and identifier in a Python file, docstrings and comments left out."""
    text = path.read_text(encoding="utf-8")
    docstrings = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                docstrings.add(body[0].lineno)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in (tokenize.STRING, tokenize.NAME, getattr(tokenize, "FSTRING_MIDDLE", -1)):
            if token.type == tokenize.STRING and token.start[0] in docstrings:
                continue
            found.append((token.start[0], token.string))
    return found


def framework_files(room: str) -> list[Path]:
    base = PROJECT_ROOT / room
    return sorted(base.rglob("*.py")) + sorted(base.rglob("*.j2")) + sorted(base.rglob("*.json"))


@pytest.mark.parametrize("room", FRAMEWORK_CODE)
def test_the_framework_names_nothing_of_the_reference_project(room: str) -> None:
    offences = []
    for path in framework_files(room):
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        if path.suffix == ".py":
            items = code_strings(path)
        else:
            items = list(enumerate(path.read_text(encoding="utf-8").splitlines(), 1))
        offences += [
            f"{relative}:{line}: {PATTERN.search(s).group(0)!r} in {s.strip()[:80]!r}"
            for line, s in items
            if PATTERN.search(s)
        ]
    assert offences == [], "\n".join(offences)


@pytest.mark.parametrize("sample", ['"stack/docker-compose.yml"', "VERITTA_CB_THRESHOLD", "'techno-os-api'"])
def test_the_line_test_sees_a_name_in_code(tmp_path: Path, sample: str) -> None:
    path = tmp_path / "module.py"
    path.write_text(f'"""Docs may say stack/ and VERITTA."""\n\nVALUE = {sample}\n')
    assert [line for line, text in code_strings(path) if PATTERN.search(text)] == [3]


def test_the_line_test_lets_docstrings_and_comments_be(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text('"""Example: stack/docker-compose.yml, VERITTA_CB_TIMEOUT."""\n# techno-os-api\nVALUE = 1\n')
    assert [s for _line, s in code_strings(module) if PATTERN.search(s)] == []

"""The house stacks one way: every room of `sealgate/` is one layer, and no module imports a room above its own — at
module level, inside a function or only for typing — and no two files import each other in a circle. No allow-list.

The layer order (bottom to top) is the README's "Layout" section; the face (the top-level modules: CLI, engine,
Nox sessions, `init`, `lint`) may import anything.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "sealgate"
# Bottom to top. `sealgate` itself (its __init__: the version) sits at the bottom with the kernel.
LAYERS = ["kernel", "model", "backends", "sprint", "api", "analysis", "checks", "evidence", "run", "seal", "reports"]
FACE = "face"


def room_of(module: str, package: Path = PACKAGE) -> str | None:
    """The room of a `sealgate…` module name: a subpackage's name, FACE for a top-level module, None outside."""
    parts = module.split(".")
    if parts[0] != "sealgate":
        return None
    if len(parts) == 1:
        return LAYERS[0]
    return parts[1] if (package / parts[1]).is_dir() else FACE


def module_name(path: Path, package: Path = PACKAGE) -> str:
    relative = path.relative_to(package.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, wherever it sits (functions and `if TYPE_CHECKING:`
    blocks included). `from X import name` counts as X, or X.name when that is a module of its own."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (package.parent / Path(*sub.split("."))).with_suffix(".py").is_file() or (
                    package.parent / Path(*sub.split("."))
                ).is_dir()
                found.append((node.lineno, sub if is_module else node.module))
    return found


def layer_index(room: str) -> int:
    return len(LAYERS) if room == FACE else LAYERS.index(room)


def upward_imports(package: Path = PACKAGE) -> list[str]:
    offences = []
    for path in sorted(package.rglob("*.py")):
        source = module_name(path, package)
        source_room = room_of(source, package)
        assert source_room in (*LAYERS, FACE), f"{path}: room {source_room!r} is in no layer: add it to LAYERS"
        for line, target in imports_of(path, package):
            target_room = room_of(target, package)
            if target_room is None:
                continue
            assert target_room in (*LAYERS, FACE), f"{target}: room {target_room!r} is in no layer"
            if layer_index(target_room) > layer_index(source_room):
                relative = path.relative_to(package.parent).as_posix()
                offences.append(f"{relative}:{line}: {source_room} imports {target} ({target_room}, a room above it)")
    return offences


def import_circles(package: Path = PACKAGE) -> list[list[str]]:
    """Strongly connected sets of files (more than one) in the graph of every import between sealgate modules."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    edges = {
        name: {t for _line, t in imports_of(path, package) if t in modules and t != name}
        for name, path in modules.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for name in sorted(modules):
        if name not in index:
            visit(name)
    return circles


def test_no_room_imports_a_room_above_it() -> None:
    offences = upward_imports()
    assert offences == [], "\n".join(offences)


def test_no_two_files_import_each_other_in_a_circle() -> None:
    circles = import_circles()
    assert circles == [], "\n".join(" ↔ ".join(c) for c in circles)


def test_every_room_is_a_layer() -> None:
    rooms = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert rooms == sorted(LAYERS)


# --- the tests see what they must -----------------------------------------------------------------------------------


def plant(tmp_path: Path, files: dict[str, str]) -> Path:
    package = tmp_path / "sealgate"
    for name in ["__init__.py", *(f"{room}/__init__.py" for room in LAYERS)]:
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text("")
    for name, text in files.items():
        (package / name).write_text(text)
    return package


@pytest.mark.parametrize(
    "text",
    [
        "from sealgate.reports.render import render\n",
        "def f():\n    from sealgate.reports import render\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sealgate.reports.render import View\n",
        "import sealgate.reports.render\n",
    ],
    ids=["module level", "in a function", "for typing", "plain import"],
)
def test_a_planted_upward_import_is_named(tmp_path: Path, text: str) -> None:
    package = plant(tmp_path, {"reports/render.py": "", "kernel/errors.py": text})
    offences = upward_imports(package)
    assert len(offences) == 1 and offences[0].startswith("sealgate/kernel/errors.py:")
    assert "kernel imports sealgate.reports" in offences[0]


def test_a_downward_import_is_fine(tmp_path: Path) -> None:
    package = plant(tmp_path, {"kernel/errors.py": "", "reports/render.py": "from sealgate.kernel import errors\n"})
    assert upward_imports(package) == []


def test_a_planted_circle_within_a_room_is_named(tmp_path: Path) -> None:
    package = plant(
        tmp_path,
        {"checks/a.py": "def f():\n    from sealgate.checks import b\n", "checks/b.py": "import sealgate.checks.a\n"},
    )
    assert import_circles(package) == [["sealgate.checks.a", "sealgate.checks.b"]]


# --- one name per module --------------------------------------------------------------------------------------------


def test_no_framework_room_is_importable_under_a_second_top_level_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository's root is on sys.path under Nox (the noxfile imports sealgate from here) and under pytest: the
    top-level sprint/, checks/, reports/ and stack/ are the project's own, and none of them resolves to a room of
    the framework."""
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    framework = PACKAGE.resolve()
    for room in [*LAYERS, "cli", "engine", "lint", "noxsessions", "scaffold"]:
        found = importlib.util.find_spec(room)
        if found is None:
            continue
        places = [found.origin, *(found.submodule_search_locations or [])]
        inside = [p for p in places if p and Path(p).resolve().is_relative_to(framework)]
        assert inside == [], f"framework room {room} is importable as top-level {room!r} too: {inside}"
        sys.modules.pop(room, None)

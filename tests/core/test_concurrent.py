"""A concurrent check (a drill waiting out alert windows) runs on while the next EIXOs run: its EIXO's evidence is
written when it ends, a later EIXO that requires it waits for it, and an interrupt stops it and writes nothing of
its EIXO."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import commit_all
from demo import make_demo_repo, set_switch, tags

from sealgate import engine
from sealgate.api.context import RunOptions


def with_epsilon(root: Path, wait_s: float, stage1_requires: bool = False) -> None:
    """Put demo/epsilon (concurrent) at the end of EIXO 0."""
    spec = root / "sprint" / "DEMO.yaml"
    text = spec.read_text().replace(
        "      - id: demo/beta\n",
        f"      - id: demo/beta\n      - id: demo/epsilon\n        with: {{wait_s: {wait_s}}}\n",
    )
    if stage1_requires:
        text = text.replace("    name: containerize\n", "    name: containerize\n    requires: [0]\n")
    spec.write_text(text)
    set_switch(root, "epsilon", "ok", commit=False)
    commit_all(root, "epsilon")


def test_a_concurrent_check_runs_while_the_next_eixo_runs(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    with_epsilon(root, 1.5)
    lines: list[str] = []
    started = time.monotonic()
    code = engine.seal(root, "DEMO", RunOptions(backend="local"), out=lines.append)
    assert code == 0, lines
    order = [line for line in lines if line.startswith(("stage", "  started"))]
    assert order[:4] == [
        "stage 0 (preflight): Preflight",
        "  started  demo/epsilon (it runs on while the next stages run)",
        "stage 1 (containerize): Containerize",
        next(line for line in order if line.startswith("stage 1: passed")),
    ], order
    assert any(line.startswith("stage 0: passed") for line in order[4:]), order  # written after EIXO 1's
    assert "  stage 0:  passed  demo/epsilon" in lines
    evidence = json.loads((root / "artifacts" / "demo" / "eixo_0.json").read_text())["predicate"]
    assert [c["id"] for c in evidence["checks"]] == ["demo/alpha", "demo/beta", "demo/epsilon"]  # spec order
    assert evidence["waits"] == [{"check": "demo/epsilon", "what": "epsilon's window", "seconds": 1.5}]
    assert evidence["run"]["duration_s"] >= 1.5
    assert time.monotonic() - started < 30


def test_a_later_eixo_that_requires_it_waits_for_it(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    with_epsilon(root, 1.0, stage1_requires=True)
    set_switch(root, "epsilon", "bad")
    lines: list[str] = []
    assert engine.seal(root, "DEMO", RunOptions(backend="local"), out=lines.append) == 1
    finished = lines.index(next(line for line in lines if line.startswith("stage 0: failed")))
    started_1 = lines.index("stage 1 (containerize): Containerize")
    assert started_1 < finished  # the stage begins, then waits for its prerequisite before any check
    assert any("prerequisite stage 0 did not pass (failed)" in line for line in lines[finished:]), lines


def test_sigterm_while_a_concurrent_check_runs_writes_nothing_of_its_eixo(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    with_epsilon(root, 60)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sealgate.cli", "seal", "--sprint", "DEMO", "--backend", "local"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (root / "artifacts" / "demo" / "eixo_1.json").exists():
        time.sleep(0.05)
    time.sleep(0.5)  # EIXO 1 is written; epsilon waits its 60 s
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - sent < 10, "the concurrent check did not stop at once"
    assert proc.returncode == 143, stderr
    assert "sealgate: interrupted (SIGTERM) during stage 0 (preflight): stack stopped, no tag created" in stderr
    assert "Traceback" not in stderr
    assert tags(root) == ["DEMO-BASE"]
    assert not (root / "artifacts" / "demo" / "eixo_0.json").exists()
    assert (root / "artifacts" / "demo" / "eixo_1.json").exists()

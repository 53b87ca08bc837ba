"""Adoption: sealgate as another team gets it — the wheel alone, in a fresh virtualenv with no access to this
checkout's source — seals a repository that has the seed's own layout (`docker-compose.yml`, `prometheus/`,
`grafana/`, `app/`, `scripts/`, `tests/` at its root, as in the seed's §8 file list).

1. the wheel holds the framework only (no governed stack, no specs), and the installed package is the wheel's;
2. `sealgate init` starts the project; an F9.10-like spec written for that layout seals end to end on the compose
   backend (tag, SEAL report, verify) — every EIXO of F9.10 but the live alert drill, which the reference project's
   own full seal (tests/seal/test_full_seal.py) runs in the same CI run; its rules EIXO also passes on the local
   backend (the local processes brought up from the same seed-layout files);
3. a second spec with EIXOs of its own (other numbers, names, a subset of checks), based on the first seal, seals too
   and verify walks both.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECT_ROOT, commit_all, git, init_repo, need_docker, need_tool
from leaks import remove_compose_project

# Where the seed's §8 file list puts what this repository keeps under stack/.
SEED_LAYOUT = {
    "stack/docker-compose.yml": "docker-compose.yml",
    "stack/offline.env": "offline.env",
    "stack/.env.example": ".env.example",
    "stack/prometheus": "prometheus",
    "stack/grafana": "grafana",
    "stack/app": "app",
    "stack/console_log": "console_log",
    "stack/postgres": "postgres",
    "stack/scripts": "scripts",
    "stack/tests": "tests",
}
TEAM_SPEC = "T9.10"
PROJECT = f"sealgate-adopt-{os.getpid()}"


def run(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    if shutil.which("uv"):
        built = run(["uv", "build", "--wheel", "--out-dir", str(out), str(PROJECT_ROOT)], cwd=out)
    else:
        built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(PROJECT_ROOT)], cwd=out)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    [found] = out.glob("sealgate-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel (and its dependencies) installed, nothing else of this checkout."""
    path = tmp_path_factory.mktemp("venv") / "env"
    if shutil.which("uv"):
        made = run(["uv", "venv", "--python", sys.executable, str(path)], cwd=path.parent)
        assert made.returncode == 0, made.stderr
        installed = run(["uv", "pip", "install", "--python", str(path / "bin" / "python"), str(wheel)], cwd=path.parent)
    else:
        made = run([sys.executable, "-m", "venv", str(path)], cwd=path.parent)
        assert made.returncode == 0, made.stderr
        installed = run([str(path / "bin" / "python"), "-m", "pip", "install", str(wheel)], cwd=path.parent)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    return path


def test_the_wheel_holds_the_framework_and_nothing_of_the_reference_project(wheel: Path, venv: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    rooms = {name.split("/")[1] for name in names if name.startswith("sealgate/") and name.count("/") > 1}
    assert rooms == {
        "kernel", "model", "backends", "sprint", "api", "analysis", "checks", "evidence", "run", "seal", "reports",
        "examples",  # not a room: the example specs `sealgate init --example` writes (package data, no code)
    }, rooms  # fmt: skip
    assert not [n for n in names if re.search(r"stack/|F9\.1|docker-compose|\.waivers\.yaml|/tests?/", n)], names
    for needed in (
        "sealgate/backends/schema/stack.schema.json",
        "sealgate/reports/templates/seal.md.j2",
        "sealgate/reports/i18n/pt-BR.yaml",
        "sealgate/sprint/schema/sprint.schema.json",
        "sealgate/evidence/schema/eixo.schema.json",
    ):
        assert needed in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[sealgate.backends]" in entry_points and "sealgate = sealgate.cli:main" in entry_points
    where = run([str(venv / "bin" / "python"), "-c", "import sealgate; print(sealgate.__file__)"], cwd=venv)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the wheel's copy, not this checkout


@functools.cache
def f9_10_tree() -> Path:
    """This repository as F9.10 sealed it (its seal commit's parent, read from the history): the stack an F9.10-like
    spec describes. Today's stack/ has grown with F9.11 (a sixth rule, secrets, more services)."""
    seal = git(PROJECT_ROOT, "log", "--format=%H", "--diff-filter=A", "-1", "--", "seals/F9.10/seal.json")
    assert seal, "no seal commit of F9.10 in this repository's history (a shallow clone?)"
    tree = Path(tempfile.mkdtemp(prefix="sealgate-adopt-f9.10-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", f"{seal}^", "stack", "sprint"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def seed_layout_repo(path: Path) -> Path:
    root = init_repo(path)
    root.chmod(0o755)  # PostgreSQL (local backend) runs as its own user
    for source, target in SEED_LAYOUT.items():
        src = f9_10_tree() / source
        if src.is_dir():
            shutil.copytree(src, root / target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        else:
            shutil.copy2(src, root / target)
    commit_all(root, "the team's stack, before sealgate")
    return root


def retarget(value: Any) -> Any:
    """This repository's stack paths, as the seed's layout has them (`stack/x` -> `x`)."""
    if isinstance(value, str):
        return re.sub(r"(?<![\w.])stack/", "", value).replace("stack.tests.", "tests.")
    if isinstance(value, list):
        return [retarget(v) for v in value]
    if isinstance(value, dict):
        return {k: retarget(v) for k, v in value.items()}
    return value


def team_spec() -> dict[str, Any]:
    """F9.10's spec for the seed's layout, as the team's first sprint (no base), without the live alert drill."""
    spec = retarget(yaml.safe_load((f9_10_tree() / "sprint" / "F9.10.yaml").read_text()))
    spec.update({"id": TEAM_SPEC, "tag": f"{TEAM_SPEC}-SEALED", "first_in_chain": True, "stack": "stack.yaml"})
    for key in ("base_tag", "base_commit", "base_external"):
        spec.pop(key, None)
    for stage in spec["stages"]:
        stage["checks"] = [c for c in stage["checks"] if c["id"] not in ("rules/alert-drill", "preflight/base-tag")]
    for item in [*spec["criteria"], *spec.get("decisions", []), *spec.get("risks", [])]:
        if "checks" in item:
            item["checks"] = [c for c in item["checks"] if c not in ("rules/alert-drill", "preflight/base-tag")]
    return spec


def team_waivers() -> dict[str, Any]:
    waivers = retarget(yaml.safe_load((f9_10_tree() / "sprint" / "F9.10.waivers.yaml").read_text()))
    waivers["waivers"] = [w for w in waivers["waivers"] if w.get("check") != "preflight/base-tag"]
    return waivers


def team_stack(written: str) -> dict[str, Any]:
    """What `sealgate init` inferred, plus what only the team knows: the offline images, the API's traffic request,
    the backup procedure, and that Grafana has no local recipe."""
    ours = yaml.safe_load((f9_10_tree() / "stack" / "stack.yaml").read_text())
    stack = yaml.safe_load(written)
    stack["compose"]["offline_env"] = "offline.env"
    stack["services"]["api"]["traffic"] = ours["services"]["api"]["traffic"]
    stack["services"]["grafana"]["local"] = ours["services"]["grafana"]["local"]
    stack["backup"] = retarget(ours["backup"])
    return stack


SECOND_SPEC = """\
sealgate: 1
id: T9.11
title: A sprint of the team's own, with EIXOs of its own
language: en
base_tag: T9.10-SEALED
tag: T9.11-SEALED
stack: stack.yaml
objective: Prove a subset of the stack again, staged the team's own way.
stages:
  - number: 3
    name: static_config
    title: Configuration as written
    checks:
      - id: containerize/images-pinned
      - id: containerize/ports-loopback
      - id: rules/promtool-check
      - id: rules/promtool-test
        with: {tests: [prometheus/tests/*.yml]}
  - number: 8
    name: running
    title: The running stack
    checks:
      - id: containerize/containers-healthy
      - id: containerize/prometheus-live
      - id: rules/loaded-live
        with: {groups: 2, rule_count: 5}
criteria:
  - id: K1
    title: What is written is sound
    stages: [3]
  - id: K2
    title: What runs answers
    stages: [8]
"""


@pytest.fixture(scope="module")
def team(venv: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    need_docker()
    need_tool("promtool", "amtool", "prometheus")
    # Under a directory other users can traverse: the local backend runs PostgreSQL as its own user.
    base = Path(tempfile.mkdtemp(prefix=f"sealgate-adopt-{os.getpid()}-"))
    base.chmod(0o755)
    root = seed_layout_repo(base / "repo")
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(venv),
        "SEALGATE_BACKEND": "compose",
        "SEALGATE_COMPOSE_PROJECT": PROJECT,
        "SEALGATE_PORTS": "free",
        "PYTHONPATH": "",
    }
    try:
        yield root, env
    finally:
        remove_compose_project(PROJECT)
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(f9_10_tree(), ignore_errors=True)


def sealgate(team: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    root, env = team
    return run(["sealgate", *args], cwd=root, env=env)


def test_init_then_an_f9_10_like_spec_seals_end_to_end_on_compose(team: tuple[Path, dict[str, str]]) -> None:
    root, _env = team
    started = sealgate(team, "init", "--sprint", TEAM_SPEC)
    assert started.returncode == 0, started.stdout + started.stderr
    assert "wrote stack.yaml" in started.stdout and "wrote noxfile.py" in started.stdout
    (root / "stack.yaml").write_text(yaml.safe_dump(team_stack((root / "stack.yaml").read_text()), sort_keys=False))
    (root / "sprint" / f"{TEAM_SPEC}.yaml").write_text(yaml.safe_dump(team_spec(), sort_keys=False, allow_unicode=True))
    (root / "sprint" / f"{TEAM_SPEC}.waivers.yaml").write_text(yaml.safe_dump(team_waivers(), sort_keys=False))
    commit_all(root, f"sprint {TEAM_SPEC}: its spec and stack description")
    judged = git(root, "rev-parse", "HEAD")

    done = sealgate(team, "seal")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert f"SEALED {TEAM_SPEC}-SEALED" in done.stdout
    assert git(root, "rev-parse", f"{TEAM_SPEC}-SEALED^{{commit}}^") == judged  # the seal commit on the judged one
    report = (root / "seals" / TEAM_SPEC / f"SEAL_{TEAM_SPEC}.md").read_text()
    assert f"✅ SEALED — tag `{TEAM_SPEC}-SEALED` criada" in report
    for number in range(7):
        assert f"`seals/{TEAM_SPEC}/eixo_{number}.json`" in report
    verified = sealgate(team, "verify", f"{TEAM_SPEC}-SEALED")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-2000:]
    assert f"verify {TEAM_SPEC}-SEALED: OK" in verified.stdout


def test_its_rules_eixo_passes_on_the_local_backend_too(team: tuple[Path, dict[str, str]]) -> None:
    """The same seed-layout files run as local processes: the rules EIXO (promtool, inventory, the parecer against
    the running API and Prometheus, what Prometheus loaded, Alertmanager's config and routing)."""
    root, env = team
    done = run(
        ["sealgate", "eixo", "2", "--sprint", TEAM_SPEC, "--backend", "local"],
        cwd=root,
        env={**env, "SEALGATE_BACKEND": "local"},
    )
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert "stack: backend local (asked for explicitly)" in done.stdout
    assert "EIXO 2 verdict: passed" in done.stdout


def test_a_second_spec_with_eixos_of_its_own_seals_on_the_first(team: tuple[Path, dict[str, str]]) -> None:
    root, _env = team
    (root / "sprint" / "T9.11.yaml").write_text(SECOND_SPEC)
    commit_all(root, "sprint T9.11")
    listed = run(["nox", "-l"], cwd=root, env=team[1])  # the team's noxfile, with the Nox the wheel brought
    assert "eixo_8 -> stage 8: The running stack (T9.11)" in listed.stdout, listed.stdout + listed.stderr
    done = sealgate(team, "seal")  # the newest open sprint: T9.11
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    assert "SEALED T9.11-SEALED" in done.stdout
    assert "stage 8 (running): The running stack" in done.stdout
    verified = sealgate(team, "verify", "T9.11-SEALED")
    assert verified.returncode == 0, verified.stdout[-3000:]
    chain = verified.stdout
    assert chain.index(f"{TEAM_SPEC}-SEALED") < chain.index("T9.11-SEALED"), chain  # oldest first

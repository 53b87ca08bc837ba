"""`sealgate init` in a repository with the seed's own layout (compose file, prometheus/, grafana/, app/ at the root):
the files it writes load and plan, nothing is ever overwritten, and the inferred stack matches the one this project
describes by hand."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, commit_all, init_repo, reference_description

from sealgate.cli import main
from sealgate.run.plan import open_spec

SEED_LAYOUT = {  # this repository's stack/ content -> where the seed's §8 file list puts it
    "stack/docker-compose.yml": "docker-compose.yml",
    "stack/offline.env": "offline.env",
    "stack/prometheus": "prometheus",
    "stack/grafana": "grafana",
    "stack/app": "app",
    "stack/console_log": "console_log",
    "stack/postgres": "postgres",
    "stack/scripts": "scripts",
}


def seed_layout_repo(path: Path) -> Path:
    root = init_repo(path)
    for source, target in SEED_LAYOUT.items():
        src = PROJECT_ROOT / source
        if src.is_dir():
            shutil.copytree(src, root / target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / target)
    commit_all(root, "the team's repository")
    return root


def test_init_writes_a_project_that_loads_and_plans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = seed_layout_repo(tmp_path / "team")
    assert main(["init", "--repo", str(root), "--sprint", "F1"]) == 0
    written = capsys.readouterr().out
    for name in ("noxfile.py", "sprint/F1.yaml", "sprint/F1.waivers.yaml", "stack.yaml", ".gitignore (appended)"):
        assert f"wrote {name}" in written
    spec = open_spec(root, "F1")
    assert spec.stack is not None and spec.stack.path == "stack.yaml"
    assert sorted(spec.stages) == [0, 1] and spec.criteria[0].checks
    roles = {name: s.role for name, s in spec.stack.services.items()}
    assert roles == {
        "api": "target",
        "postgres-exporter": "target",  # scraped by Prometheus (job postgres), as the API is
        "console-log": "receiver",
        "integrations-standin": "receiver",  # Alertmanager's PagerDuty events URL names it
        "offsite-s3": "storage",  # a MinIO image
        "postgres": "database",
        "alertmanager": "alertmanager",
        "prometheus": "prometheus",
        "grafana": "dashboards",
    }
    assert spec.stack.services["api"].job == "techno-os-api"  # read from the mounted prometheus.yml
    assert spec.stack.services["postgres-exporter"].job == "postgres"
    assert spec.stack.services["grafana"].optional  # behind a compose profile
    ignored = (root / ".gitignore").read_text()
    assert "/artifacts/" in ignored and "/.sealgate/" in ignored
    listed = subprocess.run([sys.executable, "-m", "nox", "-l"], cwd=root, capture_output=True, text=True)
    assert "eixo_1 -> stage 1: The stack runs (F1)" in listed.stdout, listed.stdout + listed.stderr


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = seed_layout_repo(tmp_path / "team")
    (root / "noxfile.py").write_text("# the team's own\n")
    assert main(["init", "--repo", str(root)]) == 2
    err = capsys.readouterr().err
    assert "sealgate: noxfile.py: already exists: sealgate init never overwrites a file" in err
    assert (root / "noxfile.py").read_text() == "# the team's own\n"
    assert not (root / "sprint").exists() and not (root / "stack.yaml").exists()  # nothing written at all


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda root: None, ["--compose", "nope.yml"], "sealgate: nope.yml: compose file not found"),
        (lambda root: (root / "docker-compose.yml").unlink(), [], "no compose file found"),
        (lambda root: shutil.rmtree(root / ".git"), [], "not a git repository (run `git init` first"),
        (lambda root: None, ["--sprint", "../x"], "'../x' is not a sprint id"),
    ],
    ids=["missing compose file", "no compose file", "not a git repository", "bad sprint id"],
)
def test_init_refuses_bad_input_with_one_clear_line(tmp_path: Path, capsys, setup, args, message) -> None:
    root = seed_layout_repo(tmp_path / "team")
    setup(root)
    assert main(["init", "--repo", str(root), *args]) == 2
    assert message in capsys.readouterr().err


def test_inferred_stack_agrees_with_the_hand_written_description(tmp_path: Path) -> None:
    """What init infers from this project's compose file is what stack/stack.yaml says (roles, ports, probes),
    apart from what only a person can add (traffic, backup, local recipes)."""
    from sealgate.scaffold import infer_stack

    inferred = infer_stack(PROJECT_ROOT, "stack/docker-compose.yml")["services"]
    described = reference_description().services
    assert set(inferred) == set(described)
    for name, entry in inferred.items():
        assert entry["role"] == described[name].role, name
        assert entry.get("ready") == described[name].ready, name
        assert entry.get("port", described[name].port) == described[name].port, name

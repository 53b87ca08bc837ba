"""`sealgate init` in a repository with the seed's own layout (compose file, prometheus/, grafana/, app/ at the root):
the files it writes load and plan, nothing is ever overwritten, and the inferred stack matches the one this project
describes by hand."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, commit_all, init_repo, need_tool, reference_description

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
        (lambda root: shutil.rmtree(root / ".git"), [], "not a git repository (run `git init` first"),
        (lambda root: None, ["--sprint", "../x"], "'../x' is not a sprint id"),
    ],
    ids=["missing compose file", "not a git repository", "bad sprint id"],
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


# --- no compose file: a stack-less skeleton -------------------------------------------------------------------------


def test_init_without_a_compose_file_writes_a_stackless_skeleton_that_seals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No compose file is no reason to refuse: the spec runs static checks that need no stack — and promtool's unit
    tests, which the seed layout has under prometheus/tests/."""
    need_tool("promtool")
    root = seed_layout_repo(tmp_path / "team")
    (root / "docker-compose.yml").unlink()
    assert main(["init", "--repo", str(root), "--sprint", "F1"]) == 0
    out = capsys.readouterr().out
    assert "note: no compose file found: sprint/F1.yaml runs static checks that need no stack\n" in out
    assert "wrote stack.yaml" not in out and not (root / "stack.yaml").exists()
    assert "todo:" not in out  # the skeleton loads as written
    spec = open_spec(root, "F1")
    assert spec.stack is None
    assert {n: [c.id for c in s.checks] for n, s in spec.stages.items()} == {
        0: ["preflight/worktree", "preflight/disk-space"],
        1: ["rules/promtool-test"],
    }
    assert spec.stages[1].checks[0].params == {  # the rule files: those the unit tests load
        "tests": ["prometheus/tests/alerts_test.yml", "prometheus/tests/api_http_test.yml"],
        "rules": ["prometheus/alerts/api.yml", "prometheus/alerts/llm.yml"],
    }
    commit_all(root, "sealgate init")
    assert main(["seal", "--no-tag", "--repo", str(root), "--backend", "local"]) == 0
    assert "all criteria pass (no tag requested)" in capsys.readouterr().out


def test_init_in_an_empty_repository_writes_the_preflight_alone(tmp_path: Path) -> None:
    root = init_repo(tmp_path / "empty")
    assert main(["init", "--repo", str(root), "--sprint", "E1"]) == 0
    assert sorted(open_spec(root, "E1").stages) == [0]


# --- ports a compose file does not publish --------------------------------------------------------------------------

EXPOSE_COMPOSE = """\
services:
  app:
    image: example/app:1.0
    ports: ["127.0.0.1:8080:8080"]
  pg-metrics:
    image: quay.io/prometheuscommunity/postgres-exporter:v0.15.0
    expose: ["9187"]
  node:
    image: prom/node-exporter:v1.8.2
  cache:
    image: redis:7.2.5
  worker:
    image: example/worker:1.0
  prometheus:
    image: prom/prometheus:v2.51.0
    ports: ["127.0.0.1:9090:9090"]
    volumes: ["./prometheus.yml:/etc/prometheus/prometheus.yml:ro"]
"""
EXPOSE_SCRAPES = """\
scrape_configs:
  - job_name: all
    static_configs:
      - targets: ["app:8080", "pg-metrics:9187", "node:9100", "worker:7000"]
"""


def test_init_gives_a_port_to_services_that_only_expose_one_or_run_a_known_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = init_repo(tmp_path / "ports")
    (root / "compose.yaml").write_text(EXPOSE_COMPOSE.replace("  worker:\n    image: example/worker:1.0\n", ""))
    (root / "prometheus.yml").write_text(EXPOSE_SCRAPES.replace(', "worker:7000"', ""))
    assert main(["init", "--repo", str(root), "--sprint", "P1"]) == 0
    out = capsys.readouterr().out
    assert "note: stack.yaml: service pg-metrics: port 9187 from its `expose:` in the compose file\n" in out
    assert (
        "note: stack.yaml: service node: port 9100 inferred: the well-known port of image node-exporter, not said in "
        "the compose file — check it\n" in out
    )
    assert "note: stack.yaml: service cache: port 6379 inferred: the well-known port of image redis" in out
    assert "service app:" not in out and "service prometheus:" not in out  # published: the description derives it
    written = (root / "stack.yaml").read_text()
    assert "    port: 9187  # from its `expose:` in the compose file\n" in written
    assert "    port: 9100  # inferred: the well-known port of image node-exporter" in written
    assert "todo:" not in out
    description = open_spec(root, "P1").stack
    assert {name: (s.role, s.port) for name, s in description.services.items()} == {
        "app": ("target", 8080),
        "pg-metrics": ("target", 9187),
        "node": ("target", 9100),
        "cache": ("other", 6379),
        "prometheus": ("prometheus", 9090),
    }


def test_a_service_whose_port_nothing_says_is_left_for_the_reader_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failing case: a scraped service with no published, exposed, healthcheck or well-known port gets none —
    nothing is guessed — and init says so, on the console and in the file, rather than the first run."""
    root = init_repo(tmp_path / "ports")
    (root / "compose.yaml").write_text(EXPOSE_COMPOSE)
    (root / "prometheus.yml").write_text(EXPOSE_SCRAPES)
    assert main(["init", "--repo", str(root), "--sprint", "P1"]) == 0
    out = capsys.readouterr().out
    assert (
        "note: stack.yaml: service worker: no container port found (not published, exposed, in its healthcheck or "
        "known for its image): set `port:`\n" in out
    ), out
    assert "  worker:\n    # port: ?  no container port found" in (root / "stack.yaml").read_text()
    assert open_spec(root, "P1").stack.services["worker"].port is None


# --- example specs --------------------------------------------------------------------------------------------------


def test_init_writes_the_static_example_commented_and_it_seals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_tool("promtool")
    root = seed_layout_repo(tmp_path / "team")
    assert main(["init", "--repo", str(root), "--sprint", "F1", "--example", "static"]) == 0
    out = capsys.readouterr().out
    assert "wrote stack.yaml" not in out  # the static example needs no stack description
    assert "todo:" not in out
    text = (root / "sprint" / "F1.yaml").read_text()
    assert text.startswith('# Example "static"') and "id: F1\n" in text and "tag: F1-SEALED\n" in text
    assert "# Every promtool unit test passes" in text  # what each check is for
    commit_all(root, "the static example")
    assert main(["seal", "--no-tag", "--repo", str(root), "--backend", "local"]) == 0
    assert "all criteria pass (no tag requested)" in capsys.readouterr().out


def test_init_writes_the_observability_example_and_says_which_of_its_paths_to_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = seed_layout_repo(tmp_path / "team")
    assert main(["init", "--repo", str(root), "--sprint", "F1", "--example", "observability"]) == 0
    out = capsys.readouterr().out
    assert "wrote stack.yaml" in out and "wrote sprint/F1.yaml" in out
    spec_file = root / "sprint" / "F1.yaml"
    assert "stack: stack.yaml\n" in spec_file.read_text()
    line = next(
        n for n, t in enumerate(spec_file.read_text().splitlines(), 1) if "grafana/dashboards/service.json" in t
    )
    # The example's dashboard is its own layout's: said now, at its line, not by the first run.
    assert (
        f"todo: sprint/F1.yaml:{line}: $.stages[3].checks[0].with.dashboard: 'grafana/dashboards/service.json' is not "
        "in the repository (did you mean 'grafana/dashboards/llm_metrics.json'?)\n" in out
    ), out
    assert out.count("todo:") == 1
    shutil.copy2(root / "grafana" / "dashboards" / "llm_metrics.json", root / "grafana" / "dashboards" / "service.json")
    spec = open_spec(root, "F1")
    assert sorted(spec.stages) == [0, 1, 2, 3] and spec.stack is not None


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (
            lambda root: None,
            ["--example", "nope"],
            "sealgate: --example: no example 'nope' (examples: observability, static)",
        ),
        (
            lambda root: (root / "docker-compose.yml").unlink(),
            ["--example", "observability"],
            "sealgate: --example: example 'observability' brings a stack up, and no compose file was found "
            "(compose.yaml, docker-compose.yml, …) (name yours with --compose, or use --example static)",
        ),
    ],
    ids=["unknown example", "a stack example without a compose file"],
)
def test_init_example_refuses_bad_input_writing_nothing(tmp_path: Path, capsys, setup, args, message) -> None:
    root = seed_layout_repo(tmp_path / "team")
    setup(root)
    assert main(["init", "--repo", str(root), *args]) == 2
    assert capsys.readouterr().err == message + "\n"
    assert not (root / "sprint").exists() and not (root / "noxfile.py").exists() and not (root / "stack.yaml").exists()


@pytest.mark.slow
def test_the_example_specs_ship_in_the_wheel(tmp_path: Path) -> None:
    need_tool("uv")
    built = subprocess.run(
        ["uv", "build", "--wheel", "--out-dir", str(tmp_path), str(PROJECT_ROOT)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = tmp_path.glob("sealgate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"sealgate/examples/static.yaml", "sealgate/examples/observability.yaml"} <= names

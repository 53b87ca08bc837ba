"""The whole seal of sprint F9.10 on a clone of this project, against the real compose stack (offline image):

1. one full run (every EIXO, the real alert drill) judges every criterion passed or visibly waived;
2. one injected defect per stage makes the seal refuse, naming that stage, with no tag — each run re-runs only the
   stages that judge the edited file (the others' fresh evidence is reused), so the module stays affordable;
3. the clean tree then seals for real with `nox -s seal`, reusing the first run's evidence (the tree is again exactly
   what it judged): an annotated F9.10-SEALED tag, its message, the report, and verify;
4. known secrets planted in every run's environment appear in no output.

Slow by nature (the drill waits real `for` durations): one module, one stack project, run in `nox -s tests`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import git, make_project_copy, need_docker, need_tool
from standalone import standalone_prometheus

PORTS = {
    "SEALGATE_API_PORT": 48000,
    "SEALGATE_PROMETHEUS_PORT": 49090,
    "SEALGATE_ALERTMANAGER_PORT": 49093,
    "SEALGATE_GRAFANA_PORT": 43000,
}
# Known secrets in the environment of every run (POSTGRES_PASSWORD and GF_SECURITY_ADMIN_PASSWORD reach the stack
# through the compose file); the last test searches every output for them.
PLANTED = {
    "POSTGRES_PASSWORD": "pg-planted-7f3a9c",
    "GF_SECURITY_ADMIN_PASSWORD": "gf-planted-51be02",
    "SEALGATE_DEMO_API_TOKEN": "tok-planted-c0ffee",
    "DEPLOY_SECRET": "sec-planted-9d8e7f",
    "SIGNING_KEY": "key-planted-4b3c2d",
    "UPSTREAM_URL": "https://deployer:url-planted-a1b2c3@upstream.invalid/v1",
}
SECRET_VALUES = [*(v for k, v in PLANTED.items() if k != "UPSTREAM_URL"), "url-planted-a1b2c3"]
ENV = {
    "SEALGATE_BACKEND": "compose",
    "SEALGATE_COMPOSE_PROJECT": "sealgate-fullseal-test",
    **{k: str(v) for k, v in PORTS.items()},
    **PLANTED,
}
OUTPUTS: list[str] = []  # stdout and stderr of every run in this module


def run_here(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, **ENV},
        timeout=900,
    )
    OUTPUTS.extend([done.stdout, done.stderr])
    return done


def sealgate(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_here(root, "sealgate.cli", *args)


@pytest.fixture(scope="module")
def sealed_clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    need_docker()
    need_tool("promtool", "amtool", "prometheus")
    root = make_project_copy(tmp_path_factory.mktemp("fullseal", numbered=True) / "project")
    root.chmod(0o755)
    try:
        first = sealgate(root, "seal", "--no-tag")
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        shutil.copytree(root / "artifacts", root.parent / CLEAN_EVIDENCE)
        yield root
    finally:
        project = ENV["SEALGATE_COMPOSE_PROJECT"]
        subprocess.run(
            [
                "docker",
                "compose",
                "-p",
                project,
                "-f",
                str(root / "stack/docker-compose.yml"),
                "down",
                "-v",
                "--remove-orphans",
            ],
            capture_output=True,
            check=False,
        )
        subprocess.run(
            [
                "sh",
                "-c",
                f"docker volume ls -q --filter label=com.docker.compose.project={project} | xargs -r docker volume rm",
            ],
            capture_output=True,
            check=False,
        )


CLEAN_EVIDENCE = "evidence-of-the-clean-tree"


def restore_clean_evidence(root: Path) -> None:
    """Put back the first run's evidence once a defect is reverted: the tree is again exactly what it judged, so
    the final seal reuses it (and must say so) instead of re-running the three-minute drill."""
    shutil.rmtree(root / "artifacts")
    shutil.copytree(root.parent / CLEAN_EVIDENCE, root / "artifacts")


def edit(root: Path, relative: str, change: Callable[[str], str]) -> None:
    path = root / relative
    before = path.read_text()
    after = change(before)
    assert after != before, f"the defect did not change {relative}"
    path.write_text(after)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def _without_third_panel(text: str) -> str:
    board = json.loads(text)
    del board["panels"][2]
    return json.dumps(board, indent=2)


API_HIGH_ERROR_RATE = """
      - alert: APIHighErrorRate
        expr: sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: API error rate above 5%
          description: speculative rule on a metric the API does not export
"""

DEFECTS = [
    (
        1,
        "stack/docker-compose.yml",
        lambda t: t.replace("prom/prometheus:v2.51.0", "prom/prometheus:latest"),
        "containerize/images-pinned",
    ),
    (
        2,
        "stack/prometheus/alerts/api.yml",
        lambda t: t.rstrip("\n") + "\n" + API_HIGH_ERROR_RATE,
        "rules/metrics-exist",
    ),
    (
        3,
        "stack/scripts/backup_observability.sh",
        lambda t: t.replace("set -euo pipefail", "set -eu", 1),
        "backup/script-static",
    ),
    (4, "stack/.env.example", lambda t: re.sub(r"(?m)^VERITTA_CB_TIMEOUT=.*\n", "", t), "env_config/env-example"),
    (5, "stack/grafana/dashboards/llm_metrics.json", _without_third_panel, "dashboard/json-structure"),
    (
        6,
        "stack/tests/test_f9_10_observability.py",
        lambda t: t.replace("def test_backup_script_exists(", "def _not_a_test_backup_script_exists("),
        "tests/stack-suite",
    ),
]
STAGE_NAMES = {0: "preflight", 1: "containerize", 2: "rules", 3: "backup", 4: "env_config", 5: "dashboard", 6: "tests"}


def assert_refused_naming(done: subprocess.CompletedProcess[str], root: Path, stage: int, check_id: str) -> None:
    out = done.stdout
    assert done.returncode == 1, out[-3000:] + done.stderr[-2000:]
    assert f"EIXO {stage}: failed" in out, out[-3000:]
    assert f"EIXO {stage} ({STAGE_NAMES[stage]}): failed" in out  # the refusal reasons name the stage
    assert re.search(rf"^\s+failed\s+{re.escape(check_id)}\b", out, re.M), out[-3000:]
    assert "NOT SEALED" in out
    assert git(root, "tag", "-l", "F9.10-SEALED") == ""
    assert f"| `{check_id}` " in (root / "reports" / "SEAL_F9.10.md").read_text()


def test_standalone_prometheus_with_history_refuses_at_eixo_0(sealed_clone: Path, tmp_path: Path) -> None:
    if not port_free(9090):
        pytest.skip("port 9090 (the spec's probed standalone address) is taken on this machine")
    try:
        with standalone_prometheus(tmp_path / "standalone", 9090):
            done = sealgate(sealed_clone, "seal")
    finally:
        restore_clean_evidence(sealed_clone)
    assert_refused_naming(done, sealed_clone, 0, "preflight/standalone-prometheus")
    assert "MIGRATION_MODE" in (sealed_clone / "reports" / "SEAL_F9.10.md").read_text()


@pytest.mark.parametrize(("stage", "relative", "change", "check_id"), DEFECTS, ids=[f"eixo_{d[0]}" for d in DEFECTS])
def test_one_defect_refuses_naming_its_stage(
    sealed_clone: Path, stage: int, relative: str, change, check_id: str
) -> None:
    edit(sealed_clone, relative, change)
    try:
        done = sealgate(sealed_clone, "seal")
        assert_refused_naming(done, sealed_clone, stage, check_id)
        reused = {int(m) for m in re.findall(r"^EIXO (\d) \(\w+\): reusing fresh evidence", done.stdout, re.M)}
        assert stage not in reused and reused, "untouched stages' evidence should have been reused"
        if stage == 2:  # a rule file: EIXO 2 and EIXO 6 (its suite finds the rules loaded) re-run, EIXO 3 does not
            assert 6 not in reused and 3 in reused, reused
    finally:
        git(sealed_clone, "checkout", "--", relative)
        restore_clean_evidence(sealed_clone)


def nox(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_here(root, "nox", *args)


def test_clean_tree_seals_and_verifies(sealed_clone: Path) -> None:
    """The README's main command on the clone: `nox -s seal`, then `nox -s verify -- F9.10-SEALED`."""
    done = nox(sealed_clone, "-s", "seal")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "SEALED F9.10-SEALED" in done.stdout
    # Nothing changed since the first run: its evidence stands (EIXO 0 always re-runs: it judges the environment).
    reused = set(re.findall(r"^EIXO (\d) \(\w+\): reusing fresh evidence", done.stdout, re.M))
    assert reused == {"1", "2", "3", "4", "5", "6"}, done.stdout[-3000:]
    head = git(sealed_clone, "rev-parse", "HEAD")
    assert git(sealed_clone, "rev-parse", "F9.10-SEALED^{commit}") == head
    assert git(sealed_clone, "cat-file", "-t", "F9.10-SEALED") == "tag"  # annotated
    message = git(sealed_clone, "tag", "-l", "--format=%(contents)", "F9.10-SEALED")
    for line in (
        f"commit: {head}",
        "  C1  passed   Prometheus containerizado (docker-compose)",
        "  C3  passed   5 alert rules válidas (métricas existentes)",
        "  C7  waived   Grafana dashboard 4 painéis",
        "  C8  waived   Tests suite F9.10 (8 cenários)",
        "  test stack.tests.test_f9_10_observability::test_grafana_datasource_prometheus:",
    ):
        assert line in message, message
    assert re.search(r"^base: F9\.9-C-SEALED [0-9a-f]{40} ok$", message, re.M), message
    report = (sealed_clone / "reports" / "SEAL_F9.10.md").read_text()
    assert "✅ SEALED — tag `F9.10-SEALED` criada" in report
    assert "**Resultado:** 6/8 critérios aprovados pela evidência, 2 com waiver, 0 não atendidos." in report
    assert "```mermaid" in report and "2025-01-XX" not in report
    for number in range(7):
        assert f"`artifacts/f9_10/eixo_{number}.json`" in report
    verified = nox(sealed_clone, "-s", "verify", "--", "F9.10-SEALED")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-2000:]
    assert "verify F9.10-SEALED: OK" in verified.stdout
    assert git(sealed_clone, "status", "--porcelain") == ""  # nothing the run wrote dirtied the sealed tree


def test_no_planted_secret_in_any_output(sealed_clone: Path) -> None:
    """Every run above had PLANTED in its environment: no value appears in the evidence, its attachments, the
    manifest, the reports, the CI outputs, the tag message, or anything printed."""
    places = {"printed output of the runs": "\n".join(OUTPUTS)}
    places["tag message"] = git(sealed_clone, "tag", "-l", "--format=%(contents)", "F9.10-SEALED")
    for folder in ("artifacts", "reports"):
        for path in sorted((sealed_clone / folder).rglob("*")):
            if path.is_file():
                places[path.relative_to(sealed_clone).as_posix()] = path.read_bytes().decode("utf-8", "replace")
    assert any(name.startswith("artifacts/f9_10/eixo_") for name in places) and "tag message" in places
    leaks = [(where, secret) for where, text in places.items() for secret in SECRET_VALUES if secret in text]
    assert leaks == [], leaks

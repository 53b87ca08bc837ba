"""Two readings of the compose file that public monitoring repositories showed sealgate getting wrong
(tests/seal/test_real_repos.py): `containerize/config-mounts` called an exporter's host mounts (`/proc:/host/proc`,
`/:/rootfs`) configuration kept outside the repository, and `containerize/hardening` said Grafana's admin password
was not passed when the service's `env_file:` passes it (committed, in vegasbrianc/prometheus).

A host path written as one (`/proc`, `~/x`) is the host itself, which an exporter reads by design: not judged as
configuration (the dangerous ones — the engine's socket, the directories above it — stay hardening's findings); a
path of the project (`./x`, `../x`) that leaves the repository still fails. Grafana's variables are read from its
`env_file:` files too, at their own lines, `environment:` overriding them as in Compose.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from checkrun import explain, run_checks
from conftest import commit_all, init_repo

from sealgate.model.results import Severity, Status

SPEC = "sprint/HOST.yaml"
COMPOSE = "docker-compose.yml"

EXPORTER = """\
services:
  prometheus:
    image: prom/prometheus:v2.51.0
    volumes:
      - ./prometheus:/etc/prometheus:ro
      - prometheus_data:/prometheus
  node-exporter:
    image: prom/node-exporter:v1.8.1
    volumes:
      - /proc:/host/proc:ro
      - /sys:/host/sys:ro
      - type: bind
        source: /
        target: /rootfs
        read_only: true
volumes:
  prometheus_data: {}
"""

GRAFANA = """\
services:
  grafana:
    image: grafana/grafana:11.3.1
    env_file:
      - ./grafana/grafana.env
"""


def project(tmp_path: Path, compose: str, files: dict[str, str], check_id: str) -> Path:
    """A repository holding the compose file, `files`, a stack description and a one-check spec, committed."""
    root = init_repo(tmp_path / "project")
    services = yaml.safe_load(compose)["services"]
    spec = {
        "sealgate": 1,
        "id": "HOST",
        "title": "Host paths and env files",
        "language": "en",
        "first_in_chain": True,
        "tag": "HOST-SEALED",
        "stack": "stack.yaml",
        "objective": "The compose file read as Compose reads it.",
        "stages": [{"number": 0, "name": "static", "title": "Static", "checks": [{"id": check_id}]}],
        "criteria": [{"id": "C1", "title": "Holds", "stages": [0]}],
    }
    written = {
        COMPOSE: compose,
        "stack.yaml": yaml.safe_dump(
            {
                "sealgate_stack": 1,
                "compose": {"file": COMPOSE},
                "services": {name: {"role": "other"} for name in services},
            }
        ),
        SPEC: yaml.safe_dump(spec, sort_keys=False),
        **files,
    }
    for relative, text in written.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    commit_all(root, "a project")
    return root


def run(root: Path, check_id: str) -> object:
    return run_checks(root, 0, [check_id], sprint="HOST")[check_id]


def errors(result: object) -> list:
    return [f for f in result.findings if f.severity is Severity.ERROR]


def line_of(root: Path, relative: str, text: str) -> int:
    return next(i for i, line in enumerate((root / relative).read_text().splitlines(), 1) if text in line)


# --- containerize/config-mounts: the host is no configuration ------------------------------------------------------


def test_an_exporters_host_paths_are_no_configuration_mounts(tmp_path: Path, resolver: str) -> None:
    root = project(
        tmp_path, EXPORTER, {"prometheus/prometheus.yml": "scrape_configs: []\n"}, "containerize/config-mounts"
    )
    result = run(root, "containerize/config-mounts")
    assert result.status is Status.PASSED, explain(result)
    assert result.data["bind_mounts"] == {"prometheus": {"/etc/prometheus": "prometheus"}}
    assert result.data["host_mounts"] == {
        "node-exporter": {"/host/proc": "/proc", "/host/sys": "/sys", "/rootfs": "/"}
    }, result.data


def test_a_project_path_that_leaves_the_repository_still_fails(tmp_path: Path, resolver: str) -> None:
    compose = EXPORTER.replace("./prometheus:/etc/prometheus:ro", "../shared/prometheus:/etc/prometheus:ro")
    root = project(tmp_path, compose, {}, "containerize/config-mounts")
    (tmp_path / "shared" / "prometheus").mkdir(parents=True)  # it exists, only not in the repository
    result = run(root, "containerize/config-mounts")
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert finding.summary == (
        f"service prometheus: bind mount {tmp_path / 'shared' / 'prometheus'} -> /etc/prometheus is outside the "
        "repository: the stack must not depend on host paths"
    )
    assert (finding.location.file, finding.location.line) == (COMPOSE, line_of(root, COMPOSE, "../shared/prometheus"))


# --- containerize/hardening: Grafana's env_file -------------------------------------------------------------------


def test_a_password_committed_in_grafanas_env_file_fails_at_its_line(tmp_path: Path, resolver: str) -> None:
    env = "GF_USERS_ALLOW_SIGN_UP=false\nGF_SECURITY_ADMIN_PASSWORD=foobar\n"
    root = project(tmp_path, GRAFANA, {"grafana/grafana.env": env}, "containerize/hardening")
    result = run(root, "containerize/hardening")
    assert result.status is Status.FAILED, explain(result)
    found = [(f.summary, f.location.file, f.location.line) for f in errors(result)]
    assert found[0] == (
        "service grafana: GF_SECURITY_ADMIN_PASSWORD is set in grafana/grafana.env (a password committed to git); pass "
        "it through from the environment (or a secret file) instead",
        "grafana/grafana.env",
        2,
    )
    # Passed (through the env file), and nothing refuses the default when it goes: the entrypoint guard is still asked.
    assert [summary for summary, _f, _l in found[1:]] == [
        "service grafana: nothing refuses to start Grafana when GF_SECURITY_ADMIN_PASSWORD is unset or 'admin' "
        "(Grafana then falls back to admin/admin); guard it in the entrypoint"
    ]
    assert not any("is not passed to Grafana" in summary for summary, _f, _l in found)


def test_a_password_grafanas_env_file_reads_from_the_environment_is_passed(tmp_path: Path, resolver: str) -> None:
    """No committed value: the env file names a variable of the operator's; and with a guard there is no finding."""
    compose = GRAFANA.replace(
        "    env_file:\n",
        '    entrypoint: ["sh", "-c", \'test "$${GF_SECURITY_ADMIN_PASSWORD:-admin}" != admin && exec /run.sh\']\n'
        "    env_file:\n",
    )
    env = "GF_SECURITY_ADMIN_PASSWORD=${GRAFANA_ADMIN_PASSWORD}\n"
    root = project(tmp_path, compose, {"grafana/grafana.env": env}, "containerize/hardening")
    result = run(root, "containerize/hardening")
    assert result.status is Status.PASSED, explain(result)


def test_environment_overrides_the_env_file_as_in_compose(tmp_path: Path, resolver: str) -> None:
    compose = GRAFANA + "    environment:\n      - GF_SECURITY_ADMIN_PASSWORD=admin\n"
    env = "GF_SECURITY_ADMIN_PASSWORD=${GRAFANA_ADMIN_PASSWORD}\n"
    root = project(tmp_path, compose, {"grafana/grafana.env": env}, "containerize/hardening")
    result = run(root, "containerize/hardening")
    assert result.status is Status.FAILED, explain(result)
    first = errors(result)[0]
    assert first.summary.startswith(
        "service grafana: GF_SECURITY_ADMIN_PASSWORD is set in the file (Grafana's default 'admin')"
    ), first.summary
    assert (first.location.file, first.location.line) == (COMPOSE, line_of(root, COMPOSE, "    environment:"))


def test_without_the_variable_anywhere_grafana_starts_with_the_default(tmp_path: Path, resolver: str) -> None:
    root = project(
        tmp_path, GRAFANA, {"grafana/grafana.env": "GF_USERS_ALLOW_SIGN_UP=false\n"}, "containerize/hardening"
    )
    result = run(root, "containerize/hardening")
    assert result.status is Status.FAILED, explain(result)
    (finding,) = errors(result)
    assert finding.summary == (
        "service grafana: GF_SECURITY_ADMIN_PASSWORD is not passed to Grafana, so it starts with admin/admin"
    )

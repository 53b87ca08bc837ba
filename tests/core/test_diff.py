"""`sealgate diff A B` on real seals in real repositories: the DEMO chain (criteria, checks, waivers), a small
project whose rule file changes between two seals (rules/promtool-check on the real promtool: an alert added, a
recording rule removed, an alert's `for` and labels changed), the open sprint judged from `artifacts/`, JSON that
parses with stable keys, bad refs as one line and exit 2, and the SEAL report's "since <base tag>" section in the
spec's language. The drill, restore, image and tool groups are compared on the evidence of this repository's own
F9.10 seal (read from git objects), with the facts a later run records (budgets, per-volume restore times, image IDs,
a new service) — evidence written before a fact was recorded must compare without inventing a change."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROJECT_ROOT, commit_all, git, init_repo, need_tool
from demo import BETA_SKIP_WAIVER, make_demo_repo, set_switch

from sealgate import engine
from sealgate.api.context import RunOptions
from sealgate.evidence.model import Statement
from sealgate.kernel.gitrepo import Repo
from sealgate.seal import diff as diffing


def seal(root: Path, sprint: str, **kw: Any) -> list[str]:
    lines: list[str] = []

    def no_stack(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("the stack was started")

    code = engine.seal(root, sprint, RunOptions(backend="local", **kw), out=lines.append, stack_factory=no_stack)
    assert code == 0, lines
    return lines


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sealgate.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def group(lines: list[str], title: str) -> list[str]:
    """The lines of one group of `sealgate diff`'s text (up to the blank line after it)."""
    start = lines.index(title) + 1
    end = lines.index("", start)
    return lines[start:end]


# --- the DEMO chain ---------------------------------------------------------------------------------------------


def add_demo2(root: Path, language: str = "en") -> None:
    """DEMO2 on DEMO's seal: demo/delta dropped, demo/lines added with a criterion of its own (C3), and beta now
    skipped here under a waiver (so demo/beta and C1 are waived, no longer passed)."""
    spec = yaml.safe_load((root / "sprint" / "DEMO.yaml").read_text())
    spec.update({"id": "DEMO2", "tag": "DEMO2-SEALED", "base_tag": "DEMO-SEALED", "language": language})
    spec["stages"][1]["checks"] = [{"id": "demo/gamma"}, {"id": "demo/lines"}]
    spec["criteria"].append({"id": "C3", "title": "Lines hold", "checks": ["demo/lines"]})
    (root / "sprint" / "DEMO2.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    (root / "sprint" / "DEMO2.waivers.yaml").write_text(BETA_SKIP_WAIVER)
    (root / "demo" / "lines.txt").write_text("")  # no line, no finding: demo/lines passes
    set_switch(root, "beta", "skip", commit=False)
    commit_all(root, "sprint DEMO2")


@pytest.fixture
def demo_chain(tmp_path: Path) -> Path:
    root = make_demo_repo(tmp_path)
    seal(root, "DEMO")
    add_demo2(root)
    seal(root, "DEMO2")
    return root


def test_diff_between_two_demo_seals_shows_criteria_checks_and_waivers(demo_chain: Path) -> None:
    done = cli(demo_chain, "diff", "DEMO-SEALED", "DEMO2-SEALED")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    seal_a = git(demo_chain, "rev-parse", "DEMO-SEALED^{commit}")
    assert lines[0] == "diff DEMO-SEALED → DEMO2-SEALED"
    assert lines[1].startswith(f"  A  DEMO-SEALED: sprint DEMO, seal {seal_a[:12]} on commit ")
    assert group(lines, "criteria") == [
        "  added    C3  passed — Lines hold",
        "  changed  C1  passed → waived — Alpha and beta hold",
    ]
    assert group(lines, "checks") == [
        "  added    demo/lines  passed",
        "  removed  demo/delta  passed",
        "  changed  demo/beta   passed → waived (skipped)",
    ]
    assert group(lines, "waivers") == ["  added    check demo/beta  expires 2099-12-31; approved by Ana Reviewer"]
    # DEMO runs no rules check, no drill, no restore and no stack: said, never shown as everything added.
    assert group(lines, "alerting and recording rules") == ["  recorded by neither side"]
    assert group(lines, "images") == ["  recorded by neither side"]
    assert lines[-1] == "6 change(s): 2 criteria, 3 checks, 1 waivers"
    # The seal commits name the same seals as the tags do.
    seal_b = git(demo_chain, "rev-parse", "DEMO2-SEALED^{commit}")
    by_commit = cli(demo_chain, "diff", seal_a, seal_b)
    assert by_commit.returncode == 0 and by_commit.stdout.splitlines()[3:] == lines[3:]


def test_diff_json_parses_with_stable_keys(demo_chain: Path) -> None:
    done = cli(demo_chain, "diff", "DEMO-SEALED", "DEMO2-SEALED", "--format", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert sorted(document) == ["a", "b", "count", "groups"]
    assert list(document["groups"]) == sorted(diffing.GROUPS)  # every group, always (sorted keys)
    assert sorted(document["a"]) == ["commit", "label", "open", "seal_commit", "sealed_at", "sprint", "tag"]
    assert document["b"]["label"] == "DEMO2-SEALED" and document["b"]["open"] is False
    assert document["groups"]["criteria"] == {
        "recorded": "both",
        "changes": [
            {"change": "added", "subject": "C3", "before": None, "after": {"title": "Lines hold", "verdict": "passed"}},
            {
                "change": "changed",
                "subject": "C1",
                "before": {"title": "Alpha and beta hold", "verdict": "passed"},
                "after": {"title": "Alpha and beta hold", "verdict": "waived"},
            },
        ],
    }
    assert document["groups"]["rules"] == {"recorded": "neither", "changes": []}
    assert document["count"] == 6


def test_diff_against_the_open_sprint_judged_from_its_evidence(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    seal(root, "DEMO")
    add_demo2(root)
    seal(root, "DEMO2", no_tag=True)  # evidence in artifacts/, no seal
    out: list[str] = []
    assert engine.diff(root, "DEMO-SEALED", None, out=out.append) == 0
    assert out[0] == "diff DEMO-SEALED → DEMO2 (open)"
    assert (
        out[2]
        == f"  B  DEMO2 (open): open sprint DEMO2, judged from its evidence at HEAD {git(root, 'rev-parse', 'HEAD')[:12]}"
    )
    assert "  changed  C1  passed → waived — Alpha and beta hold" in out
    # An edited judged file makes the open evidence stale: the diff says what the judge says.
    set_switch(root, "gamma", "bad")
    out = []
    assert engine.diff(root, "DEMO-SEALED", None, open_sprint=True, sprint="DEMO2", out=out.append) == 0
    assert "  changed  demo/gamma  passed → stale (passed)" in out


def test_bad_refs_are_one_line_and_exit_2(demo_chain: Path) -> None:
    cases = {
        ("NOPE",): "sealgate: A NOPE: no such tag or commit in this repository, and no seal in HEAD's history "
        "names it (fetch it with `git fetch origin tag NOPE`, or name a seal commit)",
        ("DEMO-SEALED", "DEMO-BASE"): "sealgate: B DEMO-BASE: is a tag but not a sealgate seal: commit "
        f"{git(demo_chain, 'rev-parse', 'DEMO-BASE^{commit}')[:12]} adds no seals/<ID>/seal.json (name a seal tag or "
        "a seal commit)",
        ("DEMO-SEALED", "DEMO2-SEALED", "--open"): "sealgate: diff: B (DEMO2-SEALED) and --open both name the later "
        "side (give one of them)",
        ("DEMO-SEALED",): "sealgate: sprint/: no open sprint to compare with (name B: a seal tag or a seal commit)",
    }
    for args, expected in cases.items():
        done = cli(demo_chain, "diff", *args)
        assert (done.returncode, done.stdout, done.stderr) == (2, "", expected + "\n"), args


# --- rules between two seals -------------------------------------------------------------------------------------

COMPOSE = """\
services:
  prom:
    image: prom/prometheus:v2.51.0
    volumes:
      - ./prometheus:/etc/prometheus:ro
"""
STACK = """\
sealgate_stack: 1
compose: {file: docker-compose.yml}
services:
  prom: {role: prometheus, ready: /-/ready}
"""
PROMETHEUS = """\
global: {scrape_interval: 15s, evaluation_interval: 15s}
rule_files: [rules/*.yml]
"""
RULES = """\
groups:
  - name: web
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - alert: WebDown
        expr: up{job="web"} == 0
        for: 1m
        labels: {severity: critical}
        annotations: {summary: web is down}
      - alert: WebSlow
        expr: histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 1
        for: 5m
        labels: {severity: warning}
        annotations: {summary: web is slow}
"""
# The next sprint: the recording rule removed, WebDown waits 2m and pages, WebErrors added, WebSlow untouched.
RULES_NEXT = """\
groups:
  - name: web
    rules:
      - alert: WebDown
        expr: up{job="web"} == 0
        for: 2m
        labels: {severity: page}
        annotations: {summary: web is down}
      - alert: WebSlow
        expr: histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) > 1
        for: 5m
        labels: {severity: warning}
        annotations: {summary: web is slow}
      - alert: WebErrors
        expr: sum(rate(http_requests_total{code=~"5.."}[5m])) > 1
        for: 5m
        labels: {severity: warning}
        annotations: {summary: web answers errors}
"""


def rules_spec(sprint: str, base: str | None) -> str:
    return yaml.safe_dump(
        {
            "sealgate": 1,
            "id": sprint,
            "title": f"Rules of {sprint}",
            "language": "en",
            **({"base_tag": base} if base else {"first_in_chain": True}),
            "tag": f"{sprint}-SEALED",
            "stack": "stack.yaml",
            "objective": "Rule files that promtool accepts.",
            "stages": [{"number": 0, "name": "rules", "title": "Rules", "checks": [{"id": "rules/promtool-check"}]}],
            "criteria": [{"id": "C1", "title": "The rules are valid", "stages": [0]}],
        },
        sort_keys=False,
    )


def test_a_rules_diff_names_the_rules_added_removed_and_changed(tmp_path: Path) -> None:
    need_tool("promtool")
    root = init_repo(tmp_path / "rules-project")
    for relative, text in {
        ".gitignore": "artifacts/\nreports/\n.sealgate/\n",  # what a run writes never dirties the judged tree
        "docker-compose.yml": COMPOSE,
        "stack.yaml": STACK,
        "prometheus/prometheus.yml": PROMETHEUS,
        "prometheus/rules/web.yml": RULES,
        "sprint/R1.yaml": rules_spec("R1", None),
    }.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    commit_all(root, "R1")
    seal(root, "R1")
    (root / "prometheus/rules/web.yml").write_text(RULES_NEXT)
    (root / "sprint/R2.yaml").write_text(rules_spec("R2", "R1-SEALED"))
    commit_all(root, "R2")
    seal(root, "R2")
    out: list[str] = []
    assert engine.diff(root, "R1-SEALED", "R2-SEALED", out=out.append) == 0
    assert group(out, "alerting and recording rules") == [
        "  added    alert WebErrors                  prometheus/rules/web.yml:14",
        "  removed  record job:http_requests:rate5m  prometheus/rules/web.yml:4",
        "  changed  alert WebDown                    for 1m → 2m; labels.severity critical → page "
        "(prometheus/rules/web.yml:4)",
    ], out
    assert group(out, "tool versions") == ["  no change"]  # promtool, recorded by both runs
    # In JSON, each rule's whole definition on both sides.
    document: dict[str, Any] = {}
    assert engine.diff(root, "R1-SEALED", "R2-SEALED", fmt="json", out=lambda t: document.update(json.loads(t))) == 0
    changed = document["groups"]["rules"]["changes"][2]
    assert changed["subject"] == "alert WebDown"
    assert (changed["before"]["for"], changed["after"]["for"]) == ("1m", "2m")
    assert changed["after"]["expr"] == 'up{job="web"} == 0' and changed["after"]["group"] == "web"


# --- the SEAL report's "since <base>" section -------------------------------------------------------------------


def test_the_report_of_the_open_sprint_shows_the_diff_since_its_base_seal(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    seal(root, "DEMO")
    # DEMO's own base is a plain tag (DEMO-BASE), no seal: its report has no such section.
    assert "## SINCE" not in (root / "seals" / "DEMO" / "SEAL_DEMO.md").read_text()
    add_demo2(root, language="pt-BR")
    seal(root, "DEMO2", no_tag=True)
    report = (root / "reports" / "SEAL_DEMO2.md").read_text()
    seal_commit = git(root, "rev-parse", "DEMO-SEALED^{commit}")
    section = report[report.index("## DESDE DEMO-SEALED") : report.index("## 4)")]
    assert f"O que mudou do selo da base DEMO-SEALED (selo `{seal_commit[:12]}`, selado em " in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    assert rows == [
        "| critérios | adicionado | `C3` | ✅ aprovado — Lines hold |",
        "| critérios | alterado | `C1` | ✅ aprovado → ⚠️ waiver — Alpha and beta hold |",
    ], section
    # Sealed, the report in the seal commit carries the same section.
    seal(root, "DEMO2")
    assert "## DESDE DEMO-SEALED" in (root / "seals" / "DEMO2" / "SEAL_DEMO2.md").read_text()


def test_the_report_section_in_english_says_no_change(tmp_path: Path) -> None:
    root = make_demo_repo(tmp_path)
    seal(root, "DEMO")
    text = (root / "sprint" / "DEMO.yaml").read_text()
    text = text.replace("id: DEMO\n", "id: DEMO2\n").replace("\ntag: DEMO-SEALED", "\ntag: DEMO2-SEALED")
    (root / "sprint" / "DEMO2.yaml").write_text(text.replace("base_tag: DEMO-BASE", "base_tag: DEMO-SEALED"))
    commit_all(root, "DEMO2, the same checks")
    seal(root, "DEMO2", no_tag=True)
    report = (root / "reports" / "SEAL_DEMO2.md").read_text()
    section = report[report.index("## SINCE DEMO-SEALED") : report.index("## 4)")]
    assert "No change in the criteria, rules, alerts, restore times, images or tools." in section
    assert "| Group | Change | What | Detail |" not in section


# --- drill, restore, images and tools, on real sealed evidence ----------------------------------------------------


def later_run(side: diffing.Side) -> diffing.Side:
    """The side as a later run records it: one alert delivered faster under a stated budget, per-volume restore
    times, images with their IDs and digests plus a new service, service versions, a newer promtool."""
    statements = []
    for statement in side.statements:
        document = copy.deepcopy(statement.to_json())
        predicate = document["predicate"]
        stack = predicate["run"]["stack"]
        if stack and "images" in stack:
            stack["images"] = {
                service: {"image": image, "id": "sha256:" + "ab" * 32, "repo_digest": None}
                for service, image in stack["images"].items()
            } | {
                "exporter": {
                    "image": "exporter:1.0",
                    "id": "sha256:" + "cd" * 32,
                    "repo_digest": "exporter@sha256:" + "ef" * 32,
                }
            }
            stack["versions"] = {"prometheus": "2.42.0"}
        if "promtool" in predicate["run"]["tool_versions"]:
            predicate["run"]["tool_versions"]["promtool"] = "2.45.0 (branch: HEAD)"
        for check in predicate["checks"]:
            if check["id"] == "rules/alert-drill":
                check["data"]["alerts"]["APIDown"]["fire_receiver_s"] = 80.0
                check["data"]["budgets"] = [{"alert": "APIDown", "phase": "api_down", "fire_bound_s": 150.0,
                                             "resolve_bound_s": 60.0, "max_fire_s": 180, "max_resolve_s": None}]  # fmt: skip
                check["data"]["coverage"][0]["covered_by"] = ["unit_test"]
            if check["id"] == "backup/restore-drill":
                check["data"]["restore_times"] = {"postgres_data": {"seconds": 12.5, "rto_s": 600.0}}
        statements.append(Statement.from_json(document))
    return diffing.Side(**{**side.__dict__, "label": "later", "statements": statements})


def test_drill_restore_images_and_tools_compare_on_sealed_evidence() -> None:
    repo = Repo(PROJECT_ROOT)
    try:
        ref = diffing.resolve(repo, "F9.10-SEALED", "A")
    except Exception as exc:  # a shallow checkout of this repository holds no seal
        pytest.skip(f"this checkout holds no F9.10 seal in its history: {exc}")
    sealed = diffing.sealed_side(repo, ref)
    result = diffing.compare(repo, sealed, later_run(sealed))
    lines = diffing.text_lines(result)
    assert group(lines, "alert drill (seconds after the fault / the restore)") == [
        "  changed  alert APIDown  delivered firing 86.5s → 80.0s (-6.5s) [bound ≤ 150.0s, budget ≤ 180s] · "
        "resolution delivered 11.2s [bound ≤ 60.0s]"
    ]
    assert group(lines, "alert coverage") == ["  changed  alert APIDown  unit test, drill → unit test"]
    # Restore times recorded only by the later run: the volume is new, the drill's own time unchanged.
    assert group(lines, "restore time") == ["  added    backup/restore-drill postgres_data  12.5s (RTO 600.0s)"]
    # A reference that gained an ID is the same image; the new service is named.
    assert group(lines, "images") == [f"  added    exporter  exporter:1.0@sha256:{'ef' * 32} (id sha256:cdcdcdcdcdcd)"]
    assert group(lines, "service versions") == ["  not recorded by F9.10-SEALED: not compared"]
    assert group(lines, "tool versions") == ["  changed  promtool  2.42.0+ds → 2.45.0"]
    assert group(lines, "alerting and recording rules") == ["  no change"]  # the same files, read from git objects

"""sealgate benchmarks (run on demand: `nox -s bench`, never part of `nox -s tests`). Prints ratios, one per goal:

  seal      a full seal in a fresh clone: the framework's time (wall minus recorded waits, stack readiness and
            external tools) / wall, and the wall against the longest chain of dependent waits; then the wall of a
            re-seal with nothing changed (evidence reused), median of several runs
  scale     offline EIXO 2 (promtool check rules/config + inventory + metric extraction) on 100/1,000/10,000
            generated rules vs `promtool check rules` alone on the same files; same for dashboards with many panels
  cold      from a fresh clone with no venvs, seconds until the first stage starts (`nox -s eixo_0`, uv)

Usage: python bench/bench.py [seal|scale|cold ...]   (default: all)
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from generate import dashboard, inventory_groups, rule_files  # noqa: E402

RUNS = 3


def _clone(dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    for key, value in (("user.name", "bench"), ("user.email", "bench@sealgate.invalid")):
        subprocess.run(["git", "config", key, value], cwd=dest, check=True)
    return dest


def _timed(argv: list[str], cwd: Path) -> float:
    started = time.monotonic()
    subprocess.run(argv, cwd=cwd, check=False, capture_output=True)
    return time.monotonic() - started


def overhead(folder: Path, command_wall: float) -> list[tuple[str, str, str]]:
    """From the evidence of one seal: the framework's own share of the wall time, and the wall against the
    longest chain of waits that depend on each other (stack ready, then the drill's alert windows)."""
    documents = [json.loads(p.read_text()) for p in sorted(folder.glob("eixo_[0-6].json"))]
    if not documents:
        return [("overhead", f"no evidence in {folder}", "—")]
    stages = [d["predicate"] for d in documents]
    stage_wall = sum(p["run"]["duration_s"] for p in stages)
    waits = sum(w["seconds"] for p in stages for w in p["waits"])
    timings = next(((p["run"].get("stack") or {}).get("timings") for p in stages if p["run"].get("stack")), None)
    stack_ready = max((timings or {}).values(), default=0.0)
    tools = sum(c["duration_s"] for p in stages for c in p["commands"])
    own = max(command_wall - waits - stack_ready - tools, 0.0)
    drill = sum(w["seconds"] for p in stages for w in p["waits"] if w["check"] == "rules/alert-drill")
    chain = stack_ready + drill
    rows = [
        ("seal wall (whole command)", f"{command_wall:.1f} s", f"sum of stages {stage_wall:.1f} s"),
        (
            "overhead: framework / wall",
            f"{own / command_wall:.1%}",
            f"wall − waits {waits:.1f} s − stack ready {stack_ready:.1f} s − tools {tools:.1f} s; goal ≤ 10%",
        ),
        (
            "seal / longest dependent chain",
            f"{command_wall / chain:.2f}×" if chain else "—",
            f"chain = stack ready {stack_ready:.1f} s + drill waits {drill:.1f} s; goal ≤ 1.3×",
        ),
    ]
    for p in stages:
        rows.append(
            (
                f"  EIXO {p['stage']['number']} {p['stage']['name']}",
                f"{p['run']['duration_s']:.1f} s",
                f"waits {sum(w['seconds'] for w in p['waits']):.1f} s",
            )
        )
    return rows


def seal() -> list[tuple[str, str, str]]:
    """A full seal in a fresh clone (the real drill: minutes), its overhead, then re-seals with nothing changed."""
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as tmp:
        repo = _clone(Path(tmp) / "repo")
        argv = [sys.executable, "-m", "sealgate.cli", "seal", "--no-tag"]
        first = _timed(argv, repo)
        rows = overhead(repo / "artifacts" / "f9_10", first)
        times = [_timed(argv, repo) for _ in range(RUNS)]
    median = statistics.median(times)
    rows.append(("re-seal, nothing changed (median)", f"{median:.2f} s", f"goal ≤ 3 s; runs {times}"))
    return rows


def _timed_checks(repo: Path, stage: int, check_ids: list[str], then: str = "") -> float:
    """Seconds for the given checks (plus the `then` statement) in a fresh interpreter inside the clone."""
    code = (
        "import time,sys; from pathlib import Path; sys.path.insert(0,'tests');"
        "from checkrun import run_checks; from sealgate.checks import promql;"
        "from sealgate.sprint.yamlsource import load_yaml;"
        f"t=time.monotonic(); run_checks(Path('.'),{stage},{check_ids!r});"
        + (f"{then};" if then else "")
        + "print(time.monotonic()-t)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


# The offline metric extraction of EIXO 2, over every generated rule.
EXTRACT_METRICS = (
    "[promql.metric_names(r['expr']) for f in sorted(Path('stack/prometheus/alerts').glob('*.yml'))"
    " for g in load_yaml(f,str(f)).value['groups'] for r in g['rules']]"
)


def _expect_inventory(repo: Path, groups: dict[str, list[dict[str, str]]]) -> None:
    """Point the clone's spec at the generated rules, so `rules/inventory` judges a passing set."""
    path = repo / "sprint" / "F9.10.yaml"
    spec = yaml.safe_load(path.read_text())
    for stage in spec["stages"]:
        for ref in stage["checks"]:
            if ref["id"] == "rules/inventory":
                ref["with"] = {"groups": groups, "annotations": ["summary", "description"], "removed": []}
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))


def scale() -> list[tuple[str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as tmp:
        repo = _clone(Path(tmp) / "repo")
        alerts = repo / "stack" / "prometheus" / "alerts"
        for n in (100, 1_000, 10_000):
            shutil.rmtree(alerts)
            alerts.mkdir()
            generated = rule_files(n)
            for name, document in generated.items():
                (alerts / name).write_text(yaml.safe_dump(document, sort_keys=False))
            _expect_inventory(repo, inventory_groups(generated))
            files = [str(p) for p in sorted(alerts.glob("*.yml"))]
            promtool = statistics.median(_timed(["promtool", "check", "rules", *files], repo) for _ in range(RUNS))
            ours = statistics.median(
                _timed_checks(repo, 2, ["rules/promtool-check", "rules/inventory"], EXTRACT_METRICS)
                for _ in range(RUNS)
            )
            rows.append(
                (
                    f"rules {n:>6}: offline EIXO 2 / promtool",
                    f"{ours / promtool:.2f}×",
                    f"{ours:.2f} s vs {promtool:.2f} s; goal ≤ 1.5×",
                )
            )
        subprocess.run(["git", "checkout", "--", "sprint/F9.10.yaml"], cwd=repo, check=True)  # the real spec again
        board = repo / "stack" / "grafana" / "dashboards" / "llm_metrics.json"
        for n in (100, 1_000, 10_000):
            board.write_text(json.dumps(dashboard(n)))
            ours = statistics.median(
                _timed_checks(repo, 5, ["dashboard/json-structure", "dashboard/provisioning"]) for _ in range(RUNS)
            )
            parse = statistics.median(
                _timed([sys.executable, "-m", "json.tool", str(board)], repo) for _ in range(RUNS)
            )
            rows.append(
                (
                    f"dashboard {n:>6} panels: static EIXO 5 / json.tool",
                    f"{ours / parse:.2f}×",
                    f"{ours:.2f} s vs {parse:.2f} s ({ours / n * 1000:.2f} ms/panel)",
                )
            )
    return rows


def cold() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as tmp:
        repo = _clone(Path(tmp) / "repo")
        started = time.monotonic()
        proc = subprocess.Popen(
            ["nox", "-s", "eixo_0"], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        first_stage = None
        assert proc.stdout
        for line in proc.stdout:
            if line.startswith("EIXO 0 (preflight)"):
                first_stage = time.monotonic() - started
                break
        proc.kill()
        proc.wait()
    text = f"{first_stage:.1f} s" if first_stage is not None else "never started"
    return [("cold start: fresh clone → first stage", text, "goal ≤ 15 s with uv")]


BENCHES = {"seal": seal, "scale": scale, "cold": cold}


def main(names: list[str]) -> int:
    rows: list[tuple[str, str, str]] = []
    for name in names or list(BENCHES):
        rows += BENCHES[name]()
    width = max(len(r[0]) for r in rows)
    for label, value, note in rows:
        print(f"{label.ljust(width)}  {value:>10}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

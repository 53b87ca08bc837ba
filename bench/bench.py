"""sealgate benchmarks (run on demand: `nox -s bench`, never part of `nox -s tests`). Prints ratios, one per goal:

  overhead  framework time (wall minus recorded irreducible waits) / wall, from the evidence of the last seal
  reseal    wall of a re-seal with nothing changed (evidence reused), median of several runs
  scale     offline EIXO 2 (promtool check rules/config + inventory + metric extraction) on 100/1,000/10,000
            generated rules vs `promtool check rules` alone on the same files; same for dashboards with many panels
  cold      from a fresh clone with no venvs, seconds until the first stage starts (`nox -s eixo_0`, uv)

Usage: python bench/bench.py [overhead|reseal|scale|cold ...]   (default: all)
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
from generate import dashboard, rule_files  # noqa: E402

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


def overhead() -> list[tuple[str, str, str]]:
    """From artifacts/f9_10 of the last seal: the framework's own share of the wall time."""
    rows = []
    folder = ROOT / "artifacts" / "f9_10"
    documents = [json.loads(p.read_text()) for p in sorted(folder.glob("eixo_[0-6].json"))]
    if not documents:
        return [("overhead", "no evidence: run `nox -s seal` first", "—")]
    wall = sum(d["predicate"]["run"]["duration_s"] for d in documents)
    waits = sum(w["seconds"] for d in documents for w in d["predicate"]["waits"])
    stack = [d["predicate"]["run"].get("stack") or {} for d in documents]
    waits += sum(s.get("timings", {}).get("fresh_scrape", 0.0) for s in stack[:1])
    tools = sum(c["duration_s"] for d in documents for c in d["predicate"]["commands"])
    own = max(wall - waits - tools, 0.0)
    rows.append(("overhead: framework / wall", f"{own / wall:.1%}" if wall else "—", "goal ≤ 10%"))
    rows.append(("  wall (sum of stages)", f"{wall:.1f} s", f"waits {waits:.1f} s, tools {tools:.1f} s"))
    for d in documents:
        p = d["predicate"]
        rows.append(
            (
                f"  EIXO {p['stage']['number']} {p['stage']['name']}",
                f"{p['run']['duration_s']:.1f} s",
                f"waits {sum(w['seconds'] for w in p['waits']):.1f} s",
            )
        )
    return rows


def reseal() -> list[tuple[str, str, str]]:
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as tmp:
        repo = _clone(Path(tmp) / "repo")
        shutil.copytree(ROOT / "artifacts", repo / "artifacts")  # evidence of the last seal: reusable only at HEAD
        first = _timed([sys.executable, "-m", "sealgate.cli", "seal", "--no-tag"], repo)
        times = [_timed([sys.executable, "-m", "sealgate.cli", "seal", "--no-tag"], repo) for _ in range(RUNS)]
    median = statistics.median(times)
    return [("re-seal, nothing changed (median)", f"{median:.2f} s", f"goal ≤ 3 s; first run {first:.1f} s")]


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


def scale() -> list[tuple[str, str, str]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as tmp:
        repo = _clone(Path(tmp) / "repo")
        alerts = repo / "stack" / "prometheus" / "alerts"
        for n in (100, 1_000, 10_000):
            shutil.rmtree(alerts)
            alerts.mkdir()
            for name, document in rule_files(n).items():
                (alerts / name).write_text(yaml.safe_dump(document, sort_keys=False))
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


BENCHES = {"overhead": overhead, "reseal": reseal, "scale": scale, "cold": cold}


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

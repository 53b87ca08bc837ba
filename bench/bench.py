"""sealgate benchmarks (run on demand: `nox -s bench`, never part of `nox -s tests`). Prints ratios, one per goal:

  seal      two full seals in fresh clones (compose backend): the default drill and `--drill all`; each one's wall
            against its floor — the main stack's readiness plus the longest single drill phase, both read from that
            run's own evidence (goal ≤ 1.15×) — and what it cost the machine (CPU, memory, each stack copy's
            containers; bench/resources.py); then the wall of a re-seal with nothing changed (evidence reused),
            median of several runs. `seal-default` / `seal-all`: one of the two
  scale     offline EIXO 2 (promtool check rules/config + inventory + metric extraction) on 100/1,000/10,000
            generated rules vs `promtool check rules` alone on the same files; same for dashboards with many panels
  mixin     offline EIXO 2 on a real-size rule set shaped like the monitoring mixins (~2,300 rules in 330 files:
            recording rules, warning/critical pairs, templated annotations, multi-line expressions) vs `promtool
            check rules` alone on the same files; goal ≤ 1.5×
  lint      `sealgate lint FILE…` against `promtool check rules` on the same files, in CPU time (user + system of
            the whole process tree: lint runs promtool itself); on a real public rule set when a directory is given
            (`lint DIR`: every *.yml/*.yaml under it holding `groups:` — fetch one, never commit it), else on the
            generated mixin-shaped set; goal ≤ 1.5×
  cold      from a fresh clone with no venvs, seconds until the first stage starts (`nox -s eixo_0`, uv)

`seal` measures the newest open sprint of the clone; `seal SPRINT` a named one, the clone checked out at the
commit it was judged at when it is sealed on main. A figure a bench should print and cannot (no evidence where the
seal should have written it, a first stage that never started) ends the run with exit 1, naming it.

Usage: python bench/bench.py [seal [SPRINT]|seal-default|seal-all|scale|mixin|lint [DIR]|cold ...]   (default: all
       but the two `seal-*`, which `seal` already runs)
"""

from __future__ import annotations

import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from sealgate.evidence.model import Statement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from generate import dashboard, dump_rules, inventory_groups, mixin_inventory, mixin_rule_files, rule_files  # noqa: E402

RUNS = 3


class MissingFigure(Exception):
    """A figure the bench should print could not be measured: the run fails, naming it."""


def _clone(dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    for key, value in (("user.name", "bench"), ("user.email", "bench@sealgate.invalid")):
        subprocess.run(["git", "config", key, value], cwd=dest, check=True)
    return dest


def _timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    subprocess.run(argv, cwd=cwd, check=False, capture_output=True, env=env)
    return time.monotonic() - started


def _statements(folder: Path) -> list[Statement]:
    paths = sorted(p for p in folder.glob("eixo_*.json") if not p.name.endswith(".dsse.json"))
    return [Statement.from_json(json.loads(p.read_text())) for p in paths]


def _drill_data(stages: list[Statement]) -> dict[str, Any]:
    for stage in stages:
        for result in stage.checks:
            if result.check_id == "rules/alert-drill":
                return dict(result.data)
    return {}


def _epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def floor_ratio(folder: Path, command_wall: float, label: str) -> list[tuple[str, str, str]]:
    """From the evidence of one seal: its wall against its floor — the main stack's readiness plus the longest
    single drill phase (the phases run side by side on their own stack copies, and EIXO 3–6 run meanwhile)."""
    stages = _statements(folder)
    if not stages:
        raise MissingFigure(f"{label}: no evidence in {folder}")
    # The main stack's start, as the first stage that started it recorded it (up, ready, fresh scrape).
    timings = next(((p.run.stack or {}).get("timings") for p in stages if p.run.stack), None)
    stack_ready = max((timings or {}).values(), default=0.0)
    drill = _drill_data(stages)
    phases = [p for p in drill.get("phases") or [] if p.get("duration_s") is not None]
    if not phases:
        return [(label, f"{command_wall:.1f} s", "the drill recorded no phase: no floor to compare with")]
    longest = max(phases, key=lambda p: p["duration_s"])
    floor = stack_ready + longest["duration_s"]
    first_start = min(_epoch(p.run.started_at) for p in stages)
    rows = [
        (label, f"{command_wall:.1f} s", f"sum of stages {sum(p.run.duration_s for p in stages):.1f} s"),
        (
            "  floor: stack ready + longest drill phase",
            f"{floor:.1f} s",
            f"stack ready {stack_ready:.1f} s + {longest['name']} {longest['duration_s']:.1f} s "
            f"({', '.join(longest['alerts'])})",
        ),
        ("  seal wall / floor", f"{command_wall / floor:.2f}×", "goal ≤ 1.15×"),
        (
            "  drill",
            f"{drill.get('total_s', 0):.1f} s",
            f"{len(phases)} phases side by side, each on its own stack copy; sum of phases "
            f"{sum(p['duration_s'] for p in phases):.1f} s; began t+{_epoch(drill['started_at']) - first_start:.1f}s",
        ),
    ]
    for phase in phases:
        rows.append(
            (
                f"    phase {phase['name']}",
                f"{phase['duration_s']:.1f} s",
                f"waited {phase['waited_for_copy_s']:.1f} s for its copy (ready in "
                f"{(phase.get('copy') or {}).get('ready_s', 0):.1f} s); {phase['status']}",
            )
        )
    for p in stages:
        began = _epoch(p.run.started_at) - first_start
        ended = _epoch(p.run.finished_at) - first_start
        rows.append(
            (
                f"  EIXO {p.stage.number} {p.stage.name}",
                f"{p.run.duration_s:.1f} s",
                f"t+{began:.1f}s → t+{ended:.1f}s; waits {sum(w.seconds for w in p.waits):.1f} s",
            )
        )
    return rows


def _remove_project_volumes(project: str) -> None:
    """The main stack keeps its data across runs (copies never do): a bench leaves nothing behind."""
    import docker

    try:
        client = docker.from_env(timeout=30)
        for volume in client.volumes.list(filters={"label": f"com.docker.compose.project={project}"}):
            volume.remove(force=True)
    except Exception as exc:  # a bench reports, it does not fail on cleanup
        print(f"bench: could not remove the volumes of {project}: {exc}", file=sys.stderr)


def _open_sprint(repo: Path, sprint: str | None) -> str:
    """The sprint the clone's `seal --no-tag` judges: the named one — the clone checked out (detached) at the commit
    its seal judged, when it is sealed there — else the newest open one."""
    from sealgate.kernel.gitrepo import Repo
    from sealgate.seal.lifecycle import sprint_states

    states = sprint_states(Repo(repo))
    if sprint is None:
        open_ones = [s.head.id for s in states if s.kind == "open"]
        if not open_ones:
            raise MissingFigure("seal: no open sprint in the clone to measure (name one: bench.py seal SPRINT)")
        return open_ones[-1]
    state = next((s for s in states if s.head.id == sprint), None)
    if state is None:
        raise MissingFigure(f"seal: no sprint {sprint} in sprint/")
    if state.kind == "sealed" and state.judged:
        subprocess.run(["git", "checkout", "-q", "--detach", state.judged], cwd=repo, check=True)
    return sprint


def _one_seal(drill_all: bool, sprint: str | None = None) -> list[tuple[str, str, str]]:
    """A full seal in a fresh clone on the compose backend (the real drill: minutes), its wall against its floor and
    what it cost the machine; the default one then times re-seals with nothing changed."""
    from resources import Sampler

    from sealgate.sprint.model import slug_of

    project = f"sealgate-bench-{os.getpid()}" + ("-all" if drill_all else "")
    env = {**os.environ, "SEALGATE_COMPOSE_PROJECT": project, "SEALGATE_PORTS": "free", "SEALGATE_BACKEND": "compose"}
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as tmp:
        repo = _clone(Path(tmp) / "repo")
        measured = _open_sprint(repo, sprint)
        argv = [sys.executable, "-m", "sealgate.cli", "seal", "--no-tag", "--sprint", measured]
        argv += ["--drill", "all"] if drill_all else []
        sampler = Sampler(project)
        sampler.start()
        try:
            first = _timed(argv, repo, env)
        finally:
            sampler.stop()
        label = f"{measured} seal wall, --drill all" if drill_all else f"{measured} seal wall (whole `seal --no-tag`)"
        rows = floor_ratio(repo / "artifacts" / slug_of(measured), first, label)
        rows.append(("  resources while it ran", "", f"sampled every {sampler_interval():g} s"))
        rows += sampler.summary()
        keep = os.environ.get("SEALGATE_BENCH_KEEP")
        if keep:  # the run's evidence, for a look afterwards
            shutil.copytree(
                repo / "artifacts", Path(keep) / ("drill-all" if drill_all else "default"), dirs_exist_ok=True
            )
        if not drill_all:
            times = [_timed(argv, repo, env) for _ in range(RUNS)]
            median = statistics.median(times)
            rows.append(("re-seal, nothing changed (median)", f"{median:.2f} s", f"goal ≤ 3 s; runs {times}"))
    _remove_project_volumes(project)
    return rows


def sampler_interval() -> float:
    from resources import SAMPLE_S

    return SAMPLE_S


def seal(sprint: str | None = None) -> list[tuple[str, str, str]]:
    """The default seal (its drill phases) and a `--drill all` seal (the on-request phases too), each against its
    floor."""
    return _one_seal(drill_all=False, sprint=sprint) + _one_seal(drill_all=True, sprint=sprint)


def seal_default(sprint: str | None = None) -> list[tuple[str, str, str]]:
    return _one_seal(drill_all=False, sprint=sprint)


def seal_all(sprint: str | None = None) -> list[tuple[str, str, str]]:
    return _one_seal(drill_all=True, sprint=sprint)


def _timed_checks(repo: Path, stage: int, check_ids: list[str], then: str = "") -> float:
    """Seconds for the given checks (plus the `then` statement) in a fresh interpreter inside the clone."""
    code = (
        "import time,sys; from pathlib import Path; sys.path.insert(0,'tests');"
        "from checkrun import run_checks; from sealgate.analysis import promql;"
        "from sealgate.kernel.yamlsource import load_yaml;"
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


# The static part of the parecer on every rule, from the stage's one parse of each file (analysis/rulefiles.py
# caches it).
ANALYSE_PARSED = (
    "from sealgate.analysis import rulefiles as R;"
    "[promql.analyse(r.expr) for parsed, _ in list(R._PARSED.values()) for r in parsed.rules]"
)


def mixin() -> list[tuple[str, str, str]]:
    """The offline EIXO 2 on ~2,300 rules shaped like the real mixins, against promtool alone on the same files."""
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as tmp:
        repo = _clone(Path(tmp) / "repo")
        alerts = repo / "stack" / "prometheus" / "alerts"
        shutil.rmtree(alerts)
        alerts.mkdir()
        generated = mixin_rule_files(2300)
        for name, document in generated.items():
            (alerts / name.replace(".yaml", ".yml")).write_text(dump_rules(document))
        _expect_inventory(repo, mixin_inventory(generated))
        files = [str(p) for p in sorted(alerts.glob("*.yml"))]
        count = sum(len(g["rules"]) for d in generated.values() for g in d["groups"])
        size = sum(Path(f).stat().st_size for f in files) / 1e6
        promtool = statistics.median(_timed(["promtool", "check", "rules", *files], repo) for _ in range(RUNS))
        ours = statistics.median(
            _timed_checks(repo, 2, ["rules/promtool-check", "rules/inventory"], ANALYSE_PARSED) for _ in range(RUNS)
        )
    return [
        (
            f"mixin-shaped rules ({count} in {len(files)} files, {size:.1f} MB): offline EIXO 2 / promtool",
            f"{ours / promtool:.2f}×",
            f"{ours:.2f} s vs {promtool:.2f} s; goal ≤ 1.5×",
        )
    ]


def _cpu(argv: list[str], cwd: Path) -> float:
    """CPU seconds (user + system) of a command and every process it waited for (lint waits for its promtool)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, cwd=cwd, check=False, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _rule_files(directory: Path) -> list[Path]:
    """Every YAML file under `directory` whose text declares top-level `groups:` (a Prometheus rule file)."""
    found = [*directory.rglob("*.yml"), *directory.rglob("*.yaml")]
    return sorted(p for p in found if p.is_file() and any(line.startswith("groups:") for line in p.open()))


def lint(directory: str | None = None) -> list[tuple[str, str, str]]:
    """`sealgate lint FILE…` against `promtool check rules` on the same files, in CPU time."""
    with tempfile.TemporaryDirectory(prefix="sealgate-bench-") as tmp:
        if directory is None:
            where, what = Path(tmp), "generated mixin-shaped set"
            for name, document in mixin_rule_files(2300).items():
                (where / name).write_text(dump_rules(document))
        else:
            where, what = Path(directory).resolve(), f"{Path(directory).name} (given)"
        files = [str(p) for p in _rule_files(where)]
        if not files:
            raise MissingFigure(f"lint: no rule file under {where}")
        rules = sum(
            1 for f in files for line in Path(f).read_text(errors="replace").splitlines()
            if line.lstrip().startswith(("- alert:", "- record:"))
        )  # fmt: skip
        promtool = statistics.median(_cpu(["promtool", "check", "rules", *files], where) for _ in range(RUNS))
        ours = statistics.median(
            _cpu([sys.executable, "-m", "sealgate.cli", "lint", *files], where) for _ in range(RUNS)
        )
    return [
        (
            f"lint, {what} ({rules} rules in {len(files)} files): sealgate lint / promtool, CPU",
            f"{ours / promtool:.2f}×",
            f"{ours:.2f} s vs {promtool:.2f} s CPU (lint includes running promtool); goal ≤ 1.5×",
        )
    ]


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
            if line.startswith(("EIXO 0 (", "stage 0 (")):
                first_stage = time.monotonic() - started
                break
        proc.kill()
        proc.wait()
    if first_stage is None:
        raise MissingFigure("cold start: the first stage never started")
    return [("cold start: fresh clone → first stage", f"{first_stage:.1f} s", "goal ≤ 15 s with uv")]


BENCHES = {
    "seal": seal,
    "seal-default": seal_default,
    "seal-all": seal_all,
    "scale": scale,
    "mixin": mixin,
    "lint": lint,
    "cold": cold,
}
TAKES_ARGUMENT = {"seal", "seal-default", "seal-all", "lint"}  # a sprint id, or a directory


def main(args: list[str]) -> int:
    """Run the named benches (`name [ARG]`…, default: all but the two `seal-*`) and print one row per figure."""
    runs: list[tuple[str, str | None]] = []
    for arg in args:
        if arg in BENCHES:
            runs.append((arg, None))
        elif runs and runs[-1][0] in TAKES_ARGUMENT and runs[-1][1] is None:
            runs[-1] = (runs[-1][0], arg)
        else:
            print(f"bench: unknown bench {arg!r} (known: {', '.join(BENCHES)})", file=sys.stderr)
            return 2
    runs = runs or [(n, None) for n in BENCHES if not n.startswith("seal-")]
    rows: list[tuple[str, str, str]] = []
    try:
        for name, arg in runs:
            rows += BENCHES[name](arg) if arg is not None else BENCHES[name]()
    except MissingFigure as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    width = max(len(r[0]) for r in rows)
    for label, value, note in rows:
        print(f"{label.ljust(width)}  {value:>10}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

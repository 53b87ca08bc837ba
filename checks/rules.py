"""Alert rules and routing: a hand-made "parecer de executabilidade" (is every rule executable?), automated.

Static: promtool check rules/config, promtool unit tests (JUnit attached), the rule inventory against the spec,
amtool check-config and routing. Live (against the running stack): every metric each rule reads exists in the
scraped target's metrics and in Prometheus (a real PromQL parser, see checks/promql.py), the rules are loaded and
healthy, and an alert drill runs the spec's named phases — each injects a fault with generic primitives (stop or
start a service, POST to one), and its alerts must really fire in Prometheus, reach Alertmanager and the receiver,
then resolve once the fault is undone — with the rules' real `for` durations.

Files, services and the scrape target come from the spec's parameters or the stack description (by role); the
rule files default to what the described Prometheus service loads (checks/described.py).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import glob
import hashlib
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sealgate.backends.composefile import ComposeFile, map_path
from sealgate.backends.http import HttpAnswerError, request
from sealgate.checks import parecer, promql
from sealgate.checks.containerize import load_compose
from sealgate.checks.described import (
    DEFAULT_CONFIG,
    described_service,
    prometheus,
    prometheus_config,
    rule_file_patterns,
    service_by_role,
    spec_entry,
)
from sealgate.checks.described import alertmanager_config as _alertmanager_config
from sealgate.errors import InputError
from sealgate.sprint.context import Context, RunningCommand
from sealgate.sprint.model import Severity
from sealgate.sprint.registry import check
from sealgate.sprint.yamlsource import Located, json_path, load_yaml, parse_yaml

STRING_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}


# --- reading rule files -------------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_s(text: str | int | float | None) -> float:
    """A Prometheus duration (`1m`, `1h30m`, `30s`, and `0` as Prometheus accepts it) in seconds; 0 for none."""
    if text in (None, "", 0):
        return 0.0
    if isinstance(text, (int, float)):
        return float(text)
    if str(text).strip() == "0":
        return 0.0
    parts = _DURATION.findall(str(text).strip())
    if not parts or "".join(n + u for n, u in parts) != str(text).strip():
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(float(n) * _UNIT[u] for n, u in parts)


@dataclass
class Rule:
    group: str
    name: str  # alert name, or the recorded series for a recording rule
    kind: str  # "alert" | "record"
    expr: str
    for_s: float
    labels: dict[str, str]
    annotations: dict[str, str]
    file: str  # repository-relative
    line: int  # of the rule's `- alert:` item
    expr_line: int
    lines: list[str] = field(repr=False, default_factory=list)  # the file's text, for locating metric names

    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def metric_line(self, metric: str) -> int:
        return promql.locate(self.lines, self.expr_line, metric)


@dataclass
class RuleFile:
    path: str
    located: Located | None
    groups: list[tuple[str, int]]  # (name, line)
    rules: list[Rule]


def match_files(root: Path, pattern: str) -> list[Path]:
    """Files matching a glob relative to `root` (or absolute), `**` crossing directories as in `rules/**/*.yml`
    (EIXO 2 and `sealgate lint` read the same files for the same glob)."""
    base = pattern if Path(pattern).is_absolute() else str(root / pattern)
    return sorted(Path(m) for m in glob.glob(base, recursive=True) if Path(m).is_file())


def expand(ctx: Context, patterns: list[str]) -> list[str]:
    """Repository-relative files matching the globs (`**` crosses directories), sorted; refuses globs that leave
    the repository."""
    found: set[str] = set()
    for pattern in patterns:
        ctx.path(pattern.split("*", 1)[0] or ".")  # errors if the glob's fixed part escapes the repository
        for match in match_files(ctx.root, pattern):
            found.add(match.resolve().relative_to(ctx.root.resolve()).as_posix())
    return sorted(found)


# Parsed rule files by (path, content digest): every check of EIXO 2 reads the same files, and parsing ten thousand
# rules with line numbers costs more than promtool's own check. With the findings the parse produced, replayed.
_PARSED: dict[tuple[str, str], tuple[RuleFile, list[tuple[str, str, int | None]]]] = {}


def read_rule_file(ctx: Context, relative: str) -> RuleFile:
    """Parse a rule file with line numbers; problems become findings (a broken file yields no rules)."""
    parsed, problems = parsed_rule_file(ctx, relative)
    for what, file, line in problems:
        ctx.finding(what, file=file, line=line)
    return parsed


def parsed_rule_file(ctx: Context, relative: str) -> tuple[RuleFile, list[tuple[str, str, int | None]]]:
    """A judged rule file's parse and the problems it found (once per content), for a check that only reads the
    rules and leaves the file's problems to the checks that judge it."""
    path = ctx.judge(relative)
    data = path.read_bytes()
    key = (str(path), hashlib.sha256(data).hexdigest())
    if key not in _PARSED:
        if len(_PARSED) > 20_000:  # a bound for long-lived processes; a stage's files all stay
            _PARSED.clear()
        problems: list[tuple[str, str, int | None]] = []
        _PARSED[key] = (parse_rule_file(data, relative, problems), problems)
    return _PARSED[key]


def parse_rule_file(data: bytes, relative: str, problems: list[tuple[str, str, int | None]]) -> RuleFile:
    """A rule file's groups and rules with their lines; each problem is appended as (what, file, line).

    No size limit (a real mixin's file holds thousands of rules, as promtool reads them): parse_yaml's node budget,
    which grows with the text, is what stops an alias bomb."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append((f"not UTF-8 text ({exc.reason} at byte {exc.start})", relative, None))
        return RuleFile(relative, None, [], [])
    try:
        located = parse_yaml(text, relative)
    except InputError as exc:
        for problem in exc.problems:
            file, _, line = problem.where.partition(":")
            problems.append((problem.what, file or relative, int(line) if line.isdigit() else None))
        return RuleFile(relative, None, [], [])
    lines = text.splitlines()
    doc = located.value if isinstance(located.value, dict) else {}
    result = RuleFile(relative, located, [], [])
    base: tuple[Any, ...] = ()
    if is_operator_rule(doc):
        doc, base = doc["spec"], ("spec",)

    def line_of(path: tuple[Any, ...]) -> int | None:
        return located.line_of((*base, *path))

    def typed(value: Any, kind: type, path: tuple[Any, ...]) -> Any:
        """`value` when it is a `kind` (empty when absent); otherwise a finding at its line, and empty."""
        if value is None or isinstance(value, kind):
            return value or kind()
        wanted = "a list" if kind is list else "a mapping"
        what = f"{json_path((*base, *path))} must be {wanted}, not {type(value).__name__} {value!r}"[:300]
        problems.append((what, relative, line_of(path)))
        return kind()

    for gi, group in enumerate(typed(doc.get("groups"), list, ("groups",))):
        if not isinstance(group, dict):
            continue
        gname = str(group.get("name", f"#{gi}"))
        result.groups.append((gname, line_of(("groups", gi, "name")) or 1))
        for ri, rule in enumerate(typed(group.get("rules"), list, ("groups", gi, "rules"))):
            if not isinstance(rule, dict):
                continue
            at = ("groups", gi, "rules", ri)
            kind = "alert" if "alert" in rule else "record"
            try:
                for_s = duration_s(rule.get("for"))
            except ValueError as exc:
                problems.append((str(exc), relative, line_of((*at, "for"))))
                for_s = -1.0
            result.rules.append(
                Rule(
                    group=gname,
                    name=str(rule.get(kind, "?")),
                    kind=kind,
                    expr=str(rule.get("expr", "")),
                    for_s=for_s,
                    labels={str(k): str(v) for k, v in typed(rule.get("labels"), dict, (*at, "labels")).items()},
                    annotations={
                        str(k): str(v) for k, v in typed(rule.get("annotations"), dict, (*at, "annotations")).items()
                    },
                    file=relative,
                    line=line_of(at) or 1,
                    expr_line=line_of((*at, "expr")) or 1,
                    lines=lines,
                )
            )
    return result


def is_operator_rule(doc: Any) -> bool:
    """A Prometheus Operator PrometheusRule (as kube-prometheus ships its rules): its `spec` is a rule file."""
    return isinstance(doc, dict) and doc.get("kind") == "PrometheusRule" and isinstance(doc.get("spec"), dict)


_TOP_LEVEL_KEY = re.compile(r"[^\s#]")
_OPERATOR_KIND = re.compile(r"^kind:\s*['\"]?PrometheusRule['\"]?\s*(#.*)?$", re.MULTILINE)


def is_operator_kind(text: str) -> bool:
    """Whether a file's text declares a top-level `kind: PrometheusRule` (without parsing it)."""
    return bool(_OPERATOR_KIND.search(text))


def operator_rule_text(text: str) -> str | None:
    """A PrometheusRule manifest's `spec:` block as a plain rule file, line for line — every other line blank, the
    block de-indented — so that what promtool says of it points at the manifest's own lines. None when the text is
    not such a manifest, or its spec is not a block under a top-level `spec:` line."""
    if not is_operator_kind(text):
        return None
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"spec:\s*(#.*)?", line)), None)
    if start is None:
        return None
    out = [""] * len(lines)
    indent: int | None = None
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if _TOP_LEVEL_KEY.match(line):  # the next top-level key (or `---`): the block has ended
            break
        if not line.strip():
            continue
        if indent is None and not line.lstrip().startswith("#"):
            indent = len(line) - len(line.lstrip(" "))
        if indent is None or line[:indent].strip():
            if not line.lstrip().startswith("#"):
                return None  # less indented than the block's first line: not a plain block
            out[index] = line.lstrip()  # a comment where the block's indentation is not known yet, or less
            continue
        out[index] = line[indent:]  # a comment inside a block scalar stays: it may set the scalar's indentation
    return "\n".join(out) if indent else None


def load_rules(ctx: Context, patterns: list[str]) -> list[RuleFile]:
    files = expand(ctx, patterns)
    if not files:
        ctx.fail(f"no rule file matches {', '.join(patterns)}")
    return [read_rule_file(ctx, f) for f in files]


def all_rules(files: list[RuleFile]) -> list[Rule]:
    return [rule for f in files for rule in f.rules]


def _patterns(ctx: Context) -> list[str]:
    """The rule files (globs): `with.rules`, else those the described Prometheus service loads."""
    return rule_file_patterns(ctx)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


# --- rules/promtool-check -----------------------------------------------------------------------------------------

_PROMTOOL_LOCATED = re.compile(r"^(?P<file>[^\s:][^:]*): (?P<line>\d+):(?P<col>\d+): (?P<what>.+)$")
_PROMTOOL_YAML = re.compile(r"^(?P<file>[^\s:][^:]*): yaml: line (?P<line>\d+): (?P<what>.+)$")
_PROMTOOL_YAML_LINE = re.compile(r"^line (?P<line>\d+): (?P<what>.+)$")


@dataclass(frozen=True)
class ToolProblem:
    file: str
    line: int | None
    what: str


def promtool_problems(output: str, rules: list[Rule]) -> list[ToolProblem]:
    """Problems from `promtool check rules` output (stdout and stderr interleaved, as promtool wrote them), each at
    the file promtool names: located errors carry their own file and line; the rest — `lint error` blocks (a
    duplicated rule, pointed at its second definition), `yaml: unmarshal errors:` lists — belong to the file of the
    last `Checking FILE` header."""
    problems: list[ToolProblem] = []
    current = ""
    lines = output.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        index += 1
        if line.startswith("Checking "):
            current = line[len("Checking ") :].strip()
            continue
        if not line or line == "FAILED:" or line.startswith("SUCCESS:"):
            continue
        match = _PROMTOOL_LOCATED.match(line) or _PROMTOOL_YAML.match(line)
        if match:
            # promtool prints `0:0:` when it has no position (e.g. a rule with neither alert nor record).
            problems.append(ToolProblem(match["file"], int(match["line"]) or None, match["what"]))
            continue
        if line.startswith("lint error"):
            index = _duplicates(lines, index, line, current, rules, problems)
            continue
        file, _, what = line.partition(": ")
        if what and file == current:  # `f.yml: yaml: unmarshal errors:` then `  line 1: ...` lines
            while index < len(lines) and _PROMTOOL_YAML_LINE.match(lines[index].strip()):
                item = _PROMTOOL_YAML_LINE.match(lines[index].strip())
                assert item is not None
                problems.append(ToolProblem(file, int(item["line"]) or None, f"{what} {item['what']}"))
                index += 1
            if not problems or problems[-1].file != file or not what.endswith(":"):
                problems.append(ToolProblem(file, None, what))
            continue
        problems.append(ToolProblem(current, None, line))
    unique: dict[ToolProblem, None] = dict.fromkeys(problems)  # promtool repeats unmarshal errors
    return list(unique)


def _duplicates(
    lines: list[str], index: int, header: str, file: str, rules: list[Rule], problems: list[ToolProblem]
) -> int:
    """A `lint error N duplicate rule(s) found.` block: `Metric: NAME`, `Label(s):`, tab-indented `k: v` lines per
    duplicate. Each becomes a problem at the duplicate's second definition in `file`; returns the next line."""
    while index < len(lines) and lines[index].startswith("Metric: "):
        name = lines[index][len("Metric: ") :].strip()
        index += 1
        labels: dict[str, str] = {}
        if index < len(lines) and lines[index].strip() == "Label(s):":
            index += 1
            while index < len(lines) and lines[index].startswith("\t"):
                key, _, value = lines[index].strip().partition(": ")
                labels[key] = value
                index += 1
        same = [r for r in rules if r.file == file and r.name == name and r.labels == labels]
        shown = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        what = f"lint error: duplicate rule {name}{{{shown}}} ({header.removeprefix('lint error ')})"
        problems.append(ToolProblem(file, same[1].line if len(same) > 1 else None, what))
    if index < len(lines) and lines[index].startswith("Might cause"):
        index += 1
    return index


def promtool_findings(ctx: Context, output: str, rules: list[Rule]) -> int:
    """Findings from promtool's output at the file:line it names (see promtool_problems); how many it made."""
    problems = promtool_problems(output, rules)
    for problem in problems:
        ctx.finding(f"promtool: {problem.what}", file=problem.file or None, line=problem.line)
    return len(problems)


def container_to_host(
    pattern: str, mounts: list[dict[str, Any]], root: Path, config_dir: str
) -> tuple[str | None, str | None]:
    """Map a path as the Prometheus container sees it to the repository file(s) behind its bind mount.

    Returns (host pattern, mount target) or (None, None) when no bind mount of the service covers it.
    """
    absolute = pattern if pattern.startswith("/") else f"{config_dir.rstrip('/')}/{pattern}"
    best: dict[str, Any] | None = None
    for mount in mounts:
        target = str(mount.get("target", "")).rstrip("/")
        if mount.get("type") != "bind" or not target:
            continue
        if (absolute == target or absolute.startswith(target + "/")) and (
            best is None or len(target) > len(str(best["target"]))
        ):
            best = mount
    if best is None:
        return None, None
    rest = absolute[len(str(best["target"]).rstrip("/")) :]
    return str(Path(str(best["source"])).resolve()) + rest, str(best["target"])


@check(
    "rules/promtool-check",
    title="promtool check rules and check config pass (PromQL syntax, YAML, duplicates)",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {"rules": STRING_LIST, "config": {"type": "string"}, "service": {"type": "string"}},
    },
)
def promtool_check(ctx: Context) -> None:
    patterns = _patterns(ctx)
    paths = expand(ctx, patterns)
    if not paths:
        ctx.fail(f"no rule file matches {', '.join(patterns)}")
    # promtool reads the files while this check parses them (each file once, shared with the stage's other checks).
    version = ctx.start(["promtool", "--version"], timeout=30)
    checking = ctx.start(["promtool", "check", "rules", "--lint=all", "--lint-fatal", *paths], timeout=120)
    started = [version, checking]
    # Compose's view of the mounts (`docker compose config`, for the config check) is resolved meanwhile too.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    compose = pool.submit(load_compose, ctx)
    try:
        files = [read_rule_file(ctx, path) for path in paths]
        rules = all_rules(files)
        rejected: list[tuple[Rule, str]] = []
        for rule in rules:
            try:
                promql.analyse(rule.expr)  # cached: rules/metrics-exist reads the same analysis
            except promql.PromQLError as exc:
                rejected.append((rule, str(exc)))
        config_check = _start_config_check(ctx, paths, compose.result())
        started.append(config_check[0])
        ctx.tool_version("promtool", _first_line(version.wait().output).replace("promtool, version ", ""))
        result = checking.wait()
        ctx.record("rules_checked", paths)
        if not result.ok and not promtool_findings(ctx, result.output, rules):
            ctx.finding(
                f"promtool check rules exited {result.exit_code}: {result.output.strip()[-500:]}", file=paths[0]
            )
        for rule, problem in rejected:
            # promtool is the authority on syntax; a disagreement of the two parsers is worth a look, not a failure.
            reported = any(f.location.file == rule.file and f.severity is Severity.ERROR for f in ctx.findings)
            if not reported:
                ctx.finding(
                    f"rule {rule.name}: promql-parser rejects the expression promtool accepts: {problem}",
                    file=rule.file,
                    line=rule.expr_line,
                    severity=Severity.WARNING,
                )
        ctx.record("rules", len(rules))
        _finish_config_check(ctx, *config_check)
    finally:
        pool.shutdown(wait=True)
        for command in started:
            command.discard()  # a check that stopped early leaves no promtool running


def _start_config_check(ctx: Context, rule_paths: list[str], compose: ComposeFile) -> tuple[RunningCommand, str]:
    """Start promtool check config on a copy of prometheus.yml whose rule_files point where the container's bind
    mounts really take them from (promtool on the host cannot see container paths)."""
    config_rel = prometheus_config(ctx)
    service = service_by_role(ctx, "prometheus", "service")
    config_path = ctx.judge(config_rel)
    try:
        located = load_yaml(config_path, config_rel)
    except InputError as exc:
        ctx.fail(str(exc))
    config = dict(located.value or {})
    declared = compose.services.get(service)
    mounts = [
        {"type": m.type, "source": m.source, "target": m.target}
        for m in (declared.mounts(compose.base) if declared else [])
    ]
    config_target = next(
        (str(m["target"]) for m in mounts if m.get("type") == "bind" and Path(str(m.get("source"))) == config_path),
        None,
    )
    if config_target is None:
        ctx.finding(
            f"{config_rel} is not bind-mounted into service {service} ({ctx.description.compose_file})",
            file=ctx.description.compose_file,
            line=compose.line("services", service, "volumes"),
        )
        config_target = DEFAULT_CONFIG["prometheus"]
    mapped: list[str] = []
    loaded: set[str] = set()
    for index, pattern in enumerate(config.get("rule_files") or []):
        line = located.line_of(("rule_files", index))
        host, _target = container_to_host(str(pattern), mounts, ctx.root, str(Path(config_target).parent))
        if host is None:
            ctx.finding(
                f"rule_files entry {pattern!r} is under no bind mount of service {service}: the container "
                "loads no rules from it",
                file=config_rel,
                line=line,
            )
            continue
        matches = sorted(glob.glob(host))
        if not matches:
            ctx.finding(
                f"rule_files entry {pattern!r} matches no file in the repository (it maps to {_display(ctx, host)})",
                file=config_rel,
                line=line,
            )
        loaded.update(_display(ctx, m) for m in matches)
        mapped.append(host)
    for path in rule_paths:
        if path not in loaded:
            ctx.finding(
                f"{path} is not loaded by {config_rel} (rule_files) as the container sees it",
                file=config_rel,
                line=located.line_of(("rule_files",)),
            )
    ctx.record("rule_files_loaded", sorted(loaded))
    copy = dict(config, rule_files=mapped)
    temp = ctx.run_dir / "prometheus.check.yml"
    temp.write_text(yaml.safe_dump(copy, sort_keys=False))
    # --syntax-only: the rule files it loads are exactly `rule_paths` (asserted above), which `promtool check rules`
    # already checked; reading every rule a second time doubled the stage's time on large rule sets.
    return ctx.start(["promtool", "check", "config", "--syntax-only", str(temp)], timeout=120), config_rel


def _finish_config_check(ctx: Context, running: RunningCommand, config_rel: str) -> None:
    result = running.wait()
    if not result.ok:
        ctx.finding(
            f"promtool check config (rule_files mapped to the repository) exited {result.exit_code}: "
            f"{result.output.strip()[-500:]}",
            file=config_rel,
        )


def _display(ctx: Context, path: str) -> str:
    try:
        return Path(path).resolve().relative_to(ctx.root.resolve()).as_posix()
    except ValueError:
        return path


# --- rules/promtool-test ------------------------------------------------------------------------------------------


def junit_from_promtool(suites: list[tuple[str, list[tuple[str, str | None]], str]]) -> str:
    """JUnit XML from promtool's text output: suites of (file, [(test name, failure text or None)], error)."""
    root = ET.Element("testsuites", name="promtool test rules")
    for file, cases, error in suites:
        failures = sum(1 for _name, failure in cases if failure is not None)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(max(len(cases), 1)),
            failures=str(failures),
            errors="1" if error else "0",
        )
        if error:
            case = ET.SubElement(suite, "testcase", classname=file, name=f"{file} (load)")
            ET.SubElement(case, "error", message=_first_line(error)[:200]).text = error
        for name, failure in cases:
            case = ET.SubElement(suite, "testcase", classname=file, name=name)
            if failure is not None:
                ET.SubElement(case, "failure", message=_first_line(failure)[:200]).text = failure
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def failed_tests(stderr: str, names: list[str]) -> dict[str, str]:
    """Test name -> its failure text, from promtool 2.x's `FAILED:` blocks (each starts `    name: <test>,`)."""
    failures: dict[str, str] = {}
    current: str | None = None
    for line in stderr.splitlines():
        stripped = line.strip()
        if stripped.startswith("name: "):
            candidate = stripped[len("name: ") :].rstrip(",")
            current = candidate if candidate in names else None
            if current is not None:
                failures.setdefault(current, "")
            continue
        if current is not None:
            failures[current] += line + "\n"
    return failures


def _supports_junit(ctx: Context) -> bool:
    help_text = ctx.run(["promtool", "test", "rules", "--help"], timeout=30)
    return "--junit" in help_text.output


@check(
    "rules/promtool-test",
    title="promtool test rules: every unit test of the rules passes (JUnit attached)",
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["tests"],
        "properties": {"tests": STRING_LIST, "rules": STRING_LIST},
    },
)
def promtool_test(ctx: Context) -> None:
    test_files = expand(ctx, [str(p) for p in ctx.params["tests"]])
    if not test_files:
        ctx.fail(f"no promtool test file matches {', '.join(ctx.params['tests'])}")
    native_junit = _supports_junit(ctx)
    suites = []
    alerts_tested: set[str] = set()
    totals = {"tests": 0, "failed": 0}
    for relative in test_files:
        path = ctx.judge(relative)
        try:
            located = load_yaml(path, relative)
        except InputError as exc:
            ctx.fail(str(exc))
        doc = located.value if isinstance(located.value, dict) else {}
        for pattern in doc.get("rule_files") or []:
            for match in glob.glob(str(path.parent / str(pattern))):
                ctx.judge(_display(ctx, match))
        tests = [t for t in doc.get("tests") or [] if isinstance(t, dict)]
        names = [str(t.get("name") or f"test #{i}") for i, t in enumerate(tests)]
        for test in tests:
            alerts_tested.update(str(a.get("alertname")) for a in test.get("alert_rule_test") or [])
        argv = ["promtool", "test", "rules", relative]
        junit_path = ctx.run_dir / f"{Path(relative).stem}.junit.xml"
        if native_junit:
            argv.insert(3, f"--junit={junit_path}")
        result = ctx.run(argv, timeout=300)
        failures = failed_tests(result.stderr, names)
        error = "" if result.ok or failures else result.output.strip()
        suites.append((relative, [(n, failures.get(n)) for n in names], error))
        totals["tests"] += len(names)
        totals["failed"] += len(failures) + (len(names) if error else 0)
        for name, text in failures.items():
            index = names.index(name)
            ctx.finding(
                f"promtool test {name!r} failed: {_first_line(text)}",
                file=relative,
                line=located.line_of(("tests", index, "name")) or located.line_of(("tests", index)),
            )
        if error:
            ctx.finding(f"promtool test rules exited {result.exit_code}: {error[-500:]}", file=relative)
        if not result.ok and not failures and not error:
            ctx.finding(f"promtool test rules exited {result.exit_code}", file=relative)
        if native_junit and junit_path.is_file():
            ctx.attach(f"promtool-junit-{Path(relative).stem}.xml", junit_path.read_text())
    if not native_junit:
        ctx.attach("promtool-junit.xml", junit_from_promtool(suites))
    ctx.record(
        "junit",
        "promtool --junit" if native_junit else "built from promtool's text output (this promtool has no --junit)",
    )
    ctx.record("tests", totals["tests"])
    ctx.record("failed", totals["failed"])
    ctx.record("files", test_files)
    # Every alert rule should have a unit test; a rule nobody tested is reported, not failed.
    for rule in all_rules([read_rule_file(ctx, f) for f in expand(ctx, _patterns(ctx))]):
        if rule.kind == "alert" and rule.name not in alerts_tested:
            ctx.finding(
                f"alert {rule.name} has no promtool unit test",
                file=rule.file,
                line=rule.line,
                severity=Severity.WARNING,
            )


# --- rules/inventory ----------------------------------------------------------------------------------------------

EXPECTED_RULE = {
    "type": "object",
    "additionalProperties": False,
    "description": "an alert (alert, severity, for) or a recording rule (record); `labels` a rule must carry tell "
    "apart rules of one name (a warning/critical pair tells itself apart by severity)",
    "properties": {
        "alert": {"type": "string"},
        "record": {"type": "string"},
        "severity": {"type": "string"},
        "for": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    # if/then/else rather than oneOf: a spec copied from a mixin holds thousands of entries, validated at each load.
    "if": {"required": ["record"]},
    "then": {"properties": {"alert": False, "for": False}},
    "else": {"required": ["alert", "severity", "for"]},
}


@dataclass
class _Expected:
    group: str
    index: int
    entry: dict[str, Any]

    @property
    def kind(self) -> str:
        return "alert" if "alert" in self.entry else "record"

    @property
    def name(self) -> str:
        return str(self.entry[self.kind])

    def wanted_labels(self) -> dict[str, str]:
        labels = dict(self.entry.get("labels") or {})
        if "severity" in self.entry:
            labels["severity"] = self.entry["severity"]
        return labels

    def matches(self, rule: Rule) -> bool:
        """The rule is this entry exactly: same group, its labels (severity included), its `for`."""
        return (
            rule.group == self.group
            and all(rule.labels.get(k) == v for k, v in self.wanted_labels().items())
            and (self.kind != "alert" or abs(rule.for_s - duration_s(self.entry["for"])) < 1e-6)
        )


def _pair(
    rules: list[Rule], expected: list[_Expected]
) -> tuple[list[tuple[Rule, _Expected]], list[Rule], list[_Expected]]:
    """Rules and entries of one (kind, name): exact matches first — a warning/critical pair finds its two entries
    whatever their order — then the rest in order, so their differences can be named; and what is left over."""
    rules, expected = list(rules), list(expected)
    pairs = []
    for entry in list(expected):
        rule = next((r for r in rules if entry.matches(r)), None)
        if rule is not None:
            pairs.append((rule, entry))
            rules.remove(rule)
            expected.remove(entry)
    count = min(len(rules), len(expected))
    pairs += list(zip(rules[:count], expected[:count], strict=True))
    return pairs, rules[count:], expected[count:]


@check(
    "rules/inventory",
    title="Exactly the spec's rules and groups (names, severities, for, annotations)",
    requires=("rules/promtool-check",),
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["groups"],
        "properties": {
            "rules": STRING_LIST,
            "groups": {"type": "object", "additionalProperties": {"type": "array", "items": EXPECTED_RULE}},
            "annotations": STRING_LIST,
            "removed": {"type": "array", "items": {"type": "string"}},
        },
    },
)
def inventory(ctx: Context) -> None:
    """Rules are keyed by kind, name and labels, not by name alone: a mixin defines one alert twice (warning and
    critical, with their own `for`) and recording rules next to alerts; an inventory copied from it must pass."""
    files = load_rules(ctx, _patterns(ctx))
    rules = all_rules(files)
    expected_groups: dict[str, list[dict[str, Any]]] = ctx.params["groups"]
    required = [str(a) for a in ctx.params.get("annotations", ["summary", "description"])]
    spec: list[tuple[Located | None, tuple[Any, ...]]] = []

    def spec_line(*path: Any) -> int | None:
        if not spec:  # read only when a finding points into the spec: a 10,000-entry spec is not parsed twice
            spec.append(spec_entry(ctx))
        located, base = spec[0]
        return located.line_of((*base, *path)) if located else None

    groups = {name: (f.path, line) for f in files for name, line in f.groups}
    for group, (file, line) in groups.items():
        if group not in expected_groups:
            ctx.finding(
                f"group {group!r} is not in the spec (expected groups: {', '.join(expected_groups)})",
                file=file,
                line=line,
            )
    for group in expected_groups:
        if group not in groups:
            ctx.finding(
                f"group {group!r} named by the spec is missing from the rule files",
                file=ctx.spec.relpath,
                line=spec_line("groups", group),
            )
    seen: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    by_key: dict[tuple[str, str], list[Rule]] = {}
    for rule in rules:
        identity = (rule.kind, rule.name, tuple(sorted(rule.labels.items())))
        if identity in seen:
            ctx.finding(f"rule {rule.name} is defined more than once", file=rule.file, line=rule.line)
        seen.add(identity)
        by_key.setdefault((rule.kind, rule.name), []).append(rule)
    wanted: dict[tuple[str, str], list[_Expected]] = {}
    for group, entries in expected_groups.items():
        for index, entry in enumerate(entries):
            item = _Expected(group, index, entry)
            wanted.setdefault((item.kind, item.name), []).append(item)
    leftover_rules: list[Rule] = []
    leftover_entries: list[_Expected] = []
    for key in {**by_key, **wanted}:
        pairs, extra, missing = _pair(by_key.get(key, []), wanted.get(key, []))
        leftover_rules += extra
        leftover_entries += missing
        for rule, entry in pairs:
            _compare(ctx, rule, entry, len(wanted[key]) > 1, required)
    other_kind = {(e.name, e.kind) for e in leftover_entries}
    for rule in leftover_rules:
        if (rule.name, "record" if rule.kind == "alert" else "alert") in other_kind:
            expects = "an alert" if rule.kind == "record" else "a recording rule"
            ctx.finding(
                f"{rule.name} is a {rule.kind} rule; the spec expects {expects}", file=rule.file, line=rule.line
            )
            continue
        ctx.finding(
            f"{rule.kind} rule {rule.name} (group {rule.group}) is not in the spec's inventory",
            file=rule.file,
            line=rule.line,
        )
    for entry in leftover_entries:
        ctx.finding(
            f"{entry.kind} {entry.name} (group {entry.group}) named by the spec is missing from the rule files",
            file=ctx.spec.relpath,
            line=spec_line("groups", entry.group, entry.index),
        )
    names = {rule.name: rule for rule in rules}
    for name in ctx.params.get("removed", []):
        if name in names:
            rule = names[name]
            ctx.finding(
                f"alert {name} must stay removed (the spec's technical decisions), but it is defined",
                file=rule.file,
                line=rule.line,
            )
    names_by_group: dict[str, list[str]] = {group: [] for group in groups}
    for rule in rules:
        names_by_group.setdefault(rule.group, []).append(rule.name)
    ctx.record("groups", {group: sorted(found) for group, found in names_by_group.items()})
    ctx.record("rule_count", len(rules))
    ctx.record("group_count", len(groups))


def _compare(ctx: Context, rule: Rule, entry: _Expected, paired: bool, required: list[str]) -> None:
    """Findings for every way `rule` differs from the spec's `entry` (they share kind and name)."""
    # One of several rules of a name (warning/critical) says which: "alert X (severity critical)".
    name = f"{rule.kind} {rule.name}" + (f" (severity {entry.entry.get('severity')})" if paired else "")
    where = {"file": rule.file, "line": rule.line}
    if rule.group != entry.group:
        ctx.finding(f"{name} is in group {rule.group!r}, the spec puts it in {entry.group!r}", **where)
    if "severity" in entry.entry and rule.labels.get("severity") != entry.entry["severity"]:
        ctx.finding(
            f"{name} has severity {rule.labels.get('severity')!r}, the spec says {entry.entry['severity']!r}", **where
        )
    for key, value in (entry.entry.get("labels") or {}).items():
        if rule.labels.get(key) != value:
            ctx.finding(f"{name} has label {key}={rule.labels.get(key)!r}, the spec says {value!r}", **where)
    if rule.kind == "alert":
        if abs(rule.for_s - duration_s(entry.entry["for"])) > 1e-6:
            ctx.finding(f"{name} has `for` {rule.for_s:g}s, the spec says {entry.entry['for']}", **where)
        for annotation in required:
            if not rule.annotations.get(annotation, "").strip():
                ctx.finding(f"{name} has no {annotation!r} annotation", **where)


# --- rules/metrics-exist ------------------------------------------------------------------------------------------


DURATION = {"type": "string", "pattern": "^([0-9]+(ms|[smhdwy]))+$"}


def recordings(rules: list[Rule]) -> list[parecer.Recording]:
    """The recording rules of a rule set, for the parecer (a recorded series exists through its rule's inputs)."""
    return [parecer.Recording(r.name, r.expr, r.labels, r.where()) for r in rules if r.kind == "record"]


def judge_rules(judge: parecer.Parecer, rules: list[Rule]) -> list[tuple[Rule, parecer.Judged]]:
    """Every rule's expression judged by the parecer (the one judgement `rules/metrics-exist` and `sealgate lint`
    share)."""
    return list(zip(rules, parecer.judge_all(judge, [rule.expr for rule in rules]), strict=True))


def verdict_line(rule: Rule, verdict: parecer.Verdict) -> int:
    return rule.metric_line(verdict.metric) if verdict.metric else rule.expr_line


@check(
    "rules/metrics-exist",
    title="Every metric and label every rule reads exists in the scraped target's metrics and in Prometheus",
    needs_stack=True,
    requires=("rules/promtool-check",),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rules": STRING_LIST,
            "target": {
                "type": "string",
                "description": "stack service whose metrics the rules are about (default: the described main target)",
            },
            "metrics_path": {"type": "string", "description": "default: the target's described metrics_path"},
            "min_age": {**DURATION, "description": "a metric gone from Prometheus for less is a warning (default 1h)"},
            "lookback": {**DURATION, "description": "how far back Prometheus' history is read (default 7d)"},
        },
    },
)
def metrics_exist(ctx: Context) -> None:
    """The parecer (checks/parecer.py) on every rule: metrics and labels against the target's /metrics and the
    running Prometheus, recorded series through their rules' inputs, absent()/`or vector()`/`unless` by meaning."""
    rules = all_rules(load_rules(ctx, _patterns(ctx)))
    decl = (
        described_service(ctx, str(ctx.params["target"]), ("target",))
        if ctx.params.get("target")
        else ctx.description.main_target()
    )
    target = decl.name
    metrics_url = ctx.stack.url(target) + str(ctx.params.get("metrics_path") or decl.metrics_path)
    prom = prometheus(ctx)
    answer = request("GET", metrics_url)
    if not answer.ok or not isinstance(answer.body, str):
        ctx.error(f"GET {metrics_url}: HTTP {answer.status}, not a text exposition")
    exposition = answer.body
    ctx.attach(f"{target}-metrics.txt", exposition)
    source = parecer.Prometheus(
        prom.base,
        scope="since the stack started",
        min_age_s=duration_s(ctx.params.get("min_age", "1h")),
        lookback_s=duration_s(ctx.params.get("lookback", "7d")),
    )
    try:
        exported = parecer.Exposition.parse(exposition, f"{target} (GET {metrics_url})")
        judge = parecer.Parecer([exported], source, recordings(rules))
        judged = judge_rules(judge, rules)
    except parecer.SourceError as exc:
        ctx.error(str(exc))
    per_rule: dict[str, list[str]] = {}
    for rule, result in judged:
        if result.syntax_error is not None:
            ctx.finding(
                f"rule {rule.name}: PromQL syntax error: {result.syntax_error}", file=rule.file, line=rule.expr_line
            )
            continue
        assert result.analysis is not None
        per_rule[rule.name] = list(dict.fromkeys(str(use.ref) for use in result.analysis.uses))
        for verdict in result.verdicts:
            ctx.finding(
                f"rule {rule.name}: {verdict.message}",
                file=rule.file,
                line=verdict_line(rule, verdict),
                severity=Severity(verdict.severity),
            )
    ctx.record("metrics_url", metrics_url)
    ctx.record("metrics_by_rule", per_rule)
    ctx.record("exported_count", len(exported.names))
    ctx.record("min_age_s", source.min_age_s)


# --- rules/loaded-live --------------------------------------------------------------------------------------------


def _normalise(expr: str) -> str:
    try:
        return str(promql.parse(expr))
    except promql.PromQLError:
        return " ".join(expr.split())


def iso_to_epoch(text: str) -> float:
    """RFC 3339 (Prometheus/Alertmanager timestamps, nanoseconds allowed) to unix seconds; 0 when unset."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text.strip())
    if not match:
        return 0.0
    base = datetime.datetime.fromisoformat(match[1] + ("+00:00" if match[3] == "Z" else match[3]))
    return base.timestamp() + float(match[2] or 0)


@check(
    "rules/loaded-live",
    title="The running Prometheus loaded exactly the repository's rules, all healthy",
    needs_stack=True,
    requires=("rules/promtool-check",),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rules": STRING_LIST,
            "groups": {"type": "integer", "minimum": 1},
            "rule_count": {"type": "integer", "minimum": 1},
        },
    },
)
def loaded_live(ctx: Context) -> None:
    rules = all_rules(load_rules(ctx, _patterns(ctx)))
    prom = prometheus(ctx)
    where = f"{prom.base}/api/v1/rules"
    started = ctx.stack.started_at or 0.0
    deadline = time.monotonic() + 60
    wait_start = time.monotonic()
    while True:  # every rule evaluated at least once by this Prometheus, so `health` means something
        try:
            groups = list((prom.api("rules") or {}).get("groups") or [])
        except HttpAnswerError as exc:
            ctx.error(f"GET {where}: {exc}")
        live = [(g, r) for g in groups for r in g.get("rules", [])]
        if live and all(iso_to_epoch(r.get("lastEvaluation", "")) >= started for _g, r in live):
            break
        if time.monotonic() > deadline:
            ctx.finding("not every rule was evaluated within 60 s of asking", json_path=f"{where} $.data.groups")
            break
        time.sleep(1)
    ctx.note_wait("every rule evaluated since the stack started", time.monotonic() - wait_start)
    by_name = {r.get("name"): (g, r) for g, r in live}
    expected_groups = int(ctx.params.get("groups", len({r.group for r in rules})))
    expected_count = int(ctx.params.get("rule_count", len(rules)))
    if len(groups) != expected_groups or len(live) != expected_count:
        ctx.finding(
            f"Prometheus loaded {len(live)} rules in {len(groups)} groups; expected {expected_count} in "
            f"{expected_groups}",
            json_path=f"{where} $.data.groups",
        )
    for group, rule in live:
        path = f"{where} $.data.groups[?name=={group.get('name')}].rules[?name=={rule.get('name')}]"
        if rule.get("health") != "ok" or rule.get("lastError"):
            ctx.finding(
                f"rule {rule.get('name')} health {rule.get('health')!r}: {rule.get('lastError', '')}", json_path=path
            )
        if rule.get("name") not in {r.name for r in rules}:
            ctx.finding(
                f"Prometheus runs rule {rule.get('name')} that no repository rule file defines (stale config?)",
                json_path=path,
            )
    for rule in rules:
        if rule.name not in by_name:
            ctx.finding(f"rule {rule.name} is not loaded by the running Prometheus", file=rule.file, line=rule.line)
            continue
        group, live_rule = by_name[rule.name]
        if _normalise(str(live_rule.get("query", ""))) != _normalise(rule.expr):
            ctx.finding(
                f"rule {rule.name}: the running expression differs from the file's: {live_rule.get('query')!r}",
                file=rule.file,
                line=rule.expr_line,
            )
        if abs(float(live_rule.get("duration", 0)) - rule.for_s) > 1e-6 and rule.kind == "alert":
            ctx.finding(
                f"rule {rule.name}: running `for` is {live_rule.get('duration')}s, the file says {rule.for_s:g}s",
                file=rule.file,
                line=rule.line,
            )
        if group.get("name") != rule.group:
            ctx.finding(
                f"rule {rule.name} runs in group {group.get('name')!r}, the file puts it in {rule.group!r}",
                file=rule.file,
                line=rule.line,
            )
    ctx.record("groups", {g.get("name"): [r.get("name") for r in g.get("rules", [])] for g in groups})
    ctx.record("health", {r.get("name"): r.get("health") for _g, r in live})
    ctx.record("evaluation_interval_s", sorted({g.get("interval") for g in groups}))


# --- rules/alertmanager-config ------------------------------------------------------------------------------------

# Receiver integrations that deliver outside the stack: a stack whose alerts stay inside it (e.g. a console receiver
# a human reads, no paging) allows none of them.
EXTERNAL_INTEGRATIONS = (
    "email_configs",
    "pagerduty_configs",
    "slack_configs",
    "opsgenie_configs",
    "victorops_configs",
    "pushover_configs",
    "wechat_configs",
    "sns_configs",
    "telegram_configs",
    "discord_configs",
    "webex_configs",
    "msteams_configs",
    "msteamsv2_configs",
    "jira_configs",
    "rocketchat_configs",
)


# Fields of an integration (and of the global section) that hold a secret, and the field that reads it from a file
# instead (Alertmanager 0.25+). An allowed integration must use the file: a secret written in the configuration is a
# secret committed to the repository.
SECRET_FIELDS: dict[str, dict[str, str]] = {
    "slack_configs": {"api_url": "api_url_file"},
    "pagerduty_configs": {"routing_key": "routing_key_file", "service_key": "service_key_file"},
    "opsgenie_configs": {"api_key": "api_key_file"},
    "victorops_configs": {"api_key": "api_key_file"},
    "pushover_configs": {"user_key": "user_key_file", "token": "token_file"},
    "telegram_configs": {"bot_token": "bot_token_file"},
    "discord_configs": {"webhook_url": "webhook_url_file"},
    "msteams_configs": {"webhook_url": "webhook_url_file"},
    "email_configs": {"auth_password": "auth_password_file"},
    "wechat_configs": {"api_secret": "api_secret_file"},
}
GLOBAL_SECRET_FIELDS = {
    "slack_api_url": "slack_api_url_file",
    "opsgenie_api_key": "opsgenie_api_key_file",
    "victorops_api_key": "victorops_api_key_file",
    "smtp_auth_password": "smtp_auth_password_file",
    "wechat_api_secret": "wechat_api_secret_file",
    "telegram_bot_token": "telegram_bot_token_file",
}
HTTP_SECRET_FIELDS = {("basic_auth", "password"): "password_file", ("authorization", "credentials"): "credentials_file"}


def _file_fields(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, file) of every `*_file` setting in a configuration tree: what Alertmanager reads at run time."""
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).endswith("_file") and isinstance(item, str) and item:
                yield (*path, key), item
            else:
                yield from _file_fields(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _file_fields(item, (*path, index))


def _inline_secrets(config: dict[str, Any], allowed: list[str]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, the file field to use instead) of every secret written inline in the configuration."""
    for name, file_field in GLOBAL_SECRET_FIELDS.items():
        if (config.get("global") or {}).get(name):
            yield ("global", name), file_field
    for index, receiver in enumerate(config.get("receivers") or []):
        for integration in [*allowed, "webhook_configs"]:
            for ci, entry in enumerate(receiver.get(integration) or []):
                if not isinstance(entry, dict):
                    continue
                at = ("receivers", index, integration, ci)
                for name, file_field in SECRET_FIELDS.get(integration, {}).items():
                    if entry.get(name):
                        yield (*at, name), file_field
                http = entry.get("http_config") or {}
                for (section, name), file_field in HTTP_SECRET_FIELDS.items():
                    if isinstance(http.get(section), dict) and http[section].get(name):
                        yield (*at, "http_config", section, name), file_field


def _walk_routes(route: dict[str, Any], path: tuple[Any, ...]) -> Iterator[tuple[dict[str, Any], tuple[Any, ...]]]:
    yield route, path
    for index, child in enumerate(route.get("routes") or []):
        if isinstance(child, dict):
            yield from _walk_routes(child, (*path, "routes", index))


# What the checks below read from an Alertmanager config, in the types they read it as (amtool refuses these too).
_INTEGRATION_LIST = {
    "type": ["array", "null"],
    "items": {"type": "object", "properties": {"http_config": {"type": ["object", "null"]}}},
}
_AM_SHAPE: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "global": {"type": ["object", "null"]},
        "route": {"$ref": "#/$defs/route"},
        "receivers": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {name: _INTEGRATION_LIST for name in ("webhook_configs", *EXTERNAL_INTEGRATIONS)},
            },
        },
    },
    "$defs": {
        "route": {
            "type": ["object", "null"],
            "properties": {"routes": {"type": ["array", "null"], "items": {"$ref": "#/$defs/route"}}},
        }
    },
}


def _load_am(ctx: Context, relative: str) -> tuple[Located, dict[str, Any]]:
    path = ctx.judge(relative)
    try:
        located = load_yaml(path, relative)
    except InputError as exc:
        problem = exc.problems[0]
        file, _, line = problem.where.partition(":")
        ctx.finding(problem.what, file=file or relative, line=int(line) if line.isdigit() else None)
        ctx.fail(str(problem))
    errors = sorted(
        jsonschema.Draft202012Validator(_AM_SHAPE).iter_errors(located.value),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    for error in errors:
        where = tuple(error.absolute_path)
        ctx.finding(f"{json_path(where)}: {error.message}"[:300], file=relative, line=located.line_of(where))
    if errors:
        ctx.fail(f"{relative}: not an Alertmanager configuration of the expected shape ({len(errors)} problems)")
    return located, dict(located.value or {})


@check(
    "rules/alertmanager-config",
    title="amtool check-config passes; alerts go only to the stack's own receivers and the integrations allowed, "
    "whose secrets are read from files the container is given",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "config": {"type": "string", "description": "default: the file the described Alertmanager mounts"},
            "webhook_hosts": {**STRING_LIST, "description": "default: the described services with role receiver"},
            "integrations": {
                "type": "array",
                "items": {"enum": list(EXTERNAL_INTEGRATIONS)},
                "uniqueItems": True,
                "description": "external integrations allowed (default none); their secrets must come from files "
                "(`api_url_file`, `routing_key_file`, ...) that a compose secret or bind mount gives the container",
            },
        },
    },
)
def alertmanager_config(ctx: Context) -> None:
    relative = _alertmanager_config(ctx)
    located, config = _load_am(ctx, relative)
    version = ctx.run(["amtool", "--version"], timeout=30)
    ctx.tool_version("amtool", _first_line(version.output).replace("amtool, version ", ""))
    result = ctx.run(["amtool", "check-config", relative], timeout=60)
    if not result.ok:
        ctx.finding(f"amtool check-config: {result.output.strip()[-500:]}", file=relative)
    receivers = {str(r.get("name")): i for i, r in enumerate(config.get("receivers") or []) if isinstance(r, dict)}
    root = config.get("route") or {}
    if not root.get("receiver"):
        ctx.finding(
            "the root route names no receiver (every alert needs a default)",
            file=relative,
            line=located.line_of(("route",)),
        )
    for route, path in _walk_routes(root, ("route",)):
        receiver = route.get("receiver")
        if receiver is not None and str(receiver) not in receivers:
            ctx.finding(
                f"route sends to receiver {receiver!r}, which is not defined (receivers: {', '.join(receivers)})",
                file=relative,
                line=located.line_of((*path, "receiver")),
            )
    hosts = [str(h) for h in ctx.params.get("webhook_hosts") or [s.name for s in ctx.description.with_role("receiver")]]
    if not hosts:
        ctx.error(
            f"no `with.webhook_hosts` and no service with role receiver in {ctx.description.path}: "
            "say where alerts may be delivered"
        )
    allowed = [str(i) for i in ctx.params.get("integrations") or []]
    used: dict[str, list[str]] = {}
    for name, index in receivers.items():
        receiver = config["receivers"][index]
        for integration in EXTERNAL_INTEGRATIONS:
            if not receiver.get(integration):
                continue
            used.setdefault(name, []).append(integration)
            if integration not in allowed:
                ctx.finding(
                    f"receiver {name} uses {integration}: only webhooks to {', '.join(hosts)}"
                    + (f" and {', '.join(allowed)}" if allowed else " (no external integration)")
                    + " are allowed",
                    file=relative,
                    line=located.line_of(("receivers", index, integration)),
                )
        for wi, webhook in enumerate(receiver.get("webhook_configs") or []):
            url = str(webhook.get("url", ""))
            host = re.sub(r"^[a-z]+://", "", url).split("/", 1)[0].split(":", 1)[0]
            if host not in hosts:
                ctx.finding(
                    f"receiver {name} posts to {url}, not to the stack's receivers ({', '.join(hosts)})",
                    file=relative,
                    line=located.line_of(("receivers", index, "webhook_configs", wi, "url")),
                )
            if not webhook.get("send_resolved", True):
                ctx.finding(
                    f"receiver {name}: send_resolved is false, so a resolved alert is never printed",
                    file=relative,
                    line=located.line_of(("receivers", index, "webhook_configs", wi)),
                    severity=Severity.WARNING,
                )
    for path, file_field in _inline_secrets(config, allowed):
        ctx.finding(
            f"{json_path(path)} holds a secret in the configuration (committed with it): read it from a file with "
            f"`{file_field}`",
            file=relative,
            line=located.line_of(path),
        )
    ctx.record("receivers", sorted(receivers))
    ctx.record("integrations", used)
    ctx.record("secret_files", _judge_secret_files(ctx, relative, located, config))


def _judge_secret_files(ctx: Context, relative: str, located: Located, config: dict[str, Any]) -> dict[str, str]:
    """Every `*_file` the configuration reads must be given to the Alertmanager container: a compose secret (the
    place for a secret: never in the repository) or a bind mount. Returns file -> what provides it."""
    files = list(_file_fields(config, ()))
    if not files:
        return {}
    service_name = service_by_role(ctx, "alertmanager")
    compose = load_compose(ctx)
    service = compose.services.get(service_name)
    if service is None:
        ctx.error(f"{ctx.description.compose_file} has no service {service_name}")
    secrets = {ref.target: ref.name for ref in service.secrets()}
    mounts = service.mounts(compose.base)
    provided: dict[str, str] = {}
    for path, file in files:
        if file in secrets:
            provided[file] = f"compose secret {secrets[file]}"
        elif map_path(file, mounts) is not None:
            provided[file] = "bind mount"
        else:
            ctx.finding(
                f"{json_path(path)}: {file} is given to service {service_name} by no compose secret or bind mount "
                f"in {ctx.description.compose_file}, so Alertmanager cannot read it",
                file=relative,
                line=located.line_of(path),
            )
    return provided


# --- rules/routing ------------------------------------------------------------------------------------------------


def _labels_argv(labels: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(labels.items())]


def _routes_test(ctx: Context, relative: str, labels: dict[str, str]) -> list[str]:
    result = ctx.run(
        ["amtool", "config", "routes", "test", f"--config.file={relative}", *_labels_argv(labels)], timeout=60
    )
    if not result.ok:
        ctx.error(
            f"amtool config routes test {' '.join(_labels_argv(labels))} exited {result.exit_code}: "
            f"{_first_line(result.stderr or result.stdout)}"
        )
    return [r.strip() for r in result.stdout.strip().split(",") if r.strip()]


@check(
    "rules/routing",
    title="Routing: each given label set reaches its receiver; every rule's labels are routed",
    requires=("rules/alertmanager-config",),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "config": {"type": "string"},
            "rules": STRING_LIST,
            "routes": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["labels", "receiver"],
                    "properties": {"labels": LABELS, "receiver": {"type": "string"}},
                },
            },
            "probes": {"type": "array", "items": LABELS},
        },
    },
)
def routing(ctx: Context) -> None:
    relative = _alertmanager_config(ctx)
    located, config = _load_am(ctx, relative)
    default = str((config.get("route") or {}).get("receiver", ""))
    tree = ctx.run(["amtool", "config", "routes", f"--config.file={relative}"], timeout=60)
    if tree.ok:
        ctx.attach("alertmanager-routes.txt", tree.stdout)
    proven = {}
    for expectation in ctx.params.get("routes", []):
        labels = {str(k): str(v) for k, v in expectation["labels"].items()}
        receiver = str(expectation["receiver"])
        argv = [
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={relative}",
            f"--verify.receivers={receiver}",
            *_labels_argv(labels),
        ]
        result = ctx.run(argv, timeout=60)
        got = _first_line(result.stdout)  # amtool prints its mismatch WARNING on stdout, after the receivers
        proven[" ".join(_labels_argv(labels))] = got
        if not result.ok:
            ctx.finding(
                f"alerts with {' '.join(_labels_argv(labels))} reach {got or 'nothing'}, expected {receiver} "
                f"(amtool config routes test --verify.receivers)",
                file=relative,
                line=located.line_of(("route",)),
            )
    has_children = bool((config.get("route") or {}).get("routes"))
    rules = all_rules(load_rules(ctx, _patterns(ctx)))
    routed = {}
    for rule in rules:
        if rule.kind != "alert":
            continue
        labels = {"alertname": rule.name, **rule.labels}
        got = _routes_test(ctx, relative, labels)
        routed[rule.name] = ",".join(got)
        if has_children and got == [default]:
            ctx.finding(
                f"alert {rule.name} ({' '.join(_labels_argv(rule.labels))}) is handled by no route: it only "
                f"reaches the default receiver {default}",
                file=rule.file,
                line=rule.line,
            )
    unhandled = []
    for labels in ctx.params.get("probes", []):
        got = _routes_test(ctx, relative, {str(k): str(v) for k, v in labels.items()})
        if has_children and got == [default]:
            unhandled.append(" ".join(_labels_argv(labels)))
            ctx.finding(
                f"label set {{{', '.join(_labels_argv(labels))}}} is handled by no route (falls back to the "
                f"default receiver {default})",
                file=relative,
                line=located.line_of(("route",)),
                severity=Severity.INFO,
            )
    ctx.record("verified_routes", proven)
    ctx.record("rules_routed", routed)
    ctx.record("unhandled_label_sets", unhandled)

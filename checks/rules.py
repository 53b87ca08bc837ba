"""EIXO 2 — alert rules and routing: the seed's hand-made "parecer de executabilidade", automated.

Static: promtool check rules/config, promtool unit tests (JUnit attached), the rule inventory against the spec,
amtool check-config and routing. Live (against the running stack): every metric each rule reads exists in the
API's /metrics and in Prometheus (a real PromQL parser, see checks/promql.py), the rules are loaded and healthy,
and an alert drill makes LLMProviderDown, CircuitBreakerOpen and APIDown really fire — in Prometheus, in
Alertmanager and on the console-log receiver's output — and resolve again, with the rules' real `for` durations.
"""

from __future__ import annotations

import contextlib
import datetime
import glob
import hashlib
import json
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import requests
import yaml

from sealgate.checks import promql
from sealgate.errors import InputError
from sealgate.sprint.context import Context
from sealgate.sprint.model import Severity
from sealgate.sprint.registry import check
from sealgate.sprint.yamlsource import Located, json_path, load_yaml

RULE_FILES = ["stack/prometheus/alerts/*.yml"]
PROMETHEUS_CONFIG = "stack/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG = "stack/prometheus/alertmanager.yml"
RULE_TESTS = ["stack/prometheus/tests/*.yml"]
HTTP_TIMEOUT = 5.0

STRING_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}


# --- reading rule files -------------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_s(text: str | int | float | None) -> float:
    """A Prometheus duration (`1m`, `1h30m`, `30s`) in seconds; 0 for none."""
    if text in (None, "", 0):
        return 0.0
    if isinstance(text, (int, float)):
        return float(text)
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


def expand(ctx: Context, patterns: list[str]) -> list[str]:
    """Repository-relative files matching the globs, sorted; refuses globs that leave the repository."""
    found: set[str] = set()
    for pattern in patterns:
        ctx.path(pattern.split("*", 1)[0] or ".")  # errors if the glob's fixed part escapes the repository
        for match in glob.glob(str(ctx.root / pattern)):
            if Path(match).is_file():
                found.add(Path(match).resolve().relative_to(ctx.root.resolve()).as_posix())
    return sorted(found)


# Parsed rule files by (path, content digest): every check of EIXO 2 reads the same files, and parsing ten thousand
# rules with line numbers costs more than promtool's own check. With the findings the parse produced, replayed.
_PARSED: dict[tuple[str, str], tuple[RuleFile, list[tuple[str, str, int | None]]]] = {}


def read_rule_file(ctx: Context, relative: str) -> RuleFile:
    """Parse a rule file with line numbers; problems become findings (a broken file yields no rules)."""
    path = ctx.judge(relative)
    key = (str(path), hashlib.sha256(path.read_bytes()).hexdigest())
    if key not in _PARSED:
        if len(_PARSED) > 64:
            _PARSED.clear()
        problems: list[tuple[str, str, int | None]] = []
        _PARSED[key] = (_parse_rule_file(path, relative, problems), problems)
    parsed, problems = _PARSED[key]
    for what, file, line in problems:
        ctx.finding(what, file=file, line=line)
    return parsed


def _parse_rule_file(path: Path, relative: str, problems: list[tuple[str, str, int | None]]) -> RuleFile:
    try:
        located = load_yaml(path, relative)
    except InputError as exc:
        for problem in exc.problems:
            file, _, line = problem.where.partition(":")
            problems.append((problem.what, file or relative, int(line) if line.isdigit() else None))
        return RuleFile(relative, None, [], [])
    lines = path.read_text().splitlines()
    doc = located.value if isinstance(located.value, dict) else {}
    result = RuleFile(relative, located, [], [])

    def typed(value: Any, kind: type, path: tuple[Any, ...]) -> Any:
        """`value` when it is a `kind` (empty when absent); otherwise a finding at its line, and empty."""
        if value is None or isinstance(value, kind):
            return value or kind()
        wanted = "a list" if kind is list else "a mapping"
        what = f"{json_path(path)} must be {wanted}, not {type(value).__name__} {value!r}"[:300]
        problems.append((what, relative, located.line_of(path)))
        return kind()

    for gi, group in enumerate(typed(doc.get("groups"), list, ("groups",))):
        if not isinstance(group, dict):
            continue
        gname = str(group.get("name", f"#{gi}"))
        result.groups.append((gname, located.line_of(("groups", gi, "name")) or 1))
        for ri, rule in enumerate(typed(group.get("rules"), list, ("groups", gi, "rules"))):
            if not isinstance(rule, dict):
                continue
            at = ("groups", gi, "rules", ri)
            kind = "alert" if "alert" in rule else "record"
            try:
                for_s = duration_s(rule.get("for"))
            except ValueError as exc:
                problems.append((str(exc), relative, located.line_of(("groups", gi, "rules", ri, "for"))))
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
                    line=located.line_of(("groups", gi, "rules", ri)) or 1,
                    expr_line=located.line_of(("groups", gi, "rules", ri, "expr")) or 1,
                    lines=lines,
                )
            )
    return result


def load_rules(ctx: Context, patterns: list[str]) -> list[RuleFile]:
    files = expand(ctx, patterns)
    if not files:
        ctx.fail(f"no rule file matches {', '.join(patterns)}")
    return [read_rule_file(ctx, f) for f in files]


def all_rules(files: list[RuleFile]) -> list[Rule]:
    return [rule for f in files for rule in f.rules]


def _patterns(ctx: Context, key: str = "rules", default: list[str] = RULE_FILES) -> list[str]:
    return [str(p) for p in ctx.params.get(key, default)]


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


# --- rules/promtool-check -----------------------------------------------------------------------------------------

_PROMTOOL_LOCATED = re.compile(r"^(?P<file>[^\s:][^:]*): (?P<line>\d+):(?P<col>\d+): (?P<what>.+)$")
_PROMTOOL_YAML = re.compile(r"^(?P<file>[^\s:][^:]*): yaml: line (?P<line>\d+): (?P<what>.+)$")


def promtool_findings(ctx: Context, output: str, fallback_file: str) -> int:
    """Findings from promtool's text output, at the file:line it names; returns how many it produced."""
    count = 0
    lines = output.splitlines()
    for index, raw in enumerate(lines):
        line = raw.strip()
        match = _PROMTOOL_LOCATED.match(line) or _PROMTOOL_YAML.match(line)
        if match:
            # promtool prints `0:0:` when it has no position (e.g. a rule with neither alert nor record).
            ctx.finding(f"promtool: {match['what']}", file=match["file"], line=int(match["line"]) or None)
            count += 1
        elif line.startswith("lint error"):
            detail = " ".join(x.strip() for x in lines[index : index + 3])
            ctx.finding(f"promtool: {detail}", file=fallback_file)
            count += 1
    return count


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
    stage=2,
    title="promtool check rules and check config pass (PromQL syntax, YAML, duplicates)",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {"rules": STRING_LIST, "config": {"type": "string"}, "service": {"type": "string"}},
    },
)
def promtool_check(ctx: Context) -> None:
    files = load_rules(ctx, _patterns(ctx))
    paths = [f.path for f in files]
    version = ctx.run(["promtool", "--version"], timeout=30)
    ctx.tool_version("promtool", _first_line(version.output).replace("promtool, version ", ""))
    result = ctx.run(["promtool", "check", "rules", "--lint=all", "--lint-fatal", *paths], timeout=120)
    ctx.record("rules_checked", paths)
    if not result.ok and not promtool_findings(ctx, result.output, paths[0]):
        ctx.finding(f"promtool check rules exited {result.exit_code}: {result.output.strip()[-500:]}", file=paths[0])
    for rule in all_rules(files):
        try:
            promql.parse(rule.expr)
        except promql.PromQLError as exc:
            # promtool is the authority on syntax; a disagreement of the two parsers is worth a look, not a failure.
            reported = any(f.location.file == rule.file and f.severity is Severity.ERROR for f in ctx.findings)
            if not reported:
                ctx.finding(
                    f"rule {rule.name}: promql-parser rejects the expression promtool accepts: {exc}",
                    file=rule.file,
                    line=rule.expr_line,
                    severity=Severity.WARNING,
                )
    ctx.record("rules", len(all_rules(files)))
    _check_config(ctx, paths)


def _check_config(ctx: Context, rule_paths: list[str]) -> None:
    """promtool check config on a copy of prometheus.yml whose rule_files point where the container's bind
    mounts really take them from (promtool on the host cannot see container paths)."""
    from sealgate.checks.containerize import load_compose

    config_rel = str(ctx.params.get("config", PROMETHEUS_CONFIG))
    service = str(ctx.params.get("service", "prometheus"))
    config_path = ctx.judge(config_rel)
    try:
        located = load_yaml(config_path, config_rel)
    except InputError as exc:
        ctx.fail(str(exc))
    config = dict(located.value or {})
    compose = load_compose(ctx)
    spec = compose.services.get(service) or {}
    mounts = list(spec.get("volumes") or [])
    config_target = next(
        (str(m["target"]) for m in mounts if m.get("type") == "bind" and Path(str(m.get("source"))) == config_path),
        None,
    )
    if config_target is None:
        ctx.finding(
            f"{config_rel} is not bind-mounted into service {service} (stack/docker-compose.yml)",
            file="stack/docker-compose.yml",
            line=compose.line("services", service, "volumes"),
        )
        config_target = "/etc/prometheus/prometheus.yml"
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
    result = ctx.run(["promtool", "check", "config", "--syntax-only", str(temp)], timeout=120)
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
    stage=2,
    title="promtool test rules: every unit test of the rules passes (JUnit attached)",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {"tests": STRING_LIST, "rules": STRING_LIST},
    },
)
def promtool_test(ctx: Context) -> None:
    test_files = expand(ctx, _patterns(ctx, "tests", RULE_TESTS))
    if not test_files:
        ctx.fail(f"no promtool test file matches {', '.join(_patterns(ctx, 'tests', RULE_TESTS))}")
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
    "required": ["alert", "severity", "for"],
    "properties": {
        "alert": {"type": "string"},
        "severity": {"type": "string"},
        "for": {"type": "string"},
    },
}


def _spec_lines(ctx: Context) -> tuple[Located | None, tuple[Any, ...]]:
    """The spec with lines, and the path of this check's entry in it (for findings about expectations)."""
    try:
        located = load_yaml(ctx.spec.path, ctx.spec.relpath)
    except InputError:
        return None, ()
    for si, stage in enumerate(ctx.spec.raw.get("stages", [])):
        for ci, entry in enumerate(stage.get("checks", [])):
            if entry.get("id") == ctx.check_id:
                return located, ("stages", si, "checks", ci, "with")
    return located, ()


@check(
    "rules/inventory",
    stage=2,
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
    files = load_rules(ctx, _patterns(ctx))
    rules = all_rules(files)
    expected: dict[str, list[dict[str, str]]] = ctx.params["groups"]
    required = [str(a) for a in ctx.params.get("annotations", ["summary", "description"])]
    spec_doc, base = _spec_lines(ctx)

    def spec_line(*path: Any) -> int | None:
        return spec_doc.line_of((*base, *path)) if spec_doc else None

    groups = {name: (f.path, line) for f in files for name, line in f.groups}
    for group, (file, line) in groups.items():
        if group not in expected:
            ctx.finding(
                f"group {group!r} is not in the spec (expected groups: {', '.join(expected)})", file=file, line=line
            )
    for group in expected:
        if group not in groups:
            ctx.finding(
                f"group {group!r} named by the spec is missing from the rule files",
                file=ctx.spec.relpath,
                line=spec_line("groups", group),
            )
    found = {rule.name: rule for rule in rules}
    seen_names: set[str] = set()
    for rule in rules:
        if rule.name in seen_names:
            ctx.finding(f"rule {rule.name} is defined more than once", file=rule.file, line=rule.line)
        seen_names.add(rule.name)
    wanted = {e["alert"]: (group, i, e) for group, entries in expected.items() for i, e in enumerate(entries)}
    for rule in rules:
        if rule.name not in wanted:
            ctx.finding(
                f"{rule.kind} rule {rule.name} (group {rule.group}) is not in the spec's inventory",
                file=rule.file,
                line=rule.line,
            )
            continue
        group, index, entry = wanted[rule.name]
        if rule.kind != "alert":
            ctx.finding(f"{rule.name} is a recording rule; the spec expects an alert", file=rule.file, line=rule.line)
        if rule.group != group:
            ctx.finding(
                f"alert {rule.name} is in group {rule.group!r}, the spec puts it in {group!r}",
                file=rule.file,
                line=rule.line,
            )
        if rule.labels.get("severity") != entry["severity"]:
            ctx.finding(
                f"alert {rule.name} has severity {rule.labels.get('severity')!r}, the spec says {entry['severity']!r}",
                file=rule.file,
                line=rule.line,
            )
        if abs(rule.for_s - duration_s(entry["for"])) > 1e-6:
            ctx.finding(
                f"alert {rule.name} has `for` {rule.for_s:g}s, the spec says {entry['for']}",
                file=rule.file,
                line=rule.line,
            )
        for annotation in required:
            if not rule.annotations.get(annotation, "").strip():
                ctx.finding(f"alert {rule.name} has no {annotation!r} annotation", file=rule.file, line=rule.line)
    for name, (group, index, _entry) in wanted.items():
        if name not in found:
            ctx.finding(
                f"alert {name} (group {group}) named by the spec is missing from the rule files",
                file=ctx.spec.relpath,
                line=spec_line("groups", group, index),
            )
    for name in ctx.params.get("removed", []):
        if name in found:
            rule = found[name]
            ctx.finding(
                f"alert {name} must stay removed (the spec's technical decisions), but it is defined",
                file=rule.file,
                line=rule.line,
            )
    ctx.record("groups", {g: sorted(r.name for r in rules if r.group == g) for g in groups})
    ctx.record("rule_count", len(rules))
    ctx.record("group_count", len(groups))


# --- rules/metrics-exist ------------------------------------------------------------------------------------------


def _fetch(url: str, timeout: float = HTTP_TIMEOUT) -> requests.Response:
    response = requests.get(url, timeout=timeout)
    response.raise_for_status()
    return response


@check(
    "rules/metrics-exist",
    stage=2,
    title="Every metric every rule reads exists in the API's /metrics and in Prometheus",
    needs_stack=True,
    requires=("rules/promtool-check",),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rules": STRING_LIST,
            "target": {"type": "string", "description": "stack service whose /metrics the rules are about"},
            "metrics_path": {"type": "string"},
        },
    },
)
def metrics_exist(ctx: Context) -> None:
    rules = all_rules(load_rules(ctx, _patterns(ctx)))
    target = str(ctx.params.get("target", "api"))
    metrics_url = ctx.stack.url(target) + str(ctx.params.get("metrics_path", "/metrics"))
    prometheus = ctx.stack.url("prometheus")
    try:
        exposition = _fetch(metrics_url).text
    except requests.RequestException as exc:
        ctx.error(f"GET {metrics_url}: {exc}")
    ctx.attach(f"{target}-metrics.txt", exposition)
    exported = promql.exposition_names(exposition)
    # Only series with samples since this stack started count: persisted data can hold metrics that are gone.
    since = ctx.stack.started_at or time.time() - 600
    try:
        held = promql.prometheus_metric_names(prometheus, since=since)
    except (requests.RequestException, ValueError) as exc:
        ctx.error(f"GET {prometheus}/api/v1/label/__name__/values: {exc}")
    recorded = {rule.name for rule in rules if rule.kind == "record"}
    per_rule: dict[str, list[str]] = {}
    for rule in rules:
        try:
            refs = promql.selectors(rule.expr)
        except promql.PromQLError as exc:
            ctx.finding(f"rule {rule.name}: PromQL syntax error: {exc}", file=rule.file, line=rule.expr_line)
            continue
        per_rule[rule.name] = [str(r) for r in refs]
        names = {r.name for r in refs if r.name}
        for name in promql.missing_metrics(names, exported | recorded):
            in_prometheus = "but Prometheus holds series of it" if name in held else "and Prometheus holds no series"
            ctx.finding(
                f"rule {rule.name}: metric {name} is not exported by {target} (GET {metrics_url}) {in_prometheus} "
                "since the stack started",
                file=rule.file,
                line=rule.metric_line(name),
            )
        for name in promql.missing_metrics(names & (exported | recorded), held | recorded):
            ctx.finding(
                f"rule {rule.name}: metric {name} is exported by {target} but Prometheus holds no series of it since "
                f"the stack started ({prometheus}/api/v1/label/__name__/values): is {target} scraped?",
                file=rule.file,
                line=rule.metric_line(name),
            )
        for ref in promql.missing_patterns(refs, exported | recorded | promql.GENERATED_METRICS):
            ctx.finding(
                f"rule {rule.name}: selector {ref} matches no metric exported by {target}",
                file=rule.file,
                line=rule.expr_line,
            )
    ctx.record("metrics_url", metrics_url)
    ctx.record("metrics_by_rule", per_rule)
    ctx.record("exported_count", len(exported))
    ctx.record("prometheus_names_count", len(held))


# --- rules/loaded-live --------------------------------------------------------------------------------------------


def _prom_get(url: str, path: str, **params: str) -> Any:
    response = _fetch(
        f"{url}{path}" + ("?" + "&".join(f"{k}={requests.utils.quote(v)}" for k, v in params.items()) if params else "")
    )
    body = response.json()
    if body.get("status") != "success":
        raise ValueError(f"{path}: {body.get('error', body)}")
    return body["data"]


def _normalise(expr: str) -> str:
    try:
        return str(promql.parse(expr))
    except promql.PromQLError:
        return " ".join(expr.split())


def _iso_to_epoch(text: str) -> float:
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
    stage=2,
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
    prometheus = ctx.stack.url("prometheus")
    where = f"{prometheus}/api/v1/rules"
    started = ctx.stack.started_at or 0.0
    deadline = time.monotonic() + 60
    wait_start = time.monotonic()
    while True:  # every rule evaluated at least once by this Prometheus, so `health` means something
        try:
            groups = _prom_get(prometheus, "/api/v1/rules")["groups"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            ctx.error(f"GET {where}: {exc}")
        live = [(g, r) for g in groups for r in g.get("rules", [])]
        if live and all(_iso_to_epoch(r.get("lastEvaluation", "")) >= started for _g, r in live):
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

# Receiver integrations that deliver outside the stack: decision 5.3 allows none of them (console mode only).
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


def _walk_routes(route: dict[str, Any], path: tuple[Any, ...]) -> Iterator[tuple[dict[str, Any], tuple[Any, ...]]]:
    yield route, path
    for index, child in enumerate(route.get("routes") or []):
        if isinstance(child, dict):
            yield from _walk_routes(child, (*path, "routes", index))


# What the checks below read from an Alertmanager config, in the types they read it as (amtool refuses these too).
_AM_SHAPE: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "route": {"$ref": "#/$defs/route"},
        "receivers": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {"webhook_configs": {"type": ["array", "null"], "items": {"type": "object"}}},
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
    stage=2,
    title="amtool check-config passes; console mode only (no external receivers)",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {"config": {"type": "string"}, "webhook_hosts": STRING_LIST},
    },
)
def alertmanager_config(ctx: Context) -> None:
    relative = str(ctx.params.get("config", ALERTMANAGER_CONFIG))
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
    hosts = [str(h) for h in ctx.params.get("webhook_hosts", ["console-log"])]
    for name, index in receivers.items():
        receiver = config["receivers"][index]
        for integration in EXTERNAL_INTEGRATIONS:
            if receiver.get(integration):
                ctx.finding(
                    f"receiver {name} uses {integration}: console mode allows no external integration",
                    file=relative,
                    line=located.line_of(("receivers", index, integration)),
                )
        for wi, webhook in enumerate(receiver.get("webhook_configs") or []):
            url = str(webhook.get("url", ""))
            host = re.sub(r"^[a-z]+://", "", url).split("/", 1)[0].split(":", 1)[0]
            if host not in hosts:
                ctx.finding(
                    f"receiver {name} posts to {url}, not to the console-log sink ({', '.join(hosts)})",
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
    ctx.record("receivers", sorted(receivers))


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
    stage=2,
    title="Routing: critical and warning reach their receivers; every rule's labels are routed",
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
    relative = str(ctx.params.get("config", ALERTMANAGER_CONFIG))
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


# --- rules/alert-drill --------------------------------------------------------------------------------------------

_CONSOLE_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def console_events(text: str) -> list[dict[str, str]]:
    """The console-log receiver's lines (`console-log: FIRING alertname=X ... starts_at=...`) as dicts."""
    events = []
    for line in text.splitlines():
        match = re.search(r"console-log: (FIRING|RESOLVED) (.*)$", line)
        if not match:
            continue
        fields: dict[str, str] = {"status": match[1]}
        for key, value in _CONSOLE_FIELD.findall(match[2]):
            if value.startswith('"'):
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            fields[key] = value
        events.append(fields)
    return events


@dataclass
class Expectation:
    """One thing the drill waits to see, and when it saw it (seconds since its phase began)."""

    label: str
    probe: Callable[[Observation], bool]
    started: float  # time.monotonic() when its phase began
    met_at: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.met_at is None else round(self.met_at - self.started, 1)


@dataclass
class Observation:
    """One poll of the three places an alert shows up."""

    prometheus: list[dict[str, Any]]  # /api/v1/alerts
    alertmanager: list[dict[str, Any]]  # /api/v2/alerts
    console: list[dict[str, str]]  # console-log lines
    errors: list[str]

    def prom_state(self, alert: str) -> str:
        states = [a.get("state") for a in self.prometheus if a.get("labels", {}).get("alertname") == alert]
        return "firing" if "firing" in states else ("pending" if "pending" in states else "inactive")

    def am_active(self, alert: str, since: float) -> bool:
        return any(
            a.get("labels", {}).get("alertname") == alert
            and (a.get("status") or {}).get("state") == "active"
            and _iso_to_epoch(a.get("endsAt", "")) > time.time()
            and _iso_to_epoch(a.get("startsAt", "")) >= since - 2
            for a in self.alertmanager
        )

    def am_cleared(self, alert: str) -> bool:
        return not any(
            a.get("labels", {}).get("alertname") == alert and _iso_to_epoch(a.get("endsAt", "")) > time.time()
            for a in self.alertmanager
        )

    def console_seen(self, alert: str, status: str, since: float) -> bool:
        stamp = "starts_at" if status == "FIRING" else "ends_at"
        return any(
            e.get("status") == status and e.get("alertname") == alert and _iso_to_epoch(e.get(stamp, "")) >= since - 2
            for e in self.console
        )


class Drill:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.stack = ctx.stack
        self.api = self.stack.url("api")
        self.prometheus = self.stack.url("prometheus")
        self.alertmanager = self.stack.url("alertmanager")
        self.timeline: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self.wall0 = time.time()

    def say(self, text: str) -> None:
        self.stack.progress(f"drill: {text}")

    def event(self, what: str) -> float:
        now = time.time()
        self.timeline.append({"t_s": round(time.monotonic() - self.t0, 1), "event": what})
        self.say(f"{what} (t+{time.monotonic() - self.t0:.0f}s)")
        return now

    def observe(self) -> Observation:
        errors = []
        try:
            prom = _prom_get(self.prometheus, "/api/v1/alerts")["alerts"]
        except (requests.RequestException, ValueError, KeyError) as exc:
            prom, errors = [], [*errors, f"{self.prometheus}/api/v1/alerts: {exc}"]
        try:
            am = _fetch(f"{self.alertmanager}/api/v2/alerts").json()
        except (requests.RequestException, ValueError) as exc:
            am, errors = [], [*errors, f"{self.alertmanager}/api/v2/alerts: {exc}"]
        try:
            console = console_events(self.stack.logs("console-log", tail=2000))
        except Exception as exc:  # a backend error reading logs: keep polling, report if it lasts
            console, errors = [], [*errors, f"console-log logs: {exc}"]
        return Observation(prom, am, console, errors)

    def api_post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = requests.post(f"{self.api}{path}", json=body, timeout=HTTP_TIMEOUT)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {}

    def breaker(self) -> dict[str, Any]:
        return dict(_fetch(f"{self.api}/admin/breaker").json())

    def wait(self, what: str, expectations: list[Expectation], timeout: float, describe: Callable[[], str]) -> bool:
        """Poll until every expectation is met or `timeout` passes; a progress line every 10 s."""
        start = time.monotonic()
        last_line = start
        while True:
            observation = self.observe()
            now = time.monotonic()
            for expectation in expectations:
                if expectation.met_at is None and expectation.probe(observation):
                    expectation.met_at = now
                    self.event(f"{expectation.label} after {expectation.seconds}s")
            if all(e.met_at is not None for e in expectations):
                self.ctx.note_wait(what, now - start)
                return True
            if now - start > timeout:
                self.ctx.note_wait(f"{what} (timed out)", now - start)
                return False
            if now - last_line >= 10:
                self.say(
                    f"waiting {now - start:.0f}/{timeout:.0f}s — {describe()}; still to see: "
                    + _pending(expectations)
                    + (f" (errors: {'; '.join(observation.errors)})" if observation.errors else "")
                )
                last_line = now
            time.sleep(1.0)


def _pending(expectations: list[Expectation]) -> str:
    """`APIDown in Alertmanager, console-log; X in Prometheus` from the expectations not met yet."""
    places: dict[str, list[str]] = {}
    for expectation in expectations:
        if expectation.met_at is None:
            alert, _, rest = expectation.label.partition(" ")
            where = next((w for w in ("Prometheus", "Alertmanager", "console-log") if w in rest), rest)
            places.setdefault(alert, []).append(where)
    return "; ".join(f"{alert} in {', '.join(where)}" for alert, where in places.items())


def _durations(drill: Drill) -> tuple[dict[str, float], float, float]:
    """Each alert's `for` (s), and the scrape and evaluation intervals, as the running Prometheus has them."""
    groups = _prom_get(drill.prometheus, "/api/v1/rules")["groups"]
    durations = {r["name"]: float(r.get("duration", 0)) for g in groups for r in g.get("rules", [])}
    evaluation = max([float(g.get("interval", 15)) for g in groups] or [15.0])
    config = yaml.safe_load(_prom_get(drill.prometheus, "/api/v1/status/config")["yaml"]) or {}
    scrape = max(
        [duration_s((config.get("global") or {}).get("scrape_interval", "15s"))]
        + [duration_s(job.get("scrape_interval", "0s")) for job in config.get("scrape_configs") or []]
    )
    return durations, scrape, evaluation


@check(
    "rules/alert-drill",
    stage=2,
    title="Alert drill: provider failure and API down fire, reach Alertmanager and console-log, then resolve",
    needs_stack=True,
    # A rule on a metric that does not exist can never fire: the drill would only wait out its timeout.
    requires=("rules/metrics-exist", "rules/loaded-live", "rules/routing"),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "provider_failure": STRING_LIST,
            "api_down": STRING_LIST,
            "request_interval_s": {"type": "number", "minimum": 0.2, "maximum": 10},
            "max_requests": {"type": "integer", "minimum": 1, "maximum": 100},
        },
    },
)
def alert_drill(ctx: Context) -> None:
    """Phases (the API must be up for the LLM alerts and down for APIDown, so those two cannot overlap):

    A. provider fails; ~1 request/s until the breaker opens, then no more traffic: the errors stay in the rules'
       5m window and an idle open breaker reads half_open after its timeout — both alerts stay true — while a
       breaker kept busy would re-open at each failed trial and delay the recovery by up to a whole timeout.
       Wait until LLMProviderDown and CircuitBreakerOpen fire in Prometheus, are active in Alertmanager and
       printed by console-log.
    B. provider restored; requests until the (by now half-open) breaker closes; wait until Prometheus has
       resolved both alerts — from a fresh `llm_circuit_breaker_state` of 0, not from the API vanishing.
    C. API stopped; APIDown must fire everywhere while, concurrently, the LLM alerts' resolution reaches
       Alertmanager and console-log. Then the API is started and APIDown must resolve everywhere.
    """
    if ctx.options.no_drill:
        ctx.skip("--no-drill: the alert drill was not run, so the criteria it proves cannot pass")
    llm_alerts = [str(a) for a in ctx.params.get("provider_failure", ["LLMProviderDown", "CircuitBreakerOpen"])]
    down_alerts = [str(a) for a in ctx.params.get("api_down", ["APIDown"])]
    interval = float(ctx.params.get("request_interval_s", 1.0))
    max_requests = int(ctx.params.get("max_requests", 20))
    drill = Drill(ctx)
    durations, scrape, evaluation = _durations(drill)
    for alert in llm_alerts + down_alerts:
        if alert not in durations:
            ctx.fail(f"alert {alert} is not loaded by the running Prometheus ({drill.prometheus}/api/v1/rules)")
    slack = 2 * scrape + 2 * evaluation + 30  # first scrape + evaluation to notice, one more of each, delivery
    ctx.record("intervals", {"scrape_s": scrape, "evaluation_s": evaluation})
    ctx.record("rule_for_s", {a: durations[a] for a in llm_alerts + down_alerts})
    results: dict[str, dict[str, float | None]] = {a: {} for a in llm_alerts + down_alerts}
    api_stopped = False
    provider_failed = False

    def describe(alerts: list[str]) -> Callable[[], str]:
        def text() -> str:
            observation = drill.observe()
            return ", ".join(f"{a} {observation.prom_state(a)} in Prometheus" for a in alerts)

        return text

    try:
        # Clean start: nothing of an earlier drill still active, breaker closed.
        status, body = drill.api_post("/admin/provider", {"fail": False})
        if status != 200:
            ctx.error(f"POST {drill.api}/admin/provider: HTTP {status} {body}")
        # A breaker left open by an earlier failure closes only through a successful call after its timeout.
        breaker = drill.breaker()
        close_by = time.monotonic() + float(breaker.get("timeout_s") or 60) + 15
        while breaker.get("state") != "closed" and time.monotonic() < close_by:
            drill.api_post("/v1/complete", {"prompt": "sealgate alert drill (pre-check)"})
            time.sleep(interval)
            breaker = drill.breaker()
        if breaker.get("state") != "closed":
            ctx.error(f"the breaker stays {breaker.get('state')} with a healthy provider ({drill.api}/admin/breaker)")
        clear = [
            Expectation(
                f"{a} inactive before the drill", lambda o, a=a: o.prom_state(a) == "inactive", time.monotonic()
            )
            for a in llm_alerts + down_alerts
        ]
        if not drill.wait("earlier alerts cleared", clear, 120 + slack, describe(llm_alerts + down_alerts)):
            ctx.error(
                "alerts of an earlier drill are still active in Prometheus after waiting: "
                + ", ".join(e.label for e in clear if e.met_at is None)
            )
        breaker = drill.breaker()
        ctx.record("breaker", {k: breaker.get(k) for k in ("threshold", "timeout_s", "state")})

        # --- A: provider failure -------------------------------------------------------------------------------
        since_a = drill.event("provider set to fail")
        status, body = drill.api_post("/admin/provider", {"fail": True})
        provider_failed = True
        if status != 200:
            ctx.error(f'POST {drill.api}/admin/provider {{"fail": true}}: HTTP {status} {body}')
        phase_a = time.monotonic()
        outcomes: list[str] = []
        for _ in range(max_requests):
            code, answer = drill.api_post("/v1/complete", {"prompt": "sealgate alert drill"})
            outcomes.append(f"{code}:{answer.get('error_type', 'ok')}")
            if drill.breaker().get("state") in ("open", "half_open"):
                break
            time.sleep(interval)
        ctx.record("requests_phase_a", outcomes)
        if drill.breaker().get("state") == "closed":
            ctx.fail(f"the breaker did not open after {len(outcomes)} failing requests ({outcomes[-3:]})")
        drill.event(f"breaker open after {len(outcomes)} requests")
        expectations_a = []
        for alert in llm_alerts:
            expectations_a += [
                Expectation(f"{alert} firing in Prometheus", lambda o, a=alert: o.prom_state(a) == "firing", phase_a),
                Expectation(f"{alert} active in Alertmanager", lambda o, a=alert: o.am_active(a, since_a), phase_a),
                Expectation(
                    f"{alert} printed by console-log", lambda o, a=alert: o.console_seen(a, "FIRING", since_a), phase_a
                ),
            ]
        timeout_a = max(durations[a] for a in llm_alerts) + slack
        fired_a = drill.wait("provider-failure alerts fire", expectations_a, timeout_a, describe(llm_alerts))
        _collect(results, expectations_a, "fire")
        if not fired_a:
            for expectation in expectations_a:
                if expectation.met_at is None:
                    ctx.finding(
                        f"{expectation.label}: not seen within {timeout_a:.0f}s of the provider failing",
                        json_path=_where(drill, expectation.label),
                    )
            return

        # --- B: provider restored --------------------------------------------------------------------------------
        restored = drill.event("provider restored")
        drill.api_post("/admin/provider", {"fail": False})
        provider_failed = False
        phase_b = time.monotonic()
        close_deadline = phase_b + float(breaker.get("timeout_s") or 60) + 15
        while drill.breaker().get("state") != "closed" and time.monotonic() < close_deadline:
            drill.api_post("/v1/complete", {"prompt": "sealgate alert drill (recovery)"})
            time.sleep(interval)
        if drill.breaker().get("state") != "closed":
            ctx.fail(
                f"the breaker did not close within {close_deadline - phase_b:.0f}s of the provider recovering "
                f"({drill.api}/admin/breaker)"
            )
        closed_at = drill.event("breaker closed")
        expectations_b = [
            Expectation(f"{alert} resolved in Prometheus", lambda o, a=alert: o.prom_state(a) == "inactive", phase_b)
            for alert in llm_alerts
        ]
        expectations_b.append(
            Expectation("breaker closed scraped by Prometheus", lambda o: _fresh_zero(drill, closed_at), phase_b)
        )
        if not drill.wait("provider-failure alerts resolve in Prometheus", expectations_b, slack, describe(llm_alerts)):
            for expectation in expectations_b:
                if expectation.met_at is None:
                    ctx.finding(
                        f"{expectation.label}: not seen within {slack:.0f}s of the breaker closing",
                        json_path=_where(drill, expectation.label),
                    )
            _collect(results, expectations_b, "resolve")
            return
        _collect(results, expectations_b, "resolve")

        # --- C: API down, LLM resolution delivered meanwhile -------------------------------------------------
        since_c = drill.event("api stopped")
        api_stopped = True  # before the call: a stop that fails halfway must still be undone below
        ctx.stack.stop_service("api")
        phase_c = time.monotonic()
        expectations_c = []
        for alert in down_alerts:
            expectations_c += [
                Expectation(f"{alert} firing in Prometheus", lambda o, a=alert: o.prom_state(a) == "firing", phase_c),
                Expectation(f"{alert} active in Alertmanager", lambda o, a=alert: o.am_active(a, since_c), phase_c),
                Expectation(
                    f"{alert} printed by console-log", lambda o, a=alert: o.console_seen(a, "FIRING", since_c), phase_c
                ),
            ]
        resolution = []
        for alert in llm_alerts:
            resolution += [
                Expectation(f"{alert} resolved in Alertmanager", lambda o, a=alert: o.am_cleared(a), phase_b),
                Expectation(
                    f"{alert} RESOLVED printed by console-log",
                    lambda o, a=alert: o.console_seen(a, "RESOLVED", restored),
                    phase_b,
                ),
            ]
        timeout_c = max(durations[a] for a in down_alerts) + slack
        fired_c = drill.wait(
            "APIDown fires (and the LLM resolution is delivered)",
            expectations_c + resolution,
            timeout_c,
            describe(down_alerts),
        )
        _collect(results, expectations_c, "fire")
        _collect(results, resolution, "resolve")
        for expectation in expectations_c + resolution:
            if expectation.met_at is None:
                ctx.finding(
                    f"{expectation.label}: not seen within {timeout_c:.0f}s", json_path=_where(drill, expectation.label)
                )
        if not fired_c:
            return

        restarted = drill.event("api started")
        ctx.stack.start_service("api")
        api_stopped = False
        phase_d = time.monotonic()
        expectations_d = []
        for alert in down_alerts:
            expectations_d += [
                Expectation(
                    f"{alert} resolved in Prometheus", lambda o, a=alert: o.prom_state(a) == "inactive", phase_d
                ),
                Expectation(f"{alert} resolved in Alertmanager", lambda o, a=alert: o.am_cleared(a), phase_d),
                Expectation(
                    f"{alert} RESOLVED printed by console-log",
                    lambda o, a=alert: o.console_seen(a, "RESOLVED", restarted),
                    phase_d,
                ),
            ]
        resolved_d = drill.wait("APIDown resolves", expectations_d, slack, describe(down_alerts))
        _collect(results, expectations_d, "resolve")
        if not resolved_d:
            for expectation in expectations_d:
                if expectation.met_at is None:
                    ctx.finding(
                        f"{expectation.label}: not seen within {slack:.0f}s of the API starting",
                        json_path=_where(drill, expectation.label),
                    )
    finally:
        ctx.record("alerts", results)
        # One scalar line for the SEAL report: each alert's time from its trigger to firing in Prometheus.
        fired = {a: t.get("fire_prometheus_s") for a, t in results.items()}
        ctx.record("time_to_fire", ", ".join(f"{a} {s}s" if s is not None else f"{a} never" for a, s in fired.items()))
        ctx.record("timeline", drill.timeline)
        ctx.record("total_s", round(time.monotonic() - drill.t0, 1))
        ctx.attach("drill-console-log.txt", _console_tail(ctx))
        # Leave the stack as it was found, whatever happened above (facts are recorded first: a failing restart
        # errors the check but must not lose them).
        if provider_failed:
            with contextlib.suppress(requests.RequestException):
                drill.api_post("/admin/provider", {"fail": False})
        if api_stopped:
            ctx.stack.start_service("api")


def _collect(results: dict[str, dict[str, float | None]], expectations: list[Expectation], verb: str) -> None:
    """results[alert]["<where> <verb>"] = seconds since its phase began (None: never seen)."""
    for expectation in expectations:
        alert, _, rest = expectation.label.partition(" ")
        if alert in results:
            where = next((w for w in ("Prometheus", "Alertmanager", "console-log") if w in rest), rest)
            results[alert][f"{verb}_{where.lower().replace('-', '_')}_s"] = expectation.seconds


def _where(drill: Drill, label: str) -> str:
    if "Prometheus" in label:
        return f"{drill.prometheus}/api/v1/alerts"
    if "Alertmanager" in label:
        return f"{drill.alertmanager}/api/v2/alerts"
    return "console-log output"


def _fresh_zero(drill: Drill, since: float) -> bool:
    """Prometheus holds a `llm_circuit_breaker_state` sample of 0 taken after `since` (the breaker closed)."""
    try:
        stamps = _prom_get(drill.prometheus, "/api/v1/query", query="timestamp(llm_circuit_breaker_state)")["result"]
        values = _prom_get(drill.prometheus, "/api/v1/query", query="llm_circuit_breaker_state")["result"]
    except (requests.RequestException, ValueError, KeyError):
        return False
    return (
        bool(stamps and values)
        and all(float(s["value"][1]) >= since for s in stamps)
        and all(float(v["value"][1]) == 0 for v in values)
    )


def _console_tail(ctx: Context) -> str:
    try:
        return ctx.stack.logs("console-log", tail=400)
    except Exception as exc:  # evidence of a failure path must not raise
        return f"(could not read console-log output: {exc})"

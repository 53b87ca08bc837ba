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
import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sealgate.analysis import parecer, promql
from sealgate.analysis.described import (
    DEFAULT_CONFIG,
    described_service,
    judged_since_start,
    param_error,
    prometheus,
    prometheus_config,
    rule_file_patterns,
    service_by_role,
    spec_entry,
    unjudged_values,
)
from sealgate.analysis.promtool import failed_tests, junit_from_promtool, promtool_findings
from sealgate.analysis.rulefiles import (
    Rule,
    all_rules,
    duration_s,
    expand,
    judge_rules,
    load_rules,
    read_rule_file,
    recordings,
)
from sealgate.api.context import Context, RunningCommand
from sealgate.api.params import DURATION, REPO_GLOBS, REPO_PATH, STRING_LIST
from sealgate.api.registry import check
from sealgate.backends.composefile import ComposeFile, flag_value
from sealgate.backends.description import ServiceDecl
from sealgate.backends.http import HttpAnswerError, request
from sealgate.checks.containerize import load_compose
from sealgate.kernel.errors import InputError
from sealgate.kernel.poll import poll
from sealgate.kernel.text import first_line, iso_to_epoch
from sealgate.kernel.yamlsource import Located, load_yaml
from sealgate.model.results import Severity

# --- reading rule files -------------------------------------------------------------------------------------------


# --- rules/promtool-check -----------------------------------------------------------------------------------------


def container_to_host(pattern: str, compose: ComposeFile, service: str, config_dir: str) -> tuple[list[str], str]:
    """Map a `rule_files` entry as the Prometheus container sees it (a path or a glob, relative to the configuration's
    directory) to the host path patterns behind it, the way Compose delivers files (`ComposeFile.host_patterns`, on
    `ComposeFile.file_at`): a bind mount of the file or of a directory above it, and, for a glob, every config or
    secret whose target it matches.

    Returns (host patterns, why none): no pattern when nothing of the repository is there, with the reason.
    """
    absolute = pattern if pattern.startswith("/") else f"{config_dir.rstrip('/')}/{pattern}"
    hosts = compose.host_patterns(service, absolute)
    if hosts:
        return hosts, ""
    mounted = compose.file_at(service, absolute)
    if mounted is None:
        return [], f"is under no bind mount of service {service} and is no target of its configs"
    return [], f"is on a {mounted.kind} mount of service {service} ({mounted.target}), not a file of the repository"


@check(
    "rules/promtool-check",
    title="promtool check rules and check config pass (PromQL syntax, YAML, duplicates)",
    titles={"pt-BR": "promtool check rules e check config passam (sintaxe PromQL, YAML, duplicatas)"},
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {"rules": REPO_GLOBS, "config": REPO_PATH, "service": {"type": "string"}},
    },
)
def promtool_check(ctx: Context) -> None:
    patterns = rule_file_patterns(ctx)
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
        running, config_rel, scrape_s = _start_config_check(ctx, paths, compose.result())
        started.append(running)
        _judge_short_ranges(ctx, rules, scrape_s)
        ctx.tool_version("promtool", first_line(version.wait().output).replace("promtool, version ", ""))
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
        _finish_config_check(ctx, running, config_rel)
    finally:
        pool.shutdown(wait=True)
        for command in started:
            command.discard()  # a check that stopped early leaves no promtool running


def _judge_short_ranges(ctx: Context, rules: list[Rule], scrape_s: float) -> None:
    """An alerting rule whose rate-like function reads a range holding one sample at most can never be pending,
    so its `for:` never matures: it never fires."""
    for rule in rules:
        if rule.kind != "alert":
            continue
        try:
            short = promql.short_ranges(rule.expr, 2 * scrape_s)
        except promql.PromQLError:
            continue  # promtool and the syntax check above say what is wrong with it
        for call in short:
            ctx.finding(
                f"rule {rule.name}: {call} spans less than two scrape intervals (2 × {scrape_s:g}s, the shortest "
                f"this Prometheus scrapes at): it holds one sample at most, so it is always empty and the rule can "
                f"never fire (its `for: {rule.for_s:g}s` never matures)",
                file=rule.file,
                line=rule.expr_line,
                rule=rule.name,
            )


def scrape_interval_s(config: dict[str, Any]) -> float:
    """The shortest interval any job of a Prometheus configuration is scraped at (Prometheus' default: 1m)."""
    default = duration_s((config.get("global") or {}).get("scrape_interval") or "1m")
    jobs = [duration_s(j["scrape_interval"]) for j in config.get("scrape_configs") or [] if isinstance(j, dict)
            and j.get("scrape_interval")]  # fmt: skip
    return min([default, *jobs])


def _start_config_check(ctx: Context, rule_paths: list[str], compose: ComposeFile) -> tuple[RunningCommand, str, float]:
    """Start promtool check config on a copy of prometheus.yml whose rule_files point where the compose file really
    takes them from in the container (promtool on the host cannot see container paths); with the shortest scrape
    interval the configuration sets. The configuration must be what the Prometheus container reads at its
    `--config.file`: bind-mounted (the file, or a directory above it) or delivered by a `configs:` entry."""
    config_rel = prometheus_config(ctx)
    service = service_by_role(ctx, "prometheus", "service")
    config_path = ctx.judge(config_rel)
    try:
        located = load_yaml(config_path, config_rel)
    except InputError as exc:
        ctx.fail(str(exc))
    config = dict(located.value or {})
    declared = compose.services.get(service)
    reads = DEFAULT_CONFIG["prometheus"]
    if declared is not None:
        reads = flag_value([*declared.entrypoint(), *declared.command()], "--config.file") or reads
    visible = compose.container_paths(service, config_path)
    config_target = reads
    if not visible:
        ctx.finding(
            f"{config_rel} is not mounted into service {service}: no bind mount of it or of a directory above it, "
            f"and no `configs:` entry ({ctx.description.compose_file})",
            file=ctx.description.compose_file,
            line=compose.line("services", service, "volumes") or compose.line("services", service),
        )
    elif reads not in visible:
        # Mounted, but not where Prometheus reads its configuration: it runs with another file (or the image's).
        ctx.finding(
            f"service {service} reads its configuration at {reads}, but {config_rel} is mounted at "
            f"{', '.join(visible)} ({ctx.description.compose_file})",
            file=ctx.description.compose_file,
            line=compose.line("services", service, "command") or compose.line("services", service),
        )
        config_target = visible[0]
    mapped: list[str] = []
    loaded: set[str] = set()
    for index, pattern in enumerate(config.get("rule_files") or []):
        line = located.line_of(("rule_files", index))
        hosts, why = container_to_host(str(pattern), compose, service, str(Path(config_target).parent))
        if not hosts:
            ctx.finding(
                f"rule_files entry {pattern!r} {why}: the container loads no rules from it",
                file=config_rel,
                line=line,
            )
            continue
        matches = sorted({match for host in hosts for match in glob.glob(host)})
        if not matches:
            ctx.finding(
                f"rule_files entry {pattern!r} matches no file in the repository (it maps to "
                f"{', '.join(_display(ctx, host) for host in hosts)})",
                file=config_rel,
                line=line,
            )
        loaded.update(_display(ctx, m) for m in matches)
        mapped.extend(hosts)
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
    try:
        scrape_s = scrape_interval_s(config)
    except ValueError as exc:
        ctx.finding(f"scrape_interval: {exc}", file=config_rel)
        scrape_s = 0.0  # promtool check config says what is wrong; no range is judged against it
    running = ctx.start(["promtool", "check", "config", "--syntax-only", str(temp)], timeout=120)
    return running, config_rel, scrape_s


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


def _supports_junit(ctx: Context) -> bool:
    help_text = ctx.run(["promtool", "test", "rules", "--help"], timeout=30)
    return "--junit" in help_text.output


@check(
    "rules/promtool-test",
    title="promtool test rules: every unit test of the rules passes (JUnit attached)",
    titles={"pt-BR": "promtool test rules: todo teste unitário das regras passa (JUnit anexado)"},
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["tests"],
        "properties": {"tests": REPO_GLOBS, "rules": REPO_GLOBS},
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
                f"promtool test {name!r} failed: {first_line(text)}",
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
    for rule in all_rules([read_rule_file(ctx, f) for f in expand(ctx, rule_file_patterns(ctx))]):
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
    "apart rules of one name (a warning/critical pair tells itself apart by severity); `severity: null` states that "
    "the alert carries no severity label",
    "properties": {
        "alert": {"type": "string"},
        "record": {"type": "string"},
        "severity": {"type": ["string", "null"]},
        "for": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    # if/then/else rather than oneOf: a spec copied from a mixin holds thousands of entries, validated at each load.
    "if": {"required": ["record"]},
    "then": {"properties": {"alert": False, "for": False}},
    "else": {"required": ["alert", "severity", "for"]},
    "examples": [{"alert": "ServiceDown", "severity": "critical", "for": "1m"}],
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
    titles={"pt-BR": "Exatamente as regras e grupos da spec (nomes, severidades, for, anotações)"},
    requires=("rules/promtool-check",),
    params={
        "type": "object",
        "additionalProperties": False,
        "required": ["groups"],
        "properties": {
            "rules": REPO_GLOBS,
            "groups": {"type": "object", "additionalProperties": {"type": "array", "items": EXPECTED_RULE}},
            "annotations": STRING_LIST,
            "removed": {"type": "array", "items": {"type": "string"}},
        },
    },
)
def inventory(ctx: Context) -> None:
    """Rules are keyed by kind, name and labels, not by name alone: a mixin defines one alert twice (warning and
    critical, with their own `for`) and recording rules next to alerts; an inventory copied from it must pass."""
    files = load_rules(ctx, rule_file_patterns(ctx))
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
    severity = entry.entry.get("severity")
    which = f"severity {severity}" if severity is not None else "no severity label"
    name = f"{rule.kind} {rule.name}" + (f" ({which})" if paired else "")
    where = {"file": rule.file, "line": rule.line}
    if rule.group != entry.group:
        ctx.finding(f"{name} is in group {rule.group!r}, the spec puts it in {entry.group!r}", **where)
    if "severity" in entry.entry and rule.labels.get("severity") != entry.entry["severity"]:
        carried = rule.labels.get("severity")
        has = f"severity {carried!r}" if carried is not None else "no severity label"
        said = f"says {severity!r}" if severity is not None else "says it carries none"
        ctx.finding(f"{name} has {has}, the spec {said}", **where)
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

METRIC_TARGETS_PARAM: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"type": "string"},
    "description": "instead of `target`: every scraped service whose metrics the rules read (the application's, "
    "node-exporter's, cAdvisor's…), each named as a described service or as a role (`target`: every scraped "
    "service); a metric must be exported by one of them, at its described metrics_path",
}


@check(
    "rules/metrics-exist",
    title="Every metric and label every rule reads exists in the scraped target's metrics and in Prometheus",
    titles={"pt-BR": "Toda métrica e label lidos por cada regra existem nas métricas do alvo coletado e no Prometheus"},
    needs_stack=True,
    requires=("rules/promtool-check",),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rules": REPO_GLOBS,
            "target": {
                "type": "string",
                "description": "stack service whose metrics the rules are about (default: the described main target)",
            },
            "targets": METRIC_TARGETS_PARAM,
            "metrics_path": {"type": "string", "description": "with `target`; default: its described metrics_path"},
            "min_age": {**DURATION, "description": "a metric gone from Prometheus for less is a warning (default 1h)"},
            "lookback": {**DURATION, "description": "how far back Prometheus' history is read (default 7d)"},
        },
        # One target with its own metrics path, or several at their described paths.
        "allOf": [{"not": {"required": ["target", "targets"]}}, {"not": {"required": ["targets", "metrics_path"]}}],
    },
)
def metrics_exist(ctx: Context) -> None:
    """The parecer (analysis/parecer.py) on every rule: metrics, labels and label values against the targets'
    /metrics and the running Prometheus, recorded series through their rules' inputs, absent()/`or vector()`/`unless`
    by meaning. Each finding names its rule and metric, so a waiver can name them."""
    rules = all_rules(load_rules(ctx, rule_file_patterns(ctx)))
    prom = prometheus(ctx)
    judged_since_start(ctx, prom)
    urls = {decl.name: ctx.stack.url(decl.name) + _metrics_path(ctx, decl) for decl in _metric_targets(ctx)}
    source = parecer.PrometheusSource(
        prom.base,
        scope="since the stack started",
        min_age_s=duration_s(ctx.params.get("min_age", "1h")),
        lookback_s=duration_s(ctx.params.get("lookback", "7d")),
    )
    try:
        expositions = [_exposition(ctx, target, url) for target, url in urls.items()]
        alerts = [rule.name for rule in rules if rule.kind == "alert"]
        judge = parecer.Parecer(
            expositions, source, recordings(rules), alerts=alerts, unjudged_values=unjudged_values(ctx)
        )
        judged = judge_rules(judge, rules)
    except parecer.SourceError as exc:
        ctx.error(str(exc))
    per_rule: dict[str, list[str]] = {}
    for rule, result in judged:
        if result.syntax_error is not None:
            ctx.finding(
                f"rule {rule.name}: PromQL syntax error: {result.syntax_error}",
                file=rule.file,
                line=rule.expr_line,
                rule=rule.name,
            )
            continue
        assert result.analysis is not None
        per_rule[rule.name] = list(dict.fromkeys(str(use.ref) for use in result.analysis.uses))
        for verdict in result.verdicts:
            ctx.finding(
                parecer.rule_message(rule.kind, rule.name, verdict),  # the words `sealgate lint` uses
                file=rule.file,
                line=parecer.rule_line(rule, verdict),
                severity=Severity(verdict.severity),
                rule=rule.name,
                metric=verdict.metric,
            )
    if len(urls) == 1:
        ctx.record("metrics_url", next(iter(urls.values())))  # as sealed evidence of one target records it
    ctx.record("metrics_urls", urls)
    ctx.record("metrics_by_rule", per_rule)
    ctx.record("exported_count", len(judge.exposition.names) if judge.exposition else 0)
    ctx.record("min_age_s", source.min_age_s)


def _metric_targets(ctx: Context) -> list[ServiceDecl]:
    """The services whose expositions the rules are judged against: `targets` (service names or roles, in order,
    each service once), else `target`, else the described main target."""
    names = ctx.params.get("targets")
    if not names:
        if ctx.params.get("target"):
            return [described_service(ctx, str(ctx.params["target"]), ("target",))]
        return [ctx.description.main_target()]
    description = ctx.description
    found: dict[str, ServiceDecl] = {}
    for index, name in enumerate(str(n) for n in names):
        by_role = description.with_role(name)
        if name in description.services:
            found.setdefault(name, description.services[name])
        elif by_role:
            found.update({decl.name: decl for decl in by_role if decl.name not in found})
        else:
            roles = sorted({decl.role for decl in description.services.values()})
            param_error(
                ctx,
                ("targets", index),
                f"no service and no role {name!r} in {description.path}",
                f"services: {', '.join(description.services)}; roles: {', '.join(roles)}",
            )
    return list(found.values())


def _metrics_path(ctx: Context, decl: ServiceDecl) -> str:
    """`metrics_path` goes with `target` only (the schema refuses it beside `targets`)."""
    return str(ctx.params.get("metrics_path") or decl.metrics_path)


def _exposition(ctx: Context, target: str, url: str) -> parecer.Exposition:
    """A target's metrics page as Prometheus scrapes it, attached to the evidence and parsed."""
    answer = request("GET", url)
    if not answer.ok or not isinstance(answer.body, str):
        ctx.error(f"GET {url}: HTTP {answer.status}, not a text exposition")
    ctx.attach(f"{target}-metrics.txt", answer.body)
    return parecer.Exposition.parse(answer.body, f"{target} (GET {url})")


# --- rules/loaded-live --------------------------------------------------------------------------------------------


def _normalise(expr: str) -> str:
    try:
        return str(promql.parse(expr))
    except promql.PromQLError:
        return " ".join(expr.split())


@check(
    "rules/loaded-live",
    title="The running Prometheus loaded exactly the repository's rules, all healthy",
    titles={"pt-BR": "O Prometheus em execução carregou exatamente as regras do repositório, todas saudáveis"},
    needs_stack=True,
    requires=("rules/promtool-check",),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rules": REPO_GLOBS,
            "groups": {"type": "integer", "minimum": 1},
            "rule_count": {"type": "integer", "minimum": 1},
        },
    },
)
def loaded_live(ctx: Context) -> None:
    rules = all_rules(load_rules(ctx, rule_file_patterns(ctx)))
    prom = prometheus(ctx)
    where = f"{prom.base}/api/v1/rules"
    started = ctx.stack.started_at or 0.0
    groups: list[dict[str, Any]] = []
    live: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def evaluated() -> bool:
        """Every rule evaluated at least once by this Prometheus since the stack started: `health` means something."""
        nonlocal groups, live
        try:
            groups = list((prom.api("rules") or {}).get("groups") or [])
        except HttpAnswerError as exc:
            ctx.error(f"GET {where}: {exc}")
        live = [(g, r) for g in groups for r in g.get("rules", [])]
        return bool(live) and all(iso_to_epoch(r.get("lastEvaluation", "")) >= started for _g, r in live)

    done, waited = poll(evaluated, timeout=60, interval=1.0, sleep=ctx.sleep)
    if not done:
        ctx.finding("not every rule was evaluated within 60 s of asking", json_path=f"{where} $.data.groups")
    ctx.note_wait("every rule evaluated since the stack started", waited)
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

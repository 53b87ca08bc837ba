"""`sealgate lint`: the parecer de executabilidade for any repository — no sprint spec, no stack.

Reads rule files (`--rules`) and Grafana dashboards (`--dashboards`), or file names (what pre-commit passes) sorted
into rule files and dashboards by their content, checks the rules with `promtool check rules` (run while the files
are parsed here, each file once), parses every rule and panel query, and judges every metric and label against the
given expositions (`--metrics` files or URLs) and/or a Prometheus (`--prometheus`) with the same code a seal's rules
and dashboard stages run (analysis/rulefiles.py `judge_rules`, analysis/parecer.py `judge_panels`): a seal and `lint`
never disagree. Each finding names the check that reports the same thing in a seal.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sealgate import __version__
from sealgate.analysis import parecer, promql, promtool, rulefiles
from sealgate.analysis.grafana_query import dashboard_queries, read_dashboard, render_prometheus, variables_of
from sealgate.kernel.errors import EXIT_OK, EXIT_REFUSED, InputError, Problem
from sealgate.kernel.jsonpos import value_lines

PROMTOOL_TIMEOUT = 300.0


@dataclass(frozen=True)
class LintFinding:
    check: str  # the sealgate check that reports the same finding in a seal
    kind: str  # what kind of problem (parecer.KINDS, or a syntax/shape kind)
    severity: str  # error | warning
    message: str
    file: str
    line: int | None = None
    json_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"check": self.check, "kind": self.kind, "severity": self.severity, "file": self.file}
        if self.line is not None:
            data["line"] = self.line
        if self.json_path is not None:
            data["json_path"] = self.json_path
        data["message"] = self.message
        return data

    def where(self) -> str:
        text = self.file + (f":{self.line}" if self.line is not None else "")
        return text + (f" {self.json_path}" if self.json_path else "")


# Kinds that are not a parecer verdict, with what they mean.
OTHER_KINDS = {
    "rule-file": "a rule file sealgate cannot read (YAML, types)",
    "promtool": "what `promtool check rules --lint=all` reports",
    "promql-syntax": "a query that is not valid PromQL",
    "parser-disagreement": "promql-parser refuses what promtool accepts",
    "prometheus-refuses": "Prometheus' own parser refuses the panel query",
    "dashboard-file": "a dashboard sealgate cannot read (JSON, types)",
    "library-panel": "a library panel whose model is not in the file: its queries are not judged",
}


@dataclass
class LintOptions:
    root: Path
    rules: list[str] = field(default_factory=list)
    dashboards: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # file names, sorted by content (sort_files)
    metrics: list[str] = field(default_factory=list)
    prometheus: str | None = None
    min_age_s: float = parecer.MIN_AGE_S
    lookback_s: float = parecer.LOOKBACK_S
    target_labels: list[str] = field(default_factory=lambda: sorted(parecer.TARGET_LABELS))


@dataclass
class LintReport:
    findings: list[LintFinding]
    rule_files: int = 0
    rules: int = 0
    dashboards: int = 0
    queries: int = 0
    other_queries: dict[str, int] = field(default_factory=dict)  # not PromQL, by datasource type
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(f.severity == parecer.ERROR for f in self.findings)

    @property
    def warnings(self) -> int:
        return sum(f.severity == parecer.WARNING for f in self.findings)


def _display(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def expand(root: Path, patterns: list[str], option: str) -> list[Path]:
    """Files matching the globs (`**` crosses directories); a glob that matches nothing is bad input."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        matches = rulefiles.match_files(root, pattern)
        if not matches:
            raise InputError(Problem(option, f"{pattern!r} matches no file", "check the glob; quote it for the shell"))
        found.update(dict.fromkeys(matches))
    return list(found)


# --- inputs: globs by role, and file names sorted by what they hold -------------------------------------------------
# pre-commit passes every changed file of the types a hook filters (`sealgate lint FILE...`): a rule file is told from
# a dashboard, and both from any other YAML or JSON (a compose file, a workflow, a package.json), by content, never by
# name — teams keep rules in `alerts/*.yaml`, `rules.yml`, `*-prometheusRule.yaml`. What is neither is said and
# skipped, not an error, so the hook can be given every YAML and JSON file of a commit.

RULES, DASHBOARD = "rules", "dashboard"
# A top-level `groups:` key, as block YAML writes it (Prometheus', Thanos' and Mimir's rule files all do): found
# without parsing, so a rule file with a syntax error is still sorted as one, and its error reported at its line.
_TOP_LEVEL_GROUPS = re.compile(r"^groups[ \t]*:", re.MULTILINE)
# A line that starts or ends a YAML document (a manifest stream holds several; promtool reads one).
_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?:[ \t]|$)", re.MULTILINE)
_DASHBOARD_KEYS = ("panels", "rows", "dashboard")
_DASHBOARD_KEY_TEXT = re.compile(r'"(?:panels|rows|dashboard)"\s*:')
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: sorting reads every file once


@dataclass
class LintInputs:
    rules: list[str]  # repository-relative, as findings name them
    dashboards: list[Path]
    notes: list[str]  # each file given that was skipped, and why


def classify(name: str, text: str) -> tuple[str | None, str]:
    """What a file holds: RULES (a rule file — a top-level `groups:` — or a Prometheus Operator PrometheusRule),
    DASHBOARD (a JSON object with `panels`, `rows` or `dashboard`), or None and why it is neither."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        json_error = f"line {exc.lineno}: {exc.msg}"
    else:
        if isinstance(document, dict) and ("groups" in document or rulefiles.is_operator_rule(document)):
            return RULES, ""  # JSON is YAML: Prometheus reads a rule file written as JSON
        if isinstance(document, dict) and any(key in document for key in _DASHBOARD_KEYS):
            return DASHBOARD, ""
        return None, "JSON that is neither a dashboard (no `panels`, `rows` or `dashboard`) nor a rule file"
    if name.lower().endswith(".json"):
        if _DASHBOARD_KEY_TEXT.search(text):
            return DASHBOARD, ""  # a broken dashboard: its JSON error is a finding at its line
        return None, f"not valid JSON ({json_error}) and names no panels, rows or dashboard"
    if _TOP_LEVEL_GROUPS.search(text) or rulefiles.is_operator_kind(text):
        if _one_document(text):
            return RULES, ""  # the rule parse judges it, once
        try:
            documents = [d for d in yaml.load_all(text, Loader=_YAML_LOADER) if d is not None]
        except yaml.YAMLError:
            return RULES, ""  # a broken rule file: its YAML error is a finding at its line
        if len(documents) > 1:
            # A manifest stream (kustomize, helm output): Prometheus and promtool read one document per rule file.
            return None, f"{len(documents)} YAML documents in one file: a rule file or PrometheusRule is one document"
        return RULES, ""
    if text.lstrip().startswith("{"):  # YAML's flow style: `{groups: [...]}`
        try:
            document = yaml.load(text, Loader=_YAML_LOADER)  # a safe loader (CSafeLoader or SafeLoader)
        except yaml.YAMLError:
            document = None
        if isinstance(document, dict) and ("groups" in document or rulefiles.is_operator_rule(document)):
            return RULES, ""
    return None, "neither a rule file (no top-level `groups:`, not a PrometheusRule) nor a Grafana dashboard"


def _one_document(text: str) -> bool:
    """True when no document marker follows content, so the file is one YAML document (a leading `---` starts the
    only one) — known without parsing it; False when it may hold several (then a parse counts them)."""
    for marker in _DOCUMENT_MARKER.finditer(text):
        before = text[: marker.start()].splitlines()
        if any(line.strip() and not line.lstrip().startswith(("#", "%")) for line in before):
            return False
    return True


def sort_files(root: Path, names: list[str]) -> LintInputs:
    """The file names given as arguments, sorted by content (classify). A file that does not exist or cannot be read
    is bad input; one that is not UTF-8 text, or neither a rule file nor a dashboard, is noted and skipped."""
    inputs = LintInputs([], [], [])
    seen: set[Path] = set()
    for name in names:
        path = Path(name) if Path(name).is_absolute() else root / name
        if path.resolve() in seen:  # `a.yml` and `./a.yml`: one file
            continue
        seen.add(path.resolve())
        if path.is_dir():
            raise InputError(Problem(name, "is a directory", "give files, or a glob with --rules/--dashboards"))
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            hint = "names are relative to --repo: the current directory unless given"
            raise InputError(Problem(name, "no such file", hint)) from None
        except OSError as exc:
            raise InputError(Problem(name, f"cannot read: {exc.strerror}", "check its permissions")) from None
        except UnicodeDecodeError:
            inputs.notes.append(f"{_display(root, path)}: not UTF-8 text: skipped")
            continue
        kind, why = classify(path.name, text)
        if kind == RULES:
            inputs.rules.append(_display(root, path))
        elif kind == DASHBOARD:
            inputs.dashboards.append(path)
        else:
            inputs.notes.append(f"{_display(root, path)}: {why}: skipped")
    return inputs


def lint_inputs(options: LintOptions) -> LintInputs:
    """Every rule file and dashboard to lint: the globs' matches (a glob that matches nothing is bad input) and the
    file names sorted by content, each file once. Nothing at all to lint is bad input only when nothing was given:
    file names that are all skipped lint nothing, and pass (pre-commit gives the hook every changed YAML or JSON)."""
    if not options.rules and not options.dashboards and not options.files:
        raise InputError(
            Problem("sealgate lint", "nothing to lint", "give FILE..., --rules GLOB and/or --dashboards GLOB")
        )
    root = options.root
    given = sort_files(root, options.files)
    rules = [_display(root, p) for p in expand(root, options.rules, "--rules")]
    dashboards = expand(root, options.dashboards, "--dashboards")
    known = {p.resolve() for p in dashboards}
    return LintInputs(
        list(dict.fromkeys(rules + given.rules)),
        dashboards + [p for p in given.dashboards if p.resolve() not in known],
        given.notes,
    )


def _read_sources(options: LintOptions) -> tuple[list[parecer.Exposition], parecer.PrometheusSource | None]:
    expositions = []
    for item in options.metrics:
        try:
            if item.startswith(("http://", "https://")):
                expositions.append(parecer.read_exposition_url(item, f"GET {item}"))
            else:
                path = Path(item) if Path(item).is_absolute() else options.root / item
                try:
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise parecer.SourceError(f"{item}: cannot read: {exc}") from None
                expositions.append(parecer.Exposition.parse(text, _display(options.root, path)))
        except parecer.SourceError as exc:
            raise InputError(Problem("--metrics", str(exc), "give a /metrics URL or a text exposition file")) from None
    prometheus = None
    if options.prometheus:
        prometheus = parecer.PrometheusSource(
            options.prometheus, lookback_s=options.lookback_s, min_age_s=options.min_age_s, scope="now"
        )
        try:
            prometheus.prefetch(["up"])  # it answers, or the run stops here with one line
        except parecer.SourceError as exc:
            raise InputError(Problem("--prometheus", str(exc), "give the URL of a running Prometheus")) from None
    return expositions, prometheus


class _Promtool:
    """`promtool check rules` over every rule file, running while Python parses the same files. A Prometheus
    Operator PrometheusRule manifest is given to promtool as its spec, line for line (rulefiles.operator_rule_text), and
    promtool's words about it name the manifest."""

    def __init__(self, root: Path, files: list[str], notes: list[str]) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = tempfile.TemporaryFile()  # noqa: SIM115 (closed in result())
        self.specs = tempfile.TemporaryDirectory(prefix="sealgate-lint-")
        self.manifests: dict[str, str] = {}  # the spec file promtool reads -> the manifest it stands for
        checked = []
        for index, relative in enumerate(files):
            text = (root / relative).read_text(encoding="utf-8", errors="replace")
            spec = rulefiles.operator_rule_text(text)
            if spec is None and rulefiles.is_operator_kind(text):
                notes.append(f"{relative}: its PrometheusRule spec is not a block under `spec:`: promtool skipped it")
                continue
            if spec is not None:
                derived = Path(self.specs.name) / f"{index}-{Path(relative).name}"
                derived.write_text(spec, encoding="utf-8")
                self.manifests[str(derived)] = relative
                relative = str(derived)
            checked.append(relative)
        if shutil.which("promtool") and checked:
            argv = ["promtool", "check", "rules", "--lint=all", "--lint-fatal", *checked]
            self.proc = subprocess.Popen(argv, cwd=root, stdout=self.output, stderr=subprocess.STDOUT)

    def result(self) -> tuple[int, str] | None:
        try:
            if self.proc is None:
                return None
            try:
                self.proc.wait(timeout=PROMTOOL_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -1, f"promtool check rules timed out after {PROMTOOL_TIMEOUT:g} s"
            self.output.seek(0)
            output = self.output.read().decode(errors="replace")
            for derived, manifest in self.manifests.items():
                output = output.replace(derived, manifest)
            return self.proc.returncode, output
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.output.close()
            self.specs.cleanup()


def lint(options: LintOptions) -> LintReport:
    """Every finding about the given files; InputError (exit 2) for input that cannot be read at all."""
    root = options.root
    inputs = lint_inputs(options)
    rule_paths, dashboard_paths = inputs.rules, inputs.dashboards
    expositions, prometheus = _read_sources(options)
    report = LintReport([], notes=list(inputs.notes))
    report.sources = [e.origin for e in expositions] + ([f"Prometheus {prometheus.url}"] if prometheus else [])
    findings = report.findings
    promtool = _Promtool(root, rule_paths, report.notes)
    try:
        rule_set = _read_rules(root, rule_paths, findings)
    finally:
        checked = promtool.result()
    report.rule_files, report.rules = len(rule_paths), len(rule_set)
    _promtool_findings(checked, rule_set, rule_paths, findings, report)
    alerts = [rule.name for rule in rule_set if rule.kind == "alert"]
    judge = parecer.Parecer(expositions, prometheus, rulefiles.recordings(rule_set), options.target_labels, alerts)
    try:
        _judge_rules(judge, rule_set, findings)
        for path in dashboard_paths:
            _judge_dashboard(judge, prometheus, root, path, report)
    except parecer.SourceError as exc:
        raise InputError(Problem("--prometheus", str(exc))) from None
    if not judge.judges_existence:
        report.notes.append("no --metrics or --prometheus: metrics and labels were not judged, only syntax")
    if judge.unjudged_labels:
        labels = ", ".join(sorted(judge.unjudged_labels))
        report.notes.append(
            f"the values of {labels} matchers were not judged: Prometheus adds those labels at scrape time, so only "
            "--prometheus knows them"
        )
    report.dashboards = len(dashboard_paths)
    findings.sort(key=lambda f: (f.file, f.line or 0, f.json_path or "", f.message))
    return report


def _read_rules(root: Path, paths: list[str], findings: list[LintFinding]) -> list[rulefiles.Rule]:
    found: list[rulefiles.Rule] = []
    for relative in paths:
        problems: list[tuple[str, str, int | None]] = []
        parsed = rulefiles.parse_rule_file((root / relative).read_bytes(), relative, problems)
        findings += [LintFinding("rules/promtool-check", "rule-file", "error", w, f, n) for w, f, n in problems]
        found += parsed.rules
    return found


def _promtool_findings(
    checked: tuple[int, str] | None,
    rule_set: list[rulefiles.Rule],
    paths: list[str],
    findings: list[LintFinding],
    report: LintReport,
) -> None:
    if checked is None:
        if paths:
            report.notes.append("promtool not found: rule syntax judged by promql-parser alone")
        reported: set[str] = set()
    else:
        exit_code, output = checked
        problems = promtool.promtool_problems(output, rule_set) if exit_code else []
        for problem in problems:
            findings.append(
                LintFinding(
                    "rules/promtool-check",
                    "promtool",
                    "error",
                    f"promtool: {problem.what}",
                    problem.file or paths[0],
                    problem.line,
                )
            )
        if exit_code and not problems:
            findings.append(
                LintFinding(
                    "rules/promtool-check",
                    "promtool",
                    "error",
                    f"promtool check rules exited {exit_code}: {output.strip()[-500:]}",
                    paths[0],
                )
            )
        reported = {f.file for f in findings if f.severity == "error"}
    for rule in rule_set:
        try:
            promql.analyse(rule.expr)  # cached: the parecer's judgement below reads the same analysis
        except promql.PromQLError as exc:
            if checked is None:
                findings.append(
                    LintFinding(
                        "rules/promtool-check",
                        "promql-syntax",
                        "error",
                        f"rule {rule.name}: not valid PromQL: {exc}",
                        rule.file,
                        rule.expr_line,
                    )
                )
            elif rule.file not in reported:
                findings.append(
                    LintFinding(
                        "rules/promtool-check",
                        "parser-disagreement",
                        "warning",
                        f"rule {rule.name}: promql-parser rejects the expression promtool accepts: {exc}",
                        rule.file,
                        rule.expr_line,
                    )
                )


def _judge_rules(judge: parecer.Parecer, rule_set: list[rulefiles.Rule], findings: list[LintFinding]) -> None:
    for rule, result in rulefiles.judge_rules(judge, rule_set):
        for verdict in result.verdicts:
            findings.append(
                LintFinding(
                    "rules/metrics-exist",
                    verdict.kind,
                    verdict.severity,
                    parecer.rule_message(rule.kind, rule.name, verdict),  # the words rules/metrics-exist uses
                    rule.file,
                    parecer.rule_line(rule, verdict),
                )
            )


def _judge_dashboard(
    judge: parecer.Parecer, prometheus: parecer.PrometheusSource | None, root: Path, path: Path, report: LintReport
) -> None:
    relative = _display(root, path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.findings.append(
            LintFinding("dashboard/json-structure", "dashboard-file", "error", f"cannot read: {exc}", relative)
        )
        return
    dashboard, problems = read_dashboard(text)
    lines: dict[str, int] | None = None

    def line_of(json_path: str) -> int | None:
        nonlocal lines  # the lines of the file's values, found once and only when a finding needs one
        if lines is None:
            lines = value_lines(text)
        return lines.get(json_path)

    for where, what in problems:
        line = int(where[1:]) if where.startswith(":") else line_of(where)
        json_path = where if where.startswith("$") else None
        report.findings.append(
            LintFinding("dashboard/json-structure", "dashboard-file", "error", what, relative, line, json_path)
        )
    if dashboard is None:
        return
    found = dashboard_queries(dashboard)
    for kind, count in found.other.items():
        report.other_queries[kind] = report.other_queries.get(kind, 0) + count
    report.queries += len(found.queries)
    for where, name in found.library_panels:
        report.findings.append(
            LintFinding(
                "dashboard/queries-metrics",
                "library-panel",
                "warning",
                f"library panel {name!r} is not in the file (export the dashboard with its library panels): its "
                "queries are not judged",
                relative,
                line_of(where),
                where,
            )
        )
    variables = variables_of(dashboard)
    options = parecer.variable_options(prometheus)
    for item in parecer.judge_panels(judge, dashboard, found.queries):
        query = item.query
        at = {"file": relative, "line": line_of(query.json_path), "json_path": query.json_path}
        if item.judged.syntax_error is not None:
            message = f"{query.label()}: not valid PromQL: {item.judged.syntax_error}"
            report.findings.append(LintFinding("dashboard/queries-metrics", "promql-syntax", "error", message, **at))
            continue
        if prometheus is not None:
            refusal = prometheus.refuses(render_prometheus(query.expr, variables, options).text)
            if refusal is not None:
                message = f"{query.label()}: Prometheus refuses the query: {refusal}"
                report.findings.append(
                    LintFinding("dashboard/queries-metrics", "prometheus-refuses", "error", message, **at)
                )
        for verdict in item.judged.verdicts:
            message = f"{query.label()}: {verdict.message}"
            report.findings.append(
                LintFinding("dashboard/queries-metrics", verdict.kind, verdict.severity, message, **at)
            )


def lint_sarif(findings: list[LintFinding], kinds: dict[str, str]) -> dict[str, Any]:
    """SARIF 2.1.0 for `sealgate lint`: a rule per kind of finding (described by `kinds`), a result per finding at
    its file and line; the JSON path (dashboards) and the seal check that reports the same are result properties."""
    used = sorted({f.kind for f in findings})
    results = []
    for finding in findings:
        location: dict[str, Any] = {"artifactLocation": {"uri": finding.file}}
        if finding.line is not None:
            location["region"] = {"startLine": finding.line}
        properties = {"check": finding.check, **({"json_path": finding.json_path} if finding.json_path else {})}
        results.append(
            {
                "ruleId": finding.kind,
                "ruleIndex": used.index(finding.kind),
                "level": "error" if finding.severity == "error" else "warning",
                "message": {"text": finding.message},
                "locations": [{"physicalLocation": location}],
                "properties": properties,
            }
        )
    rules = [{"id": kind, "shortDescription": {"text": kinds.get(kind, kind)}} for kind in used]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {"tool": {"driver": {"name": "sealgate lint", "version": __version__, "rules": rules}}, "results": results}
        ],
    }


def run(options: LintOptions, fmt: str = "text", out: Callable[[str], None] = print) -> int:
    """`sealgate lint`: the findings in `fmt` (text, json, sarif) on `out`, notes and the summary line after them (on
    stderr for json and sarif, which must stay one document); exit 0 with no error finding, 1 with some (warnings
    alone do not fail: a seal passes with them too). Bad input raises InputError (exit 2)."""

    def note(line: str) -> None:
        if fmt == "text":
            out(line)
        else:
            print(line, file=sys.stderr)

    report = lint(options)
    if fmt == "json":
        out(json.dumps([f.to_json() for f in report.findings], indent=2))
    elif fmt == "sarif":
        out(json.dumps(lint_sarif(report.findings, {**parecer.KINDS, **OTHER_KINDS}), indent=2))
    else:
        for finding in report.findings:
            out(f"{finding.where()}: {finding.severity}: {finding.message} [{finding.check} {finding.kind}]")
    for text in report.notes:
        note(f"note: {text}")
    other = ", ".join(f"{n} {kind}" for kind, n in sorted(report.other_queries.items()))
    note(
        f"sealgate lint: {report.errors} error(s), {report.warnings} warning(s) — {report.rules} rules in "
        f"{report.rule_files} files, {report.dashboards} dashboards ({report.queries} PromQL queries"
        + (f"; not PromQL, not judged: {other}" if other else "")
        + ")"
        + (f"; judged against {', '.join(report.sources)}" if report.sources else "")
    )
    return EXIT_REFUSED if report.errors else EXIT_OK

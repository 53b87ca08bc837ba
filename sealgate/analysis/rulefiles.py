"""Prometheus rule files as sealgate reads them: each group and rule with the line it is on, Prometheus durations,
PrometheusRule manifests (kube-prometheus ships its rules so) read as their `spec`, and rule-file globs expanded
inside the repository. Parsed once per content: every check of a rules stage and `sealgate lint` read the same files.
"""

from __future__ import annotations

import glob
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sealgate.analysis import parecer, promql
from sealgate.kernel.errors import InputError
from sealgate.kernel.yamlsource import Located, json_path, parse_yaml

if TYPE_CHECKING:  # only for typing: `sealgate lint` runs without the check API's imports
    from sealgate.api.context import Context

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
    (a seal's rules checks and `sealgate lint` read the same files for the same glob)."""
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


# Parsed rule files by (path, content digest): every check of a rules stage reads the same files, and parsing ten
# thousand rules with line numbers costs more than promtool's own check. With the findings the parse produced, replayed.
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


def recordings(rules: list[Rule]) -> list[parecer.Recording]:
    """The recording rules of a rule set, for the parecer (a recorded series exists through its rule's inputs)."""
    return [parecer.Recording(r.name, r.expr, r.labels, r.where()) for r in rules if r.kind == "record"]


def judge_rules(judge: parecer.Parecer, rules: list[Rule]) -> list[tuple[Rule, parecer.Judged]]:
    """Every rule's expression judged by the parecer (the one judgement `rules/metrics-exist` and `sealgate lint`
    share)."""
    return list(zip(rules, parecer.judge_all(judge, [rule.expr for rule in rules]), strict=True))


def verdict_line(rule: Rule, verdict: parecer.MetricVerdict) -> int:
    return rule.metric_line(verdict.metric) if verdict.metric else rule.expr_line

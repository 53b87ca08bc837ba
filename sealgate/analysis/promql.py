"""PromQL helpers shared by the checks that judge queries (alert rules, dashboard panels).

Metric names come from a real PromQL parser (`promql-parser`, the Rust parser of the Prometheus ecosystem), never
from a regex: `rate(llm_errors_total[5m])`, `{__name__="x"}`, `sum by (le) (...)`, label names, function names
and string arguments are told apart by the grammar. What exists is the parecer's business (analysis/parecer.py:
expositions and Prometheus as metric sources).

    refs = selectors(expr)                # every vector selector: exact name or a __name__ regex (PromQLError if bad)
    names = metric_names(expr)            # just the exact names, as a set
    missing_patterns(refs, available)     # __name__ regexes matching nothing

Grafana expressions carry template variables (`$__rate_interval`, `$job`) the parser cannot read:
analysis/grafana_query.py substitutes each by its position first.

For judging a query the way cloudflare/pint's promql/series does, `analyse(expr)` says how each selector is *used*:
under `absent()`, as the optional side of `... or vector(0)` / `... unless x`, under `rate()`, or read raw into a
comparison; `output_labels(tree, ...)` infers the labels a recording rule's series carry (analysis/parecer.py).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# Series Prometheus writes itself: per scrape target (`up`, `scrape_*`) and per alerting rule (`ALERTS*`). A rule
# on them needs nothing from the code it watches.
GENERATED_METRICS = frozenset(
    {
        "up",
        "ALERTS",
        "ALERTS_FOR_STATE",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "scrape_timeout_seconds",
        "scrape_sample_limit",
        "scrape_body_size_bytes",
    }
)

# Suffixes a metric family of each type exposes (the text format's sample names), so a family that is declared
# (`# TYPE`) but has no sample yet still counts as exported.
_FAMILY_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
    "untyped": ("",),
}


class PromQLError(ValueError):
    """The expression is not valid PromQL; the message is the parser's."""


@dataclass(frozen=True)
class MetricRef:
    """One vector selector of an expression: an exact metric name, or a regex on `__name__` (then `name` is None)."""

    name: str | None
    pattern: str | None = None  # `__name__=~"..."` (anchored, as Prometheus anchors it)
    negated: bool = False  # `__name__!~"..."`: selects "everything but", cannot be checked for existence

    def __str__(self) -> str:
        if self.name:
            return self.name
        return f'{{__name__{"!~" if self.negated else "=~"}"{self.pattern}"}}'


def parse(expr: str) -> object:
    """The expression's AST (promql_parser node); PromQLError with the parser's message when it is not valid."""
    import promql_parser  # imported here: checks that never judge PromQL do not load the native extension

    try:
        return promql_parser.parse(expr)
    except (ValueError, TypeError) as exc:
        raise PromQLError(str(exc)) from None


def selectors(expr: str) -> list[MetricRef]:
    """Every vector selector in `expr`, in the order they appear (duplicates kept once)."""
    import promql_parser

    tree = parse(expr)
    found: dict[MetricRef, None] = {}

    def visit(node: object) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        if node.name:
            found[MetricRef(node.name)] = None
            return
        for matcher in node.matchers.matchers:  # a nameless selector: {__name__="x"} or {__name__=~"x.*"}
            if matcher.name != "__name__":
                continue
            if matcher.op == promql_parser.MatchOp.Equal:
                found[MetricRef(matcher.value)] = None
            elif matcher.op in (promql_parser.MatchOp.Re, promql_parser.MatchOp.NotRe):
                negated = matcher.op == promql_parser.MatchOp.NotRe
                found[MetricRef(None, matcher.value, negated)] = None

    promql_parser.walk(tree, visit)
    return list(found)


def metric_names(expr: str) -> set[str]:
    """The exact metric names `expr` reads (regex `__name__` selectors excluded: see `selectors`)."""
    return {ref.name for ref in selectors(expr) if ref.name}


def missing_patterns(refs: Iterable[MetricRef], available: Iterable[str]) -> list[MetricRef]:
    """`__name__=~` selectors that match none of `available` (Prometheus anchors the regex at both ends)."""
    have = list(available)
    missing = []
    for ref in refs:
        if ref.name or ref.negated or ref.pattern is None:
            continue
        try:
            pattern = re.compile(f"^(?:{ref.pattern})$")
        except re.error:
            missing.append(ref)  # the Go RE2 syntax Prometheus uses and Python's differ at the edges: report it
            continue
        if not any(pattern.match(name) for name in have):
            missing.append(ref)
    return missing


_SAMPLE_LINE = re.compile(r"[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)")


def written_sample_names(text: str) -> set[str]:
    """Sample names exactly as a text exposition writes them (comment lines skipped)."""
    names = set()
    for line in text.splitlines():
        match = _SAMPLE_LINE.match(line)
        if match and not line.lstrip().startswith("#"):
            names.add(match.group(1))
    return names


def bare_counter(family_type: str, family: str, written: set[str]) -> bool:
    """A counter whose samples the text writes without `_total` (the classic text format allows it, and most
    exporters write their counters so: `pg_stat_database_xact_commit`). prometheus_client's parser renames them
    `<name>_total`; Prometheus keeps the name as written, so that is the name a query must use."""
    return family_type == "counter" and family in written and f"{family}_total" not in written


def family_sample_names(family_type: str, family: str, written: set[str]) -> tuple[str, ...]:
    """The sample names a family exposes by its type (so one declared but not yet observed counts as exported)."""
    if bare_counter(family_type, family, written):
        return (family,)
    return tuple(family + suffix for suffix in _FAMILY_SUFFIXES.get(family_type, ("",)))


def sample_name(family_type: str, family: str, parsed: str, written: set[str]) -> str:
    """A sample's name as Prometheus stores it (see `bare_counter`)."""
    return family if bare_counter(family_type, family, written) and parsed == f"{family}_total" else parsed


def locate(text_lines: list[str], start_line: int, token: str) -> int:
    """1-based line, at or after `start_line`, of the first whole-word occurrence of `token` (a metric name) in
    a YAML block that starts at `start_line`; `start_line` itself when it cannot be found there.

    For findings: a multi-line `expr: |` names its metric several lines below the `expr` key.
    """
    if start_line < 1 or start_line > len(text_lines):
        return start_line
    word = re.compile(rf"(?<![A-Za-z0-9_:]){re.escape(token)}(?![A-Za-z0-9_:])")
    indent = len(text_lines[start_line - 1]) - len(text_lines[start_line - 1].lstrip())
    for number in range(start_line, len(text_lines) + 1):
        line = text_lines[number - 1]
        if number > start_line and line.strip() and len(line) - len(line.lstrip()) <= indent:
            break  # left the block: the next key of the same rule (or a new rule)
        if word.search(line.split("#", 1)[0] if number > start_line else line):
            return number
    return start_line


# --- how a query uses each selector (the judgement of checks/parecer.py) -----------------------------------------

COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
RATE_FUNCTIONS = frozenset({"rate", "irate", "increase"})
ABSENCE_FUNCTIONS = frozenset({"absent", "absent_over_time"})
# Reading a counter's raw value under these is fine (cloudflare/pint's promql/counter list): they look at changes,
# presence or timestamps, never at the value's absolute size.
COUNTER_SAFE_FUNCTIONS = frozenset(
    {
        "absent",
        "absent_over_time",
        "present_over_time",
        "changes",
        "resets",
        "count_over_time",
        "increase",
        "irate",
        "rate",
        "timestamp",
    }
)
COUNTER_SAFE_AGGREGATIONS = frozenset({"count", "group"})
# Functions that answer even when their vector argument is empty (scalar() gives NaN): a selector under them does not
# empty the query. absent()/absent_over_time() too, and more: they answer *because* it is empty (see Use.absence).
EMPTY_TOLERANT_FUNCTIONS = frozenset({"scalar"})
_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


@dataclass(frozen=True)
class Matcher:
    """A label matcher of a selector (never `__name__`)."""

    label: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    def requires_label(self) -> bool:
        """Only series that carry the label can match: `l="v"` with v non-empty, `l=~"re"` with re not matching ""
        (`l=""`, `l!="v"`, `l!~"re"` also match series without the label)."""
        if self.op == "=":
            return self.value != ""
        if self.op == "=~":
            try:
                return re.fullmatch(self.value, "") is None
            except re.error:
                return False  # RE2 syntax Python cannot read: not judged
        return False

    def __str__(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


@dataclass(frozen=True)
class Use:
    """One vector selector as its query uses it."""

    ref: MetricRef
    matchers: tuple[Matcher, ...]  # the label matchers other than `__name__` (none when it has `or` alternatives)
    absence: bool = False  # under absent()/absent_over_time(): the query is about it missing
    fallback: bool = False  # left of `or vector(...)`: the query falls back to a constant when it is missing
    presence_only: bool = False  # right of `unless` (not compared): only whether it is there matters
    rate_function: str | None = None  # rate()/irate()/increase() applied to it directly
    raw_comparison: bool = False  # its raw value reaches a comparison with no rate-like function in between
    # The whole query returns nothing whenever this selector does (an alert on it can never fire): false under
    # absent(), scalar(), on either side of `or`, right of `unless` and in a scalar argument such as topk's k.
    empties_query: bool = False
    # Under an absent() whose answer is the query's own (`absent(…)` alone, or a side of a top-level `or`): when
    # that absent() is always true, so is the query (an alert on it always fires).
    absent_answers: bool = False

    @property
    def optional(self) -> bool:
        return self.absence or self.fallback or self.presence_only

    def __str__(self) -> str:
        base = self.ref.name or ""
        inner = ", ".join(str(m) for m in self.matchers)
        if not self.ref.name:
            inner = ", ".join(
                filter(None, [f'__name__{"!~" if self.ref.negated else "=~"}"{self.ref.pattern}"', inner])
            )
        return f"{base}{{{inner}}}" if inner or not base else base


@dataclass
class Analysis:
    expr: str
    tree: object
    uses: list[Use]

    def names(self) -> set[str]:
        return {u.ref.name for u in self.uses if u.ref.name}


def _strip(node: object) -> object:
    import promql_parser

    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    return node


def _is_vector_fallback(node: object) -> bool:
    """`vector(0)` (or `on() vector(0)`'s right side): a constant a query falls back to."""
    import promql_parser

    node = _strip(node)
    return isinstance(node, promql_parser.Call) and node.func.name == "vector"


def _is_comparison(node: object) -> bool:
    import promql_parser

    node = _strip(node)
    return isinstance(node, promql_parser.BinaryExpr) and str(node.op) in COMPARISONS


def _selector_use(node: Any, flags: dict[str, Any]) -> Use | None:
    matchers: list[Matcher] = []
    ref: MetricRef | None = MetricRef(node.name) if node.name else None
    for matcher in node.matchers.matchers:
        op = _OPS[str(matcher.op).rsplit(".", 1)[-1]]
        if matcher.name == "__name__":
            if op == "=":
                ref = MetricRef(matcher.value)
            elif op in ("=~", "!~") and ref is None:
                ref = MetricRef(None, matcher.value, op == "!~")
            continue
        matchers.append(Matcher(matcher.name, op, matcher.value))
    if node.matchers.or_matchers:  # `{a="x" or b="y"}`: no single label is required
        matchers = []
    if ref is None:
        return None  # `{job="x"}`: any metric; nothing to judge by name
    return Use(ref, tuple(matchers), **flags)


@functools.lru_cache(maxsize=50_000)
def analyse(expr: str) -> Analysis:
    """Every vector selector of `expr` with how the query uses it (see `Use`); PromQLError when not valid.

    Cached: the rules' syntax check, their metric judgement and the dashboard checks read the same expressions
    (treat the result as read-only)."""
    import promql_parser

    tree = parse(expr)
    uses: dict[Use, None] = {}

    def visit(
        node: Any, flags: dict[str, Any], safe: bool, compared: bool, rate_fn: str | None, answers: bool = False
    ) -> None:
        """`answers`: this node's result is the query's (the root, inside parentheses, or a side of a top-level
        `or`)."""
        if isinstance(node, promql_parser.VectorSelector):
            use = _selector_use(node, {**flags, "rate_function": rate_fn, "raw_comparison": compared and not safe})
            if use is not None:
                uses[use] = None
        elif isinstance(node, promql_parser.MatrixSelector):
            visit(node.vector_selector, flags, safe, compared, rate_fn)
        elif isinstance(node, promql_parser.Call):
            name = node.func.name
            inner = {**flags, "absence": True} if name in ABSENCE_FUNCTIONS else flags
            if name in ABSENCE_FUNCTIONS or name in EMPTY_TOLERANT_FUNCTIONS:
                inner = {**inner, "empties_query": False}  # absent() of nothing is 1; scalar() of nothing is NaN
            if name in ABSENCE_FUNCTIONS:  # what is under it keeps the flag, through rate(), sum() and the like
                inner = {**inner, "absent_answers": answers}
            for arg in node.args:
                rated = name if name in RATE_FUNCTIONS and isinstance(arg, promql_parser.MatrixSelector) else None
                argument = {**inner, "empties_query": False} if _is_scalar(arg) else inner
                visit(arg, argument, safe or name in COUNTER_SAFE_FUNCTIONS, compared, rated)
        elif isinstance(node, promql_parser.AggregateExpr):
            if node.param is not None:
                visit(node.param, {**flags, "empties_query": False}, safe, compared, None)
            visit(node.expr, flags, safe or str(node.op) in COUNTER_SAFE_AGGREGATIONS, compared, None)
        elif isinstance(node, promql_parser.BinaryExpr):
            op = str(node.op)
            compares = compared or op in COMPARISONS
            left = {**flags, "fallback": True} if op == "or" and _is_vector_fallback(node.rhs) else flags
            # `foo unless bar`: bar is tested for presence only, it may well be missing — unless it is compared
            # (`foo unless bar > 5` reads bar's value), as pint's promql/series reads it.
            presence_only = op == "unless" and not _is_comparison(node.rhs)
            right = {**flags, "presence_only": True} if presence_only else flags
            # `a or b` answers with either side alone; `a unless b` with a alone: neither side empties it. Every
            # other operator between two vectors (and, arithmetic, comparisons) needs both.
            if op == "or":
                left, right = {**left, "empties_query": False}, {**right, "empties_query": False}
            elif op == "unless":
                right = {**right, "empties_query": False}
            visit(node.lhs, left, safe, compares, None, answers and op == "or")
            visit(node.rhs, right, safe or presence_only, compares, None, answers and op == "or")
        elif isinstance(node, promql_parser.ParenExpr):
            visit(node.expr, flags, safe, compared, None, answers)
        elif isinstance(node, (promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
            visit(node.expr, flags, safe, compared, None)

    start = {
        "absence": False,
        "fallback": False,
        "presence_only": False,
        "empties_query": not _is_scalar(tree),
        "absent_answers": False,
    }
    visit(tree, start, False, False, None, True)
    return Analysis(expr, tree, list(uses))


# Functions of a range that need two samples in it: with one, they return nothing.
TWO_SAMPLE_FUNCTIONS = frozenset({"rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear"})


def short_ranges(expr: str, min_range_s: float) -> list[str]:
    """Every `fn(selector[range])` of `expr` whose `fn` needs two samples and whose range is shorter than
    `min_range_s` (two scrape intervals): it holds one sample at most, so it is always empty — pint's promql/rate.
    PromQLError when `expr` is not valid."""
    import promql_parser

    found: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.Call) and node.func.name in TWO_SAMPLE_FUNCTIONS:
            ranges = [a.range.total_seconds() for a in node.args if isinstance(a, promql_parser.MatrixSelector)]
            if any(r < min_range_s for r in ranges):
                found.append(str(node))

    promql_parser.walk(parse(expr), visit)
    return found


LabelSet = frozenset[str]


def _is_scalar(node: Any) -> bool:
    import promql_parser

    node = _strip(node)
    if isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)):
        return True
    if isinstance(node, promql_parser.UnaryExpr):
        return _is_scalar(node.expr)
    if isinstance(node, promql_parser.Call):
        return str(node.func.return_type).endswith("Scalar")
    if isinstance(node, promql_parser.BinaryExpr):
        return _is_scalar(node.lhs) and _is_scalar(node.rhs)
    return False


def output_labels(node: Any, labels_of: Callable[[Use], LabelSet | None]) -> LabelSet | None:
    """The label names the series of `node`'s result carry (never `__name__`), or None when they cannot be told.

    `labels_of(use)` gives a selector's labels (None: unknown). Follows Prometheus' rules: aggregations keep their
    `by` labels (or drop the `without` ones), one-to-one matching keeps the `on` labels (or drops the `ignoring`
    ones), `group_left/right` keep the "many" side plus the included labels, label_replace/label_join add theirs.
    """
    import promql_parser

    node = _strip(node)
    if isinstance(node, promql_parser.VectorSelector):
        use = _selector_use(node, {})
        return labels_of(use) if use is not None else None
    if isinstance(node, promql_parser.MatrixSelector):
        return output_labels(node.vector_selector, labels_of)
    if isinstance(node, (promql_parser.SubqueryExpr, promql_parser.UnaryExpr)):
        return output_labels(node.expr, labels_of)
    if isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)):
        return frozenset()
    if isinstance(node, promql_parser.Call):
        return _call_labels(node, labels_of)
    if isinstance(node, promql_parser.AggregateExpr):
        inner = output_labels(node.expr, labels_of)
        modifier = node.modifier
        if modifier is None:
            result: LabelSet | None = frozenset()
        elif str(modifier.type).endswith("By"):
            result = frozenset(modifier.labels) & inner if inner is not None else frozenset(modifier.labels)
        else:
            result = inner - frozenset(modifier.labels) if inner is not None else None
        op = str(node.op)
        if op in ("topk", "bottomk", "limitk", "limit_ratio"):
            return inner
        if op == "count_values" and result is not None:
            return result | {str(node.param.val)}
        return result
    if isinstance(node, promql_parser.BinaryExpr):
        return _binary_labels(node, labels_of)
    return None


def _call_labels(node: Any, labels_of: Callable[[Use], LabelSet | None]) -> LabelSet | None:
    import promql_parser

    name = node.func.name
    if str(node.func.return_type).endswith("Scalar"):
        return frozenset()
    if name == "vector":
        return frozenset()
    if name in ABSENCE_FUNCTIONS:
        inner = _strip(node.args[0])
        selector = inner.vector_selector if isinstance(inner, promql_parser.MatrixSelector) else inner
        if isinstance(selector, promql_parser.VectorSelector):
            # absent() returns one series carrying the labels of its selector's equality matchers.
            return frozenset(
                m.name for m in selector.matchers.matchers if m.name != "__name__" and str(m.op) == "MatchOp.Equal"
            )
        return None
    vectors = [a for a in node.args if not _is_scalar(a)]
    if not vectors:
        return frozenset()
    inner = output_labels(vectors[0], labels_of)
    if inner is None:
        return None
    if name in ("label_replace", "label_join"):
        return inner | {str(node.args[1].val)}
    if name == "histogram_quantile":
        return inner - {"le"}
    return inner


def _binary_labels(node: Any, labels_of: Callable[[Use], LabelSet | None]) -> LabelSet | None:
    op = str(node.op)
    if _is_scalar(node.lhs):
        return output_labels(node.rhs, labels_of)
    if _is_scalar(node.rhs):
        return output_labels(node.lhs, labels_of)
    left, right = output_labels(node.lhs, labels_of), output_labels(node.rhs, labels_of)
    if op == "or":
        return left | right if left is not None and right is not None else None
    if op in ("and", "unless"):
        return left
    modifier = node.modifier
    card = str(modifier.card).rsplit(".", 1)[-1] if modifier is not None else "OneToOne"
    matching = modifier.matching if modifier is not None else None
    on = matching is not None and str(matching.type).endswith("Include")
    match_labels = frozenset(matching.labels) if matching is not None else frozenset()
    if card == "OneToOne":
        if left is None:
            return None
        return left & match_labels if on else left - match_labels
    many, one = (left, right) if card == "ManyToOne" else (right, left)
    if many is None:
        return None
    included = frozenset(modifier.group_labels or []) if modifier is not None else frozenset()
    return many | (included & one if one is not None else included)

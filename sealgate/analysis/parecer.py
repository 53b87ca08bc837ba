"""The parecer de executabilidade: can each query a rule or a dashboard panel runs ever see data? Judged the way
cloudflare/pint's promql/series judges it, for rules and dashboards alike, by `rules/metrics-exist`,
`dashboard/queries-metrics` and `sealgate lint` — one code path, so a seal and `lint` never disagree.

What exists comes from up to three places, each optional:

* text expositions (`/metrics` of the code, or files): what the code exports, each sample's labels, label values and
  type, and which families are declared (HELP/TYPE) with no sample yet;
* Prometheus: what it holds *now* (an instant query, so a series that went stale does not count), what it held
  within a look-back window (default 7 days: "never existed" is told apart from "disappeared", and a series gone for
  less than a minimum age — default 1 h — is a warning, a restart or a scrape gap more likely than a removal), the
  labels each metric carried in that window and the values they took, and metric types from its metadata;
* the rule set: a recorded series exists when its rule's own inputs do (judged through them, recursively), and
  carries the labels its expression keeps (promql.output_labels); `ALERTS{alertname=…}` needs an alerting rule of
  that name.

When both an exposition and Prometheus are given, a metric must be in both (the code exports it *and* it is
scraped); a family the exposition declares with no sample yet is created on first use (a warning, `metric-cold`).
A missing name with a colon is a recording rule's output no rule makes, and said so with the closest recorded one.
Each selector is judged by what the query means (promql.analyse): under `absent()` a missing metric makes the query
always true (a warning, not an error: that is what absent() watches for when the metric exists somewhere), left of
`or vector(…)` or right of `unless` the query copes with it missing (a warning); a label matcher that needs a label
the metric never carries — in the exposition *and* in Prometheus — is an error like a missing metric, and so is an
`=`/`=~` matcher whose value no series carries (named with the values that exist, closest by edit distance first);
labels Prometheus adds at scrape time (`job`, `instance`, target labels) are judged against Prometheus alone. When
the query needs the selector, the verdict says the query can never return anything (an alert on it never fires);
under an absent() that is the query's answer, that it always does. `rate()` on a gauge and a counter's raw value in
a comparison are warnings. A metric name built from a Grafana variable cannot be judged statically: it is said so,
never reported missing.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sealgate.analysis import promql
from sealgate.analysis.grafana_query import (
    TEMPLATED,
    OptionSource,
    PanelQuery,
    Variable,
    label_values_query,
    render_static,
    variables_of,
)

TARGET_LABELS = frozenset({"job", "instance"})  # added by Prometheus at scrape time: never in an exposition
LOOKBACK_S = 7 * 86400.0
MIN_AGE_S = 3600.0
HTTP_TIMEOUT = 15.0
_CHUNK = 300  # metric names per `{__name__=~"a|b|…"}` query

ERROR = "error"
WARNING = "warning"


class SourceError(Exception):
    """A metric source could not be read (Prometheus does not answer, an exposition does not parse)."""


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


# --- expositions -------------------------------------------------------------------------------------------------

_SAMPLE_TYPES = {
    "counter": {"_total": "counter", "": "counter", "_created": "gauge"},
    "histogram": {"_bucket": "counter", "_count": "counter", "_sum": "counter", "_created": "gauge"},
    "summary": {"": "gauge", "_count": "counter", "_sum": "counter", "_created": "gauge"},
    "gaugehistogram": {"_bucket": "gauge", "_gcount": "gauge", "_gsum": "gauge"},
}


def sample_type(family_type: str, family: str, sample: str) -> str:
    """counter | gauge | unknown for one sample name of a family (a histogram's `_bucket` counts, its quantiles do
    not)."""
    if family_type in ("gauge", "info", "stateset"):
        return "gauge"
    return _SAMPLE_TYPES.get(family_type, {}).get(sample[len(family) :], "unknown")


@dataclass
class Exposition:
    """What text expositions export: sample names, their types and the label names seen on their samples."""

    origin: str  # how messages name it: "api (GET http://…/metrics)", "metrics.txt"
    names: set[str] = field(default_factory=set)
    types: dict[str, str] = field(default_factory=dict)
    labels: dict[str, set[str]] = field(default_factory=dict)  # only names with samples: declared-only are unknown
    sampled: set[str] = field(default_factory=set)  # names with a sample; the rest of `names` is declared only
    values: dict[str, dict[str, set[str]]] = field(default_factory=dict)  # name -> label -> values its samples carry

    @classmethod
    def parse(cls, text: str, origin: str) -> Exposition:
        from prometheus_client.parser import text_string_to_metric_families

        found = cls(origin)
        try:
            families = list(text_string_to_metric_families(text))
        except (ValueError, IndexError, KeyError) as exc:
            raise SourceError(f"{origin}: not a Prometheus text exposition: {exc}") from None
        # Names as the text writes them: an exporter's counter without `_total` keeps its name in Prometheus.
        written = promql.written_sample_names(text)
        for family in families:
            for name in promql.family_sample_names(family.type, family.name, written):
                found.names.add(name)
                found.types.setdefault(name, sample_type(family.type, family.name, name))
            for sample in family.samples:
                name = promql.sample_name(family.type, family.name, sample.name, written)
                found.names.add(name)
                found.sampled.add(name)
                found.types[name] = sample_type(family.type, family.name, name)
                found.labels.setdefault(name, set()).update(sample.labels)
                values = found.values.setdefault(name, {})
                for label, value in sample.labels.items():
                    values.setdefault(label, set()).add(value)
        return found

    def copy(self) -> Exposition:
        """A deep copy (merging into it leaves the original as it was)."""
        return Exposition(
            self.origin,
            set(self.names),
            dict(self.types),
            {name: set(labels) for name, labels in self.labels.items()},
            set(self.sampled),
            {name: {label: set(v) for label, v in values.items()} for name, values in self.values.items()},
        )

    def cold(self, name: str) -> bool:
        """Exported as a family (its HELP/TYPE is there) with no sample yet: a labelled metric before first use."""
        return name in self.names and name not in self.sampled

    def merge(self, other: Exposition) -> None:
        self.origin = f"{self.origin}, {other.origin}"
        self.names |= other.names
        for name, kind in other.types.items():
            self.types[name] = kind if self.types.get(name, kind) == kind else "unknown"
        for name, labels in other.labels.items():
            self.labels.setdefault(name, set()).update(labels)
        self.sampled |= other.sampled
        for name, values in other.values.items():
            mine = self.values.setdefault(name, {})
            for label, seen in values.items():
                mine.setdefault(label, set()).update(seen)


def read_exposition_url(url: str, origin: str | None = None, timeout: float = HTTP_TIMEOUT) -> Exposition:
    import requests  # here: `sealgate lint` on files alone never pays for the HTTP stack

    try:
        response = requests.get(url, timeout=timeout, headers={"Accept": "text/plain;version=0.0.4"})
        response.raise_for_status()
    except requests.RequestException as exc:
        raise SourceError(f"GET {url}: {exc}") from None
    return Exposition.parse(response.text, origin or f"GET {url}")


# --- Prometheus --------------------------------------------------------------------------------------------------


def _metadata_samples(family: str, kind: str) -> dict[str, str]:
    """Sample name -> counter | gauge for one entry of Prometheus' metadata (keyed by the TYPE line's name)."""
    if kind == "counter":
        return {family: "counter", **({} if family.endswith("_total") else {family + "_total": "counter"})}
    if kind in _SAMPLE_TYPES:
        return {family + suffix: sample for suffix, sample in _SAMPLE_TYPES[kind].items()}
    return {family: "gauge"} if kind == "gauge" else {}


class PrometheusSource:
    """A Prometheus server as a metric source, through the one Prometheus client (backends/http.py): what it holds
    now, what it held within the look-back window, each metric's labels and type. Every answer is cached: a check
    or a lint run asks each thing once."""

    def __init__(
        self,
        url: str,
        *,
        lookback_s: float = LOOKBACK_S,
        min_age_s: float = MIN_AGE_S,
        scope: str = "now",
        timeout: float = HTTP_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self.lookback_s = lookback_s
        self.min_age_s = min_age_s
        self.scope = scope  # how messages say when: "now", "since the stack started"
        from sealgate.backends.http import Prometheus  # the HTTP stack only when a Prometheus is judged

        self.client = Prometheus(self.url, timeout=timeout)
        self._present: dict[str, bool] = {}
        self._held: dict[str, bool] = {}  # any series within the look-back window
        self._last_seen: dict[str, float | None] = {}
        self._labels: dict[str, frozenset[str]] = {}
        self._values: dict[tuple[str, str], frozenset[str]] = {}
        self._types: dict[str, str] | None = None
        self._names: set[str] | None = None

    def _get(self, path: str, params: dict[str, Any] | None = None, post: bool = False) -> Any:
        from sealgate.backends.errors import StackError
        from sealgate.backends.http import HttpAnswerError

        try:
            return self.client.api(path, post=post, **(params or {}))
        except HttpAnswerError as exc:
            raise SourceError(f"Prometheus at {self.url}: /api/v1/{path}: HTTP {exc.status} {exc.text}") from None
        except StackError as exc:
            raise SourceError(f"Prometheus at {self.url}: /api/v1/{path}: {exc}") from None

    def _start(self) -> str:
        return f"{time.time() - self.lookback_s:.3f}"

    @staticmethod
    def _chunks(names: Iterable[str]) -> Iterable[list[str]]:
        ordered = sorted(names)
        for index in range(0, len(ordered), _CHUNK):
            yield ordered[index : index + _CHUNK]

    @staticmethod
    def _regex(names: list[str]) -> str:
        return "|".join(re.escape(n) for n in names)

    def prefetch(self, names: Iterable[str]) -> None:
        """Presence (one instant query per few hundred names) and, for the absent ones, whether they were held
        within the look-back window."""
        wanted = {n for n in names if n not in self._present}
        for chunk in self._chunks(wanted):
            data = self._get(
                "query",
                {"query": f'count by (__name__) ({{__name__=~"{self._regex(chunk)}"}})', "time": f"{time.time():.3f}"},
                post=True,
            )
            here = {str(r["metric"].get("__name__")) for r in data.get("result", [])}
            self._present.update({n: n in here for n in chunk})
        absent = sorted(n for n in wanted if not self._present[n])
        for chunk in self._chunks(absent):
            held = set(
                self._get(
                    "label/__name__/values",
                    {"match[]": f'{{__name__=~"{self._regex(chunk)}"}}', "start": self._start()},
                )
            )
            self._held.update({n: n in held for n in chunk})

    def present(self, name: str) -> bool:
        if name not in self._present:
            self.prefetch([name])
        return self._present[name]

    def held(self, name: str) -> bool:
        """Held a series within the look-back window (now or before)."""
        if self.present(name):
            return True
        return self._held.get(name, False)

    def last_seen(self, name: str) -> float | None:
        """Unix time of the newest sample of a metric that is held but no longer present (None: not found).

        `max_over_time(timestamp(m)[W:step])`: the last hour at one-second steps first (a series may have lived
        for a few scrapes only), then the whole look-back window at coarse steps."""
        if name not in self._last_seen:
            self._last_seen[name] = None
            for window, step in ((3600, 1), (int(self.lookback_s), max(15, int(self.lookback_s / 5000)))):
                query = f'max(max_over_time(timestamp({{__name__="{name}"}})[{window}s:{step}s]))'
                result = self._get("query", {"query": query, "time": f"{time.time():.3f}"}, post=True)
                values = [float(r["value"][1]) for r in result.get("result", [])]
                if values:
                    self._last_seen[name] = max(values)
                    break
        return self._last_seen[name]

    def label_names(self, name: str) -> frozenset[str]:
        """Every label a series of the metric carried within the look-back window."""
        if name not in self._labels:
            data = self._get("labels", {"match[]": f'{{__name__="{name}"}}', "start": self._start()})
            self._labels[name] = frozenset(data) - {"__name__"}
        return self._labels[name]

    def prefetch_labels(self, names: Iterable[str]) -> None:
        todo = [n for n in set(names) if n not in self._labels]
        if len(todo) > 1:
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(self.label_names, todo))

    def values_of(self, name: str, label: str) -> frozenset[str]:
        """Every value the label took on a series of the metric within the look-back window (SourceError when
        Prometheus does not answer: an unanswered question is never read as "no value")."""
        key = (name, label)
        if key not in self._values:
            data = self._get(f"label/{label}/values", {"match[]": f'{{__name__="{name}"}}', "start": self._start()})
            self._values[key] = frozenset(str(v) for v in data or [])
        return self._values[key]

    def prefetch_values(self, pairs: Iterable[tuple[str, str]]) -> None:
        todo = sorted({p for p in pairs if p not in self._values})
        if len(todo) > 1:
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda pair: self.values_of(*pair), todo))

    def types(self) -> dict[str, str]:
        """Sample name -> counter | gauge from Prometheus' metadata (a name typed differently by two targets is
        left out: it is not always a counter)."""
        if self._types is None:
            kinds: dict[str, set[str]] = {}
            for family, entries in (self._get("metadata") or {}).items():
                for entry in entries:
                    for sample, kind in _metadata_samples(family, str(entry.get("type", "unknown"))).items():
                        kinds.setdefault(sample, set()).add(kind)
            self._types = {name: next(iter(k)) for name, k in kinds.items() if len(k) == 1}
        return self._types

    def refuses(self, query: str) -> str | None:
        """Prometheus' own parser on a query (what it refuses never draws): its error, or None when it runs."""
        try:
            self._get("query", {"query": query, "time": f"{time.time():.3f}"}, post=True)
        except SourceError as exc:
            if "HTTP 400" in str(exc) or "HTTP 422" in str(exc):
                return str(exc).split(": HTTP ", 1)[-1]
            raise
        return None

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        params: dict[str, str] = {"start": self._start()}
        if match:
            params["match[]"] = match
        try:
            return sorted(self._get(f"label/{label}/values", params))
        except SourceError:
            return []  # a variable query Prometheus cannot answer: the variable stays unresolved

    def names(self) -> set[str]:
        """Every metric name held within the look-back window (for `{__name__=~"…"}` selectors)."""
        if self._names is None:
            self._names = set(self._get("label/__name__/values", {"start": self._start()}))
        return self._names


# --- recording rules -------------------------------------------------------------------------------------------


@dataclass
class Recording:
    """A recording rule of the rule set: where it is, what it records, from what."""

    name: str
    expr: str
    labels: Mapping[str, str]
    where: str  # file:line


# --- the judgement -----------------------------------------------------------------------------------------------

# What a verdict means for the query as a whole, when it is certain (rules say it of themselves: rule_message).
NEVER = "never"  # the query can never return anything: an alert on it can never fire
ALWAYS = "always"  # the query always returns something: an alert on it always fires

# Series Prometheus writes for every alerting rule: their `alertname` is a rule's name, not something a target carries.
ALERT_SERIES = frozenset({"ALERTS", "ALERTS_FOR_STATE"})
CLOSEST = 5  # values named by a finding about a value no series carries


@dataclass
class MetricVerdict:
    kind: str  # see KINDS
    severity: str  # error | warning
    message: str  # without the subject ("rule X: ", "panel 'T' (A): "); the caller adds it
    metric: str | None = None  # the metric it is about (findings point at the line naming it)
    label: str | None = None
    exported: bool | None = None  # in the expositions (None: none given)
    prometheus: str | None = None  # present | gone | never (None: no Prometheus)
    value: str | None = None  # the matcher's value a label-value verdict is about (findings point at its line)
    consequence: str | None = None  # NEVER | ALWAYS: what it makes of the whole query, when that is certain


# Every kind of verdict, with what it means (the README's parecer section lists the same).
KINDS = {
    "metric-missing": "a metric no source has (never exported, never held by Prometheus in the look-back window)",
    "metric-disappeared": "Prometheus held the metric within the look-back window but holds no series of it now",
    "metric-not-scraped": "the exposition exports the metric but Prometheus holds no series of it",
    "metric-cold": "the exposition declares the metric (HELP/TYPE) with no sample yet: created on first use",
    "recorded-input-missing": "a recorded series whose recording rule reads metrics that do not exist",
    "recorded-series-unknown": "a series named like a recording rule's output (with a colon) that no rule records",
    "pattern-unmatched": "a {__name__=~…} selector that matches no metric",
    "label-missing": "a label matcher on a label the metric never carries (exposition and Prometheus)",
    "label-value-missing": "a label matcher (= or =~) whose value no series of the metric carries",
    "alert-unknown": "ALERTS{alertname=…} naming no alerting rule of the rule set",
    "absent-always-true": "absent() of a metric that exists nowhere, or of a label value no series carries: "
    "the query is always true",
    "fallback-always": "the optional side of `or vector()` / `unless` matches nothing: the fallback always wins",
    "not-judgeable": "a metric name built from a Grafana variable: it cannot be judged statically",
    "rate-on-gauge": "rate()/irate()/increase() of a gauge",
    "counter-compared": "a counter's raw value in a comparison, with no rate()/increase()",
}


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions), for naming the value a typo meant."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, 1):
        current = [i]
        for j, right in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right)))
        previous = current
    return previous[-1]


def closest(wanted: str, candidates: Iterable[str], limit: int = CLOSEST) -> list[str]:
    """The candidates nearest to `wanted` by edit distance, nearest first (ties in alphabetical order)."""
    return sorted(set(candidates), key=lambda c: (edit_distance(wanted, c), c))[:limit]


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _values_text(label: str, wanted: str, values: frozenset[str]) -> str:
    if not values:
        return f"no series carries {label} at all"
    nearest = closest(wanted, values)
    more = f", … {len(values)} in all" if len(values) > len(nearest) else ""
    return f"its {label} values, closest first: {_quoted(nearest)}{more}"


def rule_message(kind: str, name: str, verdict: MetricVerdict) -> str:
    """A verdict about a rule's expression as a finding says it (the seal's `rules/metrics-exist` and `sealgate lint`
    alike): the rule named, and what the verdict makes of it when that is certain."""
    text = f"rule {name}: {verdict.message}"
    if verdict.consequence == NEVER:
        text += f" — alert {name} can never fire" if kind == "alert" else f" — rule {name} records nothing"
    elif verdict.consequence == ALWAYS and kind == "alert":
        text += f" — alert {name} always fires"
    return text


def rule_line(rule: Any, verdict: MetricVerdict) -> int:
    """The line of a rule file a verdict points at: where the matcher's value is written (a label-value verdict),
    else where its metric is named, else the expression's first line. `rule` is a rulefiles.Rule (`lines`,
    `expr_line`, `metric_line`)."""
    if verdict.value and 0 < rule.expr_line <= len(rule.lines):
        line = promql.locate(rule.lines, rule.expr_line, verdict.value)
        if line != rule.expr_line or verdict.value in rule.lines[rule.expr_line - 1]:
            return int(line)
    return int(rule.metric_line(verdict.metric)) if verdict.metric else int(rule.expr_line)


@dataclass
class _Status:
    exists: bool
    verdict: MetricVerdict | None = None  # why it does not exist (or, when it exists, a warning about it)


class Parecer:
    """Judges analysed queries (promql.analyse) against the given sources; caches everything it asks."""

    def __init__(
        self,
        expositions: list[Exposition] | None = None,
        prometheus: PrometheusSource | None = None,
        recordings: Iterable[Recording] = (),
        target_labels: Iterable[str] = TARGET_LABELS,
        alerts: Iterable[str] | None = None,
        unjudged_values: Iterable[str] = (),
    ) -> None:
        self.exposition: Exposition | None = None
        for exposition in expositions or []:
            if self.exposition is None:  # a copy: merging the next ones must not change the caller's
                self.exposition = exposition.copy()
            else:
                self.exposition.merge(exposition)
        self.prometheus = prometheus
        self.recordings: dict[str, list[Recording]] = {}
        for recording in recordings:
            self.recordings.setdefault(recording.name, []).append(recording)
        self.target_labels = frozenset(target_labels)
        # Labels whose values say where the stack runs, not what it exports: `instance` on a backend that rewrote
        # every scrape address (the local one scrapes 127.0.0.1:<port> where the compose file says exporter:9100).
        self.unjudged_values = frozenset(unjudged_values)
        # The alerting rules' names, for ALERTS{alertname=…} (None: not known, not judged).
        self.alerts = frozenset(alerts) if alerts is not None else None
        # Scrape-time labels a matcher named with no Prometheus to judge its value against (lint says so).
        self.unjudged_labels: set[str] = set()
        self._analyses: dict[str, promql.Analysis | None] = {}
        self._status: dict[str, _Status] = {}
        self._recorded_labels: dict[str, frozenset[str] | None] = {}
        self._visiting: set[str] = set()

    @property
    def judges_existence(self) -> bool:
        """Recording rules alone judge nothing: their own inputs need an exposition or a Prometheus."""
        return self.exposition is not None or self.prometheus is not None

    def _analysis(self, expr: str) -> promql.Analysis | None:
        if expr not in self._analyses:
            try:
                self._analyses[expr] = promql.analyse(expr)
            except promql.PromQLError:
                self._analyses[expr] = None
        return self._analyses[expr]

    # -- sources in bulk, before judging one query after the other
    def prefetch(self, analyses: Iterable[promql.Analysis]) -> None:
        analyses = list(analyses)
        if self.prometheus is None:
            return
        names: set[str] = set()
        pending = list(analyses)
        seen_recorded: set[str] = set()
        while pending:
            analysis = pending.pop()
            for use in analysis.uses:
                name = use.ref.name
                if not name or TEMPLATED in name or name in ALERT_SERIES:
                    continue
                names.add(name)  # `up` and `scrape_*` too: their labels are judged against Prometheus
                if name in self.recordings and name not in seen_recorded:
                    seen_recorded.add(name)
                    pending += [a for r in self.recordings[name] if (a := self._analysis(r.expr)) is not None]
        self.prometheus.prefetch(names)
        need_labels = set()
        need_values: set[tuple[str, str]] = set()
        for analysis in analyses:
            for use in analysis.uses:
                name = use.ref.name
                if not name or name not in names or not self.prometheus.held(name):
                    continue
                judged = [m for m in use.matchers if m.requires_label() and TEMPLATED not in m.value]
                known = self.exposition.labels.get(name) if self.exposition else None
                if known is None or any(m.label not in known for m in judged):
                    need_labels.add(name)
                if not use.presence_only:
                    need_values |= {(name, m.label) for m in judged if not self._exposition_matches(name, m)}
        self.prometheus.prefetch_labels(need_labels)
        self.prometheus.prefetch_values(need_values)

    # -- does a metric exist (metric level, labels aside)?
    def status(self, name: str) -> _Status:
        if name in self._status:
            return self._status[name]
        if name in promql.GENERATED_METRICS:
            return _Status(True)
        if name in self.recordings and not (self.prometheus and self.prometheus.present(name)):
            status = self._recorded_status(name)
        else:
            status = self._source_status(name)
            if not status.exists and ":" in name:
                status = self._unrecorded(name, status)
        self._status[name] = status
        return status

    def _source_status(self, name: str) -> _Status:
        exposition, prometheus = self.exposition, self.prometheus
        exported = name in exposition.names if exposition else None
        cold = exposition is not None and exposition.cold(name)
        if prometheus is None:
            if exported is False:
                return _Status(
                    False,
                    MetricVerdict(
                        "metric-missing",
                        ERROR,
                        f"metric {name} is not exported by {exposition.origin}",
                        name,
                        exported=False,
                    ),
                )
            return _Status(True, self._cold(name, None) if cold else None)
        present = prometheus.present(name)
        state = "present" if present else ("gone" if prometheus.held(name) else "never")
        if present and exported is not False:
            return _Status(True)
        history = self._history(name, state)
        if exported is False:
            held = "but Prometheus holds series of it" if present else "and Prometheus holds no series"
            message = f"metric {name} is not exported by {exposition.origin} {held} {prometheus.scope}{history}"
            missing = MetricVerdict("metric-missing", ERROR, message, name, exported=False, prometheus=state)
            return _Status(False, missing)
        if cold:
            return _Status(True, self._cold(name, state, history))
        recent = state == "gone" and self._recent(name)
        if exported:  # exported, not in Prometheus
            message = (
                f"metric {name} is exported by {exposition.origin} but Prometheus holds no series of it "
                f"{prometheus.scope}{history} ({prometheus.url}): is it scraped?"
            )
            return _Status(
                False,
                MetricVerdict(
                    "metric-not-scraped", WARNING if recent else ERROR, message, name, exported=True, prometheus=state
                ),
            )
        if state == "never":
            message = f"Prometheus ({prometheus.url}) holds no series of {name}{history}"
            return _Status(False, MetricVerdict("metric-missing", ERROR, message, name, prometheus=state))
        message = f"metric {name} disappeared from Prometheus ({prometheus.url}){history}" + (
            f": gone for less than the minimum age ({_ago(prometheus.min_age_s)}), a restart or a scrape gap?"
            if recent
            else ""
        )
        return _Status(
            False, MetricVerdict("metric-disappeared", WARNING if recent else ERROR, message, name, prometheus=state)
        )

    def _cold(self, name: str, state: str | None, history: str = "") -> MetricVerdict:
        """A family the exposition declares with no sample yet. A warning, not an error: the code does export it —
        a labelled counter or histogram has no series until its first observation, and Prometheus none until the
        scrape after that — so refusing the rule would refuse correct code on a cold start; but not silence
        either: until that first use the query sees nothing (and rate() misses the first increment), which is why
        code creates the label combinations it alerts on at 0 at start."""
        assert self.exposition is not None
        message = (
            f"metric {name} has no sample yet in {self.exposition.origin}: its family is declared (HELP/TYPE) but no "
            "series exists until its first use (a labelled counter or histogram)"
        )
        if self.prometheus is not None:
            message += f", and Prometheus holds no series of it {self.prometheus.scope}{history}"
        message += "; the query sees nothing until then (create the series it reads at 0 at start)"
        return MetricVerdict("metric-cold", WARNING, message, name, exported=True, prometheus=state)

    def _unrecorded(self, name: str, status: _Status) -> _Status:
        """A missing series whose name has a colon — reserved for recording rules' output (level:metric:operations)
        — is said to be what it is: a recording no rule makes, not a metric the code forgot to export."""
        verdict = status.verdict
        if verdict is None or verdict.exported is True:
            return status  # the exposition does export it: judged as any exported metric
        nearest = closest(name, self.recordings, 1)
        recorded = f"the closest recorded series is {nearest[0]}" if nearest else "the rule set records no series"
        message = f"{name} is named like a recording rule's output, but no rule of the rule set records it ({recorded})"
        prometheus = self.prometheus
        if prometheus is not None and verdict.prometheus == "never":
            message += f", and Prometheus ({prometheus.url}) holds no series of it{self._history(name, 'never')}"
        elif prometheus is not None and verdict.prometheus == "gone":
            message += f", and Prometheus ({prometheus.url}) no longer holds it{self._history(name, 'gone')}"
        return _Status(False, replace(verdict, kind="recorded-series-unknown", message=message))

    def _history(self, name: str, state: str) -> str:
        prometheus = self.prometheus
        assert prometheus is not None
        if state == "never":
            return f" (none in the last {_ago(prometheus.lookback_s)})"
        if state == "gone":
            seen = prometheus.last_seen(name)
            return f" (last sample {_ago(time.time() - seen)} ago)" if seen else " (held within the look-back window)"
        return ""

    def _recent(self, name: str) -> bool:
        prometheus = self.prometheus
        assert prometheus is not None
        seen = prometheus.last_seen(name)
        return seen is not None and time.time() - seen < prometheus.min_age_s

    def _recorded_status(self, name: str) -> _Status:
        """A recorded series exists when one of its recording rules can produce it: every metric the rule needs
        (not the optional ones) exists. Cycles count as existing (promtool and Prometheus judge those)."""
        if name in self._visiting:
            return _Status(True)
        self._visiting.add(name)
        try:
            missing: dict[str, str] = {}
            for recording in self.recordings[name]:
                analysis = self._analysis(recording.expr)
                if analysis is None:
                    continue
                lacking = [
                    u.ref.name
                    for u in analysis.uses
                    if u.ref.name
                    and not u.optional
                    and TEMPLATED not in u.ref.name
                    and not self.status(u.ref.name).exists
                ]
                if not lacking:
                    return _Status(True)
                missing.setdefault(recording.where, ", ".join(sorted(set(lacking))))
        finally:
            self._visiting.discard(name)
        if not missing:
            return _Status(True)
        where, lacking_text = next(iter(missing.items()))
        message = f"{name} is recorded by the rule at {where}, which reads metrics that do not exist: {lacking_text}"
        return _Status(False, MetricVerdict("recorded-input-missing", ERROR, message, name))

    # -- labels
    def _label_sources(self, name: str) -> list[tuple[str, frozenset[str]]]:
        """(source, labels) of every source that knows the metric's labels."""
        known: list[tuple[str, frozenset[str]]] = []
        if self.exposition and name in self.exposition.labels:
            known.append((self.exposition.origin, frozenset(self.exposition.labels[name]) | self.target_labels))
        if self.prometheus and self.prometheus.held(name):
            known.append((f"Prometheus ({self.prometheus.url})", self.prometheus.label_names(name)))
        elif name in self.recordings:
            labels = self.recorded_labels(name)
            if labels is not None:
                known.append((f"its recording rule ({self.recordings[name][0].where})", labels))
        return known

    def recorded_labels(self, name: str) -> frozenset[str] | None:
        """The labels a recorded series carries: what its rules' expressions keep, plus the rules' own labels."""
        if name in self._recorded_labels:
            return self._recorded_labels[name]
        self._recorded_labels[name] = None  # a cycle: unknown
        result: frozenset[str] | None = frozenset()
        for recording in self.recordings[name]:
            analysis = self._analysis(recording.expr)
            labels = promql.output_labels(analysis.tree, self._use_labels) if analysis else None
            if labels is None or result is None:
                result = None
                break
            result = result | labels | frozenset(recording.labels)
        self._recorded_labels[name] = result
        return result

    def _use_labels(self, use: promql.Use) -> frozenset[str] | None:
        name = use.ref.name
        if not name or name in promql.GENERATED_METRICS:
            return None
        sources = self._label_sources(name) if self.status(name).exists else []
        if not sources:
            return None
        return frozenset().union(*(labels for _source, labels in sources))

    # -- label values
    def _exposition_matches(self, name: str, matcher: promql.Matcher) -> bool:
        """A sample of the expositions carries a value the matcher accepts (scrape-time labels never: an exposition
        does not carry them)."""
        if self.exposition is None or matcher.label in self.target_labels:
            return False
        return any(_accepts(matcher, v) for v in self.exposition.values.get(name, {}).get(matcher.label, ()))

    def _value_sources(self, name: str, label: str) -> list[tuple[str, frozenset[str]]]:
        """(source, values) of every source that knows which values the metric's label takes. Scrape-time labels
        (`job`, `instance`, --target-label) only Prometheus knows. A recorded series Prometheus does not hold is
        known only where every rule recording it sets the label itself (`labels:`): the values its inputs carry
        through the expression are not followed."""
        known: list[tuple[str, frozenset[str]]] = []
        exposition, prometheus = self.exposition, self.prometheus
        if exposition and label not in self.target_labels and name in exposition.sampled:
            known.append((exposition.origin, frozenset(exposition.values.get(name, {}).get(label, ()))))
        if prometheus and prometheus.held(name):
            known.append((f"Prometheus ({prometheus.url})", prometheus.values_of(name, label)))
        elif name in self.recordings and all(label in r.labels for r in self.recordings[name]):
            fixed = frozenset(str(r.labels[label]) for r in self.recordings[name])
            known.append((f"its recording rule ({self.recordings[name][0].where})", fixed))
        return known

    # -- a query
    def judge(self, analysis: promql.Analysis) -> list[MetricVerdict]:
        verdicts: dict[tuple[str, str | None, str | None, str | None], MetricVerdict] = {}
        for use in analysis.uses:
            for verdict in self._judge_use(use):
                # Two selectors of one metric (`errors{code=~"5.."} / errors`) make one finding about it.
                key = (
                    (verdict.kind, verdict.metric, verdict.label, verdict.value)
                    if verdict.metric
                    else (verdict.kind, verdict.message, None, None)
                )
                verdicts.setdefault(key, verdict)
        return list(verdicts.values())

    def _judge_use(self, use: promql.Use) -> list[MetricVerdict]:
        name, pattern = use.ref.name, use.ref.pattern
        if TEMPLATED in (name or "") or TEMPLATED in (pattern or ""):
            shown = str(use).replace(TEMPLATED, "$…")
            message = f"cannot be judged statically: the metric name of {shown} comes from a Grafana variable"
            return [MetricVerdict("not-judgeable", WARNING, message, None)]
        if not self.judges_existence:
            return []
        if name is None:
            return self._judge_pattern(use)
        if name in ALERT_SERIES:
            return self._judge_alert_names(use)
        if name in promql.GENERATED_METRICS:
            # Prometheus writes these per target: they exist, and their labels and values are judged against it.
            return self._judge_labels(use)
        status = self.status(name)
        if not status.exists:
            verdict = status.verdict
            assert verdict is not None
            if use.absence:
                # absent() watches for a metric that exists going away: only one that exists nowhere — the code
                # does not export it, Prometheus never held it, its recording rule cannot run — makes it constant.
                never = (
                    verdict.exported is False
                    or verdict.prometheus == "never"
                    or verdict.kind in ("recorded-input-missing", "recorded-series-unknown")
                )
                if not never:
                    return []
                message = f"absent() of {use} is always true: {verdict.message}"
                return [
                    replace(
                        verdict,
                        kind="absent-always-true",
                        severity=WARNING,
                        message=message,
                        metric=name,
                        label=None,
                        consequence=ALWAYS if use.absent_answers else None,
                    )
                ]
            if use.presence_only:
                return []  # `x unless y`: y missing only means nothing is filtered out
            if use.fallback:
                message = f"{use} matches nothing, so the query always falls back: {verdict.message}"
                return [
                    replace(verdict, kind="fallback-always", severity=WARNING, message=message, metric=name, label=None)
                ]
            return [verdict]
        # A cold metric (exists, with a warning) is said where the query needs it; absent(), `or vector()` and
        # `unless` expect it to be missing at times.
        cold = [status.verdict] if status.verdict is not None and not use.optional else []
        return cold + self._judge_labels(use) + self._judge_type(use)

    def _judge_pattern(self, use: promql.Use) -> list[MetricVerdict]:
        ref = use.ref
        if ref.negated or ref.pattern is None or TEMPLATED in ref.pattern:
            return []
        names: set[str] = set(promql.GENERATED_METRICS) | set(self.recordings)
        sources = []
        if self.exposition:
            names |= self.exposition.names
            sources.append(self.exposition.origin)
        if self.prometheus:
            names |= self.prometheus.names()
            sources.append(f"Prometheus ({self.prometheus.url})")
        if promql.missing_patterns([ref], names):
            severity = WARNING if use.optional else ERROR
            return [
                MetricVerdict(
                    "pattern-unmatched",
                    severity,
                    f"selector {use} matches no metric of {' or '.join(sources) or 'the rule set'}",
                )
            ]
        return []

    def _matches_nothing(self, use: promql.Use, kind: str, text: str, **fields: Any) -> MetricVerdict:
        """A verdict about a selector that matches no series, by what the query makes of it: under absent() it is
        always true (a warning, as for a metric that exists nowhere: the value may exist where the rule is
        deployed), left of `or vector()` the fallback always wins (a warning), elsewhere an error — and when the
        query needs the selector, it can never return anything."""
        if use.absence:
            return MetricVerdict(
                "absent-always-true",
                WARNING,
                f"absent() of {use} is always true: {text}",
                consequence=ALWAYS if use.absent_answers else None,
                **fields,
            )
        if use.fallback:
            message = f"{use} matches nothing, so the query always falls back: {text}"
            return MetricVerdict("fallback-always", WARNING, message, **fields)
        return MetricVerdict(
            kind,
            WARNING if use.optional else ERROR,
            f"{use}: {text}, so the selector matches nothing",
            consequence=NEVER if use.empties_query else None,
            **fields,
        )

    def _judge_labels(self, use: promql.Use) -> list[MetricVerdict]:
        name = use.ref.name
        assert name is not None
        verdicts = []
        for matcher in use.matchers:
            if not matcher.requires_label() or TEMPLATED in matcher.value or matcher.label in ("__name__",):
                continue
            sources = self._label_sources(name)
            if sources and all(matcher.label not in labels for _source, labels in sources):
                carried = sorted(frozenset().union(*(labels for _s, labels in sources)))
                where = " and ".join(source for source, _labels in sources)
                text = (
                    f"metric {name} never carries label {matcher.label!r} in {where} "
                    f"(its labels: {', '.join(carried) or 'none'})"
                )
                verdicts.append(self._matches_nothing(use, "label-missing", text, metric=name, label=matcher.label))
                continue
            if not use.presence_only:  # `x unless y{…}`: a value y carries only at times is what `unless` is for
                verdicts += self._judge_value(use, matcher)
        return verdicts

    def _judge_value(self, use: promql.Use, matcher: promql.Matcher) -> list[MetricVerdict]:
        """pint's "no series matching {label="value"}", with the values that do exist, closest first."""
        name = use.ref.name
        assert name is not None
        if matcher.label in self.unjudged_values:
            return []
        if self._exposition_matches(name, matcher):
            return []  # the cheap answer first: Prometheus is asked only when the expositions do not settle it
        sources = self._value_sources(name, matcher.label)
        if not sources:
            if matcher.label in self.target_labels and self.prometheus is None:
                self.unjudged_labels.add(matcher.label)
            return []
        values = frozenset().union(*(values for _source, values in sources))
        if matcher.op == "=~":
            try:
                re.compile(matcher.value)
            except re.error:
                return []  # RE2 syntax Python cannot read: not judged
        if any(_accepts(matcher, value) for value in values):
            return []
        where = " and ".join(source for source, _values in sources)
        if matcher.op == "=":
            text = f'no series of {name} has {matcher.label}="{matcher.value}" in {where}'
        else:
            text = f'no {matcher.label} value of {name} matches "{matcher.value}" in {where}'
        text += f" ({_values_text(matcher.label, matcher.value, values)})"
        return [
            self._matches_nothing(
                use, "label-value-missing", text, metric=name, label=matcher.label, value=matcher.value
            )
        ]

    def _judge_alert_names(self, use: promql.Use) -> list[MetricVerdict]:
        """ALERTS{alertname="X"} needs an alerting rule named X (pint's "unknown alert referenced"); which alerts
        happened to fire is no measure of that, so Prometheus is not asked."""
        name = use.ref.name
        if self.alerts is None:
            return []
        verdicts = []
        for matcher in use.matchers:
            if matcher.label != "alertname" or not matcher.requires_label() or TEMPLATED in matcher.value:
                continue
            if any(_accepts(matcher, alert) for alert in self.alerts):
                continue
            nearest = closest(matcher.value, self.alerts)
            known = f"closest: {_quoted(nearest)}" if nearest else "the rule set has no alerting rule"
            text = f'no alerting rule of the rule set is named "{matcher.value}" ({known})'
            verdicts.append(
                self._matches_nothing(use, "alert-unknown", text, metric=name, label="alertname", value=matcher.value)
            )
        return verdicts

    def _type_of(self, name: str) -> tuple[str | None, str]:
        if self.exposition and self.exposition.types.get(name, "unknown") != "unknown":
            return self.exposition.types[name], self.exposition.origin
        if self.prometheus:
            kind = self.prometheus.types().get(name)
            if kind:
                return kind, f"Prometheus' metadata ({self.prometheus.url})"
        return None, ""

    def _judge_type(self, use: promql.Use) -> list[MetricVerdict]:
        name = use.ref.name
        assert name is not None
        if use.absence or not (use.rate_function or use.raw_comparison):
            return []
        kind, source = self._type_of(name)
        if use.rate_function and kind == "gauge":
            message = (
                f"{use.rate_function}() of {name}, a gauge according to {source}: {use.rate_function}() is for "
                "counters (a gauge going down reads as a counter reset); use deriv() or delta()"
            )
            return [MetricVerdict("rate-on-gauge", WARNING, message, name)]
        if use.raw_comparison and kind == "counter":
            message = (
                f"{name} is a counter according to {source} and its raw value is compared: it only grows since the "
                "process started; compare its rate() or increase()"
            )
            return [MetricVerdict("counter-compared", WARNING, message, name)]
        return []


def _accepts(matcher: promql.Matcher, value: str) -> bool:
    """The matcher (= or =~, as Prometheus anchors a regex at both ends) accepts the value."""
    if matcher.op == "=":
        return value == matcher.value
    try:
        return re.fullmatch(matcher.value, value) is not None
    except re.error:
        return True  # RE2 syntax Python cannot read: never called a mismatch


@dataclass
class Judged:
    """One query judged: its analysis (None when it is not valid PromQL), the parser's complaint, the verdicts."""

    analysis: promql.Analysis | None
    syntax_error: str | None
    verdicts: list[MetricVerdict]


def judge_all(parecer: Parecer, exprs: list[str]) -> list[Judged]:
    """Judge queries in order, asking the sources about all their metrics at once first (SourceError when a source
    does not answer)."""
    analyses: list[promql.Analysis | str] = []
    for expr in exprs:
        try:
            analyses.append(promql.analyse(expr))
        except promql.PromQLError as exc:
            analyses.append(str(exc))
    parecer.prefetch([a for a in analyses if isinstance(a, promql.Analysis)])
    return [
        Judged(a, None, parecer.judge(a)) if isinstance(a, promql.Analysis) else Judged(None, a, []) for a in analyses
    ]


def variable_options(source: PrometheusSource | None) -> OptionSource | None:
    """Options of a dashboard's query variables the way Grafana gets them: `label_values(...)` asked to
    Prometheus (other variable queries stay unresolved)."""
    if source is None:
        return None

    def options(variable: Variable) -> list[str]:
        request = label_values_query(variable.query)
        return source.label_values(*request) if request else []

    return options


@dataclass
class JudgedPanel:
    query: PanelQuery
    static: str  # the query with its variables replaced by placeholders of their kind (what was parsed)
    judged: Judged


def judge_panels(parecer: Parecer, dashboard: dict[str, Any], queries: list[PanelQuery]) -> list[JudgedPanel]:
    """Every PromQL panel query judged (the one judgement `dashboard/queries-metrics` and `sealgate lint` share)."""
    variables = variables_of(dashboard)
    statics = [render_static(query.expr, variables).text for query in queries]
    return [
        JudgedPanel(query, static, judged)
        for query, static, judged in zip(queries, statics, judge_all(parecer, statics), strict=True)
    ]

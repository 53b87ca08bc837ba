"""The parecer de executabilidade: can each query a rule or a dashboard panel runs ever see data? Judged the way
cloudflare/pint's promql/series judges it, for rules and dashboards alike, by `rules/metrics-exist`,
`dashboard/queries-metrics` and `sealgate lint` — one code path, so a seal and `lint` never disagree.

What exists comes from up to three places, each optional:

* text expositions (`/metrics` of the code, or files): what the code exports, each sample's labels and type;
* Prometheus: what it holds *now* (an instant query, so a series that went stale does not count), what it held
  within a look-back window (default 7 days: "never existed" is told apart from "disappeared", and a series gone for
  less than a minimum age — default 1 h — is a warning, a restart or a scrape gap more likely than a removal), the
  labels each metric carried in that window, and metric types from its metadata;
* recording rules of the same rule set: a recorded series exists when its rule's own inputs do (judged through
  them, recursively), and carries the labels its expression keeps (promql.output_labels).

When both an exposition and Prometheus are given, a metric must be in both (the code exports it *and* it is
scraped). Each selector is judged by what the query means (promql.analyse): under `absent()` a missing metric
makes the query always true (a warning, not an error: that is what absent() watches for when the metric exists
somewhere), left of `or vector(…)` or right of `unless` the query copes with it missing (a warning); a label matcher
that needs a label the metric never carries — in the exposition *and* in Prometheus — is an error like a missing
metric; `rate()` on a gauge and a counter's raw value in a comparison are warnings. A metric name built from a
Grafana variable cannot be judged statically: it is said so, never reported missing.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import requests

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
from sealgate.backends.errors import StackError
from sealgate.backends.http import HttpAnswerError, Prometheus

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
                found.types[name] = sample_type(family.type, family.name, name)
                found.labels.setdefault(name, set()).update(sample.labels)
        return found

    def merge(self, other: Exposition) -> None:
        self.origin = f"{self.origin}, {other.origin}"
        self.names |= other.names
        for name, kind in other.types.items():
            self.types[name] = kind if self.types.get(name, kind) == kind else "unknown"
        for name, labels in other.labels.items():
            self.labels.setdefault(name, set()).update(labels)


def read_exposition_url(url: str, origin: str | None = None, timeout: float = HTTP_TIMEOUT) -> Exposition:
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
        self.client = Prometheus(self.url, timeout=timeout)
        self._present: dict[str, bool] = {}
        self._held: dict[str, bool] = {}  # any series within the look-back window
        self._last_seen: dict[str, float | None] = {}
        self._labels: dict[str, frozenset[str]] = {}
        self._types: dict[str, str] | None = None
        self._names: set[str] | None = None

    def _get(self, path: str, params: dict[str, Any] | None = None, post: bool = False) -> Any:
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


@dataclass
class MetricVerdict:
    kind: str  # see KINDS
    severity: str  # error | warning
    message: str  # without the subject ("rule X: ", "panel 'T' (A): "); the caller adds it
    metric: str | None = None  # the metric it is about (findings point at the line naming it)
    label: str | None = None
    exported: bool | None = None  # in the expositions (None: none given)
    prometheus: str | None = None  # present | gone | never (None: no Prometheus)


# Every kind of verdict, with what it means (README and `sealgate lint --help` say the same).
KINDS = {
    "metric-missing": "a metric no source has (never exported, never held by Prometheus in the look-back window)",
    "metric-disappeared": "Prometheus held the metric within the look-back window but holds no series of it now",
    "metric-not-scraped": "the exposition exports the metric but Prometheus holds no series of it",
    "recorded-input-missing": "a recorded series whose recording rule reads metrics that do not exist",
    "pattern-unmatched": "a {__name__=~…} selector that matches no metric",
    "label-missing": "a label matcher on a label the metric never carries (exposition and Prometheus)",
    "absent-always-true": "absent() of a metric that exists nowhere: the query is always true",
    "fallback-always": "the optional side of `or vector()` / `unless` matches nothing: the fallback always wins",
    "not-judgeable": "a metric name built from a Grafana variable: it cannot be judged statically",
    "rate-on-gauge": "rate()/irate()/increase() of a gauge",
    "counter-compared": "a counter's raw value in a comparison, with no rate()/increase()",
}


@dataclass
class _Status:
    exists: bool
    verdict: MetricVerdict | None = None  # why it does not exist (or a warning about it)


class Parecer:
    """Judges analysed queries (promql.analyse) against the given sources; caches everything it asks."""

    def __init__(
        self,
        expositions: list[Exposition] | None = None,
        prometheus: PrometheusSource | None = None,
        recordings: Iterable[Recording] = (),
        target_labels: Iterable[str] = TARGET_LABELS,
    ) -> None:
        self.exposition: Exposition | None = None
        for exposition in expositions or []:
            if self.exposition is None:  # a copy: merging the next ones must not change the caller's
                self.exposition = Exposition(exposition.origin, set(exposition.names), dict(exposition.types))
                self.exposition.labels = {name: set(labels) for name, labels in exposition.labels.items()}
            else:
                self.exposition.merge(exposition)
        self.prometheus = prometheus
        self.recordings: dict[str, list[Recording]] = {}
        for recording in recordings:
            self.recordings.setdefault(recording.name, []).append(recording)
        self.target_labels = frozenset(target_labels)
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
                if not name or TEMPLATED in name or name in promql.GENERATED_METRICS:
                    continue
                names.add(name)
                if name in self.recordings and name not in seen_recorded:
                    seen_recorded.add(name)
                    pending += [a for r in self.recordings[name] if (a := self._analysis(r.expr)) is not None]
        self.prometheus.prefetch(names)
        need_labels = set()
        for analysis in analyses:
            for use in analysis.uses:
                name = use.ref.name
                if (
                    name
                    and name in names
                    and self.prometheus.held(name)
                    and any(m.requires_label() for m in use.matchers)
                ):
                    known = self.exposition.labels.get(name) if self.exposition else None
                    if known is None or any(m.label not in known for m in use.matchers if m.requires_label()):
                        need_labels.add(name)
        self.prometheus.prefetch_labels(need_labels)

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
        self._status[name] = status
        return status

    def _source_status(self, name: str) -> _Status:
        exposition, prometheus = self.exposition, self.prometheus
        exported = name in exposition.names if exposition else None
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
            return _Status(True)
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

    # -- a query
    def judge(self, analysis: promql.Analysis) -> list[MetricVerdict]:
        verdicts: dict[tuple[str, str | None, str | None], MetricVerdict] = {}
        for use in analysis.uses:
            for verdict in self._judge_use(use):
                # Two selectors of one metric (`errors{code=~"5.."} / errors`) make one finding about it.
                key = (
                    (verdict.kind, verdict.metric, verdict.label)
                    if verdict.metric
                    else (verdict.kind, verdict.message, None)
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
        if name in promql.GENERATED_METRICS:
            return []
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
                    or verdict.kind == "recorded-input-missing"
                )
                if not never:
                    return []
                message = f"absent() of {use} is always true: {verdict.message}"
                return [
                    replace(
                        verdict, kind="absent-always-true", severity=WARNING, message=message, metric=name, label=None
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
        return self._judge_labels(use) + self._judge_type(use)

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
                message = (
                    f"{use}: metric {name} never carries label {matcher.label!r} in {where} "
                    f"(its labels: {', '.join(carried) or 'none'}), so the selector matches nothing"
                )
                verdicts.append(
                    MetricVerdict("label-missing", WARNING if use.optional else ERROR, message, name, matcher.label)
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


def variable_options(source: Prometheus | None) -> OptionSource | None:
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

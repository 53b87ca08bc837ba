"""rules/alert-drill: the spec's alerts really fire, reach Alertmanager and the receiver, then resolve — each phase
on its own copy of the stack, all phases at once.

The drill is a set of named phases the spec declares. Each is an independent unit that runs on its own isolated copy
of the stack (its own compose project or process set, ports, volumes and data: `ctx.stack_copy`), limited to the
services the phase needs — Prometheus, Alertmanager, the receiver, the scraped target and whatever its fault and
traffic name. The copies are started in the background when the run begins (the check's `prepare`), the check is
concurrent (the stages after its own run on the main stack meanwhile), and its phases run side by side: a whole drill
costs its longest phase, not the sum. A phase marked `on_request: true` runs only with `--drill all` (a long `for`
window worth proving live now and then, covered by a unit test otherwise).

Each phase is a sequence of small named steps:

    prepare   the phase's `restore` is applied (a copy starts clean; this keeps a phase honest on any stack) and its
              alerts must be inactive in Prometheus;
    inject    its `fault`, a generic primitive: `stop: SERVICE`, `start: SERVICE` or `post: {service, path, body}`;
    fire      while the phase's `traffic` (its target's described traffic request) is sent — until Prometheus holds
              every alert pending, or firing (`until: firing`, for a rule whose condition needs traffic all along its
              `for`) — each alert must go pending -> firing in Prometheus -> active in Alertmanager -> delivered to
              the receiver, within its rule's real `for` plus the scrape and evaluation cadence;
    restore   the phase's `restore`, the same primitives;
    resolve   traffic again (`after_restore` may send it faster) until Prometheus resolved the alerts (a recovery may
              need calls, e.g. a circuit breaker that closes only on a successful one, or a ratio diluted by good
              calls), and each alert must be resolved in Prometheus — after a fresh scrape of the target answering
              `up`, so a resolution cannot come from the target vanishing — in Alertmanager, and its resolution
              delivered to the receiver.

The receiver is observed through its output (`logs`): a delivery is a line, new since the step began, that names the
alert as a whole word and whose first `firing`/`resolved` word (any case) is its status — what Alertmanager's webhook
payload carries (`status`, `alertname`), whatever the receiver's own line format.

Then the coverage (checks/alert_coverage.py): every alerting rule of the rule files must be covered by a promtool
unit test, by a phase of this drill, or by a waiver; one covered by none is a finding.

Evidence: per alert, the seconds from the fault to pending, firing, active in Alertmanager and delivered, and from
the restore to resolved in each place (`alerts`); per phase the same with wall-clock timestamps, its copy, how long it
waited for it, its traffic and its verdict (`phases`); a timeline of events; the coverage table (`coverage`). Every
wait is recorded with ctx.note_wait. A copy's fault is never undone on an interrupt: the copy is removed with its data.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml

from sealgate.analysis.alert_coverage import DrillProof, judge_coverage
from sealgate.analysis.described import described_service, param_error, param_where, service_by_role
from sealgate.analysis.rulefiles import duration_s
from sealgate.api.context import CheckErrored, CheckFailed, CheckSkipped, Context
from sealgate.api.params import REPO_GLOBS
from sealgate.api.registry import check
from sealgate.backends.errors import ServiceNotRunning, StackError, StackUnavailable
from sealgate.backends.http import HttpAnswerError, Prometheus, get_json, request, send_traffic
from sealgate.kernel.errors import SealgateError
from sealgate.kernel.poll import poll
from sealgate.kernel.text import iso_to_epoch

if TYPE_CHECKING:
    from sealgate.backends.base import StackBackend
    from sealgate.backends.description import ServiceDecl

RECEIVER_TAIL = 2000  # lines of the receiver's output read at each poll
PROGRESS_EVERY_S = 10.0
DEFAULT_EVERY_S = 1.0
DEFAULT_MAX_REQUESTS = 20
TRAFFIC_DRAIN_S = 20.0  # an answer still in flight when a step ends (a slow provider): waited for this long at most

_SERVICE: dict[str, Any] = {"type": "string", "minLength": 1}
_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["service", "path"],
    "properties": {"service": _SERVICE, "path": {"type": "string", "pattern": "^/"}, "body": {}},
}
_ACTION: dict[str, Any] = {
    "type": "object",
    "description": "one primitive: stop or start a service, or POST a JSON body to a path of a service",
    "additionalProperties": False,
    "minProperties": 1,
    "maxProperties": 1,
    "properties": {"stop": _SERVICE, "start": _SERVICE, "post": _REQUEST},
}
_PACE: dict[str, Any] = {
    "every_s": {"type": "number", "minimum": 0.2, "maximum": 60},
    "max_requests": {"type": "integer", "minimum": 1, "maximum": 1000},
}
_TRAFFIC: dict[str, Any] = {
    "type": "object",
    "description": "send the target's described traffic request while the fault lasts and while it recovers; one "
    "request in flight at a time",
    "additionalProperties": False,
    "properties": {
        "service": {**_SERVICE, "description": "default: the described main target"},
        **_PACE,
        "until": {
            "enum": ["pending", "firing"],
            "description": "during the fault, send until every alert is pending (default: the fault is noticed) or "
            "firing (a rule whose condition needs traffic throughout its `for`)",
        },
        "after_restore": {
            "type": "object",
            "additionalProperties": False,
            "description": "another pace for the recovery (e.g. many good calls that dilute a ratio)",
            "properties": _PACE,
        },
    },
}
_PHASE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "alerts", "fault", "restore"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "alerts": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True},
        "fault": _ACTION,
        "restore": _ACTION,
        "traffic": _TRAFFIC,
        "on_request": {
            "type": "boolean",
            "description": "run only with `--drill all` (a long `for` window; its alerts need a unit test or a "
            "waiver otherwise)",
        },
    },
    "examples": [{"name": "app_down", "alerts": ["AppDown"], "fault": {"stop": "app"}, "restore": {"start": "app"}}],
}
PARAMS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["phases"],
    "properties": {
        "receiver": {
            **_SERVICE,
            "description": "where delivered alerts are observed (its output); default: role receiver",
        },
        "phases": {"type": "array", "minItems": 1, "items": _PHASE},
        "rules": {**REPO_GLOBS, "description": "the rule files whose coverage is judged; default: those the "
                  "described Prometheus loads"},
        "unit_tests": {
            "type": "array",
            "items": REPO_GLOBS["items"],
            "description": "promtool unit test files (globs) that cover alerts; default: the spec's "
            "rules/promtool-test `tests`",
        },
        "budgets": {
            "type": "object",
            "description": "a team's alerting SLO per alert: seconds from the fault until the alert is delivered "
            "firing to the receiver (max_fire_s), and from the restore until its resolution is (max_resolve_s); a "
            "phase over a budget fails naming the alert and both numbers",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "max_fire_s": {"type": "number", "exclusiveMinimum": 0},
                    "max_resolve_s": {"type": "number", "exclusiveMinimum": 0},
                },
            },
        },
    },
}  # fmt: skip


# --- what the spec declares ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """A fault or its undoing: one generic primitive on one described service."""

    verb: str  # stop | start | post
    service: str
    path: str = ""
    body: Any = None

    def __str__(self) -> str:
        if self.verb == "post":
            body = "" if self.body is None else " " + json.dumps(self.body, sort_keys=True)
            return f"POST {self.service} {self.path}{body}"
        return f"{self.verb} {self.service}"


@dataclass(frozen=True)
class Pace:
    every_s: float
    max_requests: int


@dataclass(frozen=True)
class TrafficPlan:
    target: ServiceDecl
    during_fault: Pace
    after_restore: Pace
    until: str  # pending | firing


@dataclass(frozen=True)
class Phase:
    name: str
    alerts: tuple[str, ...]
    fault: Action
    restore: Action
    traffic: TrafficPlan | None
    on_request: bool = False

    @property
    def copy_name(self) -> str:
        """Its copy of the stack: `drill-<name>` (a compose project suffix: lowercase, digits and `-`)."""
        return "drill-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


def _action(ctx: Context, raw: dict[str, Any], at: tuple[Any, ...]) -> Action:
    verb, value = next(iter(raw.items()))
    if verb == "post":
        described_service(ctx, str(value["service"]), (*at, "post", "service"))
        return Action("post", str(value["service"]), str(value["path"]), value.get("body"))
    described_service(ctx, str(value), (*at, verb))
    return Action(verb, str(value))


def _traffic(ctx: Context, spec: dict[str, Any], at: tuple[Any, ...]) -> TrafficPlan:
    target = (
        described_service(ctx, str(spec["service"]), (*at, "traffic", "service"))
        if spec.get("service")
        else ctx.description.main_target()
    )
    if target.traffic is None:
        param_error(
            ctx,
            (*at, "traffic"),
            f"service {target.name} has no `traffic:` request in {ctx.description.path}",
            "describe the request that makes it do real work",
        )
    during = Pace(float(spec.get("every_s", DEFAULT_EVERY_S)), int(spec.get("max_requests", DEFAULT_MAX_REQUESTS)))
    after = spec.get("after_restore") or {}
    recovery = Pace(float(after.get("every_s", during.every_s)), int(after.get("max_requests", during.max_requests)))
    return TrafficPlan(target, during, recovery, str(spec.get("until", "pending")))


def phases_of(ctx: Context) -> list[Phase]:
    """The spec's phases, every service checked against the stack description (an error at its spec line)."""
    phases: list[Phase] = []
    drilled: dict[str, str] = {}
    copies: dict[str, str] = {}
    for index, raw in enumerate(ctx.params["phases"]):
        at = ("phases", index)
        name = str(raw["name"])
        if any(p.name == name for p in phases):
            param_error(ctx, (*at, "name"), f"phase {name!r} is declared twice")
        for ai, alert in enumerate(raw["alerts"]):
            if alert in drilled:
                param_error(ctx, (*at, "alerts", ai), f"alert {alert} is already drilled by phase {drilled[alert]!r}")
            drilled[alert] = name
        phase = Phase(
            name,
            tuple(str(a) for a in raw["alerts"]),
            _action(ctx, raw["fault"], (*at, "fault")),
            _action(ctx, raw["restore"], (*at, "restore")),
            _traffic(ctx, raw["traffic"], at) if "traffic" in raw else None,
            bool(raw.get("on_request", False)),
        )
        if phase.copy_name in copies:
            param_error(
                ctx, (*at, "name"), f"phase {name!r} would share its stack copy with phase {copies[phase.copy_name]!r}"
            )
        copies[phase.copy_name] = name
        phases.append(phase)
    return phases


def requested(ctx: Context, phases: list[Phase]) -> list[Phase]:
    """The phases this run drills: all with `--drill all`, else those not marked `on_request`."""
    return [p for p in phases if ctx.options.drill == "all" or not p.on_request]


def copy_services(ctx: Context, phase: Phase, receiver: str) -> list[str]:
    """What a phase's copy runs: Prometheus, Alertmanager, the receiver, the scraped target, and every service its
    fault, restore and traffic name — in the description's start order (compose adds their dependencies)."""
    wanted = {
        service_by_role(ctx, "prometheus"),
        service_by_role(ctx, "alertmanager"),
        receiver,
        ctx.description.main_target().name,
        phase.fault.service,
        phase.restore.service,
    }
    if phase.traffic is not None:
        wanted.add(phase.traffic.target.name)
    return [name for name in ctx.description.services if name in wanted]


# --- what the drill observes ---------------------------------------------------------------------------------------

_STATUS_WORD = re.compile(r"\b(firing|resolved)\b", re.IGNORECASE)


def lines_after(current: list[str], snapshot: list[str]) -> list[str]:
    """The lines of `current` (a log's tail) written after `snapshot` (an earlier tail of the same log)."""
    if not snapshot:
        return current
    tail = snapshot[-3:]
    for start in range(len(current) - len(tail), -1, -1):
        if current[start : start + len(tail)] == tail:
            return current[start + len(tail) :]
    return current  # the snapshot scrolled out of the tail: every visible line came after it


def delivery_status(line: str, alert: str) -> str | None:
    """`firing` / `resolved` when `line` reports a delivery of `alert`, else None."""
    if not re.search(rf"(?<![\w.-]){re.escape(alert)}(?![\w.-])", line):
        return None
    word = _STATUS_WORD.search(line)
    return word.group(1).lower() if word else None


@dataclass
class Observation:
    """One poll of the three places an alert shows up."""

    prometheus: list[dict[str, Any]]  # /api/v1/alerts
    alertmanager: list[dict[str, Any]]  # /api/v2/alerts
    receiver: list[str]  # the receiver's output, last lines
    errors: list[str]

    def prom_state(self, alert: str) -> str:
        states = [a.get("state") for a in self.prometheus if a.get("labels", {}).get("alertname") == alert]
        return "firing" if "firing" in states else ("pending" if "pending" in states else "inactive")

    def am_active(self, alert: str, since: float) -> bool:
        return any(
            a.get("labels", {}).get("alertname") == alert
            and (a.get("status") or {}).get("state") == "active"
            and iso_to_epoch(a.get("endsAt", "")) > time.time()
            and iso_to_epoch(a.get("startsAt", "")) >= since - 2
            for a in self.alertmanager
        )

    def am_cleared(self, alert: str) -> bool:
        return not any(
            a.get("labels", {}).get("alertname") == alert and iso_to_epoch(a.get("endsAt", "")) > time.time()
            for a in self.alertmanager
        )

    def delivered(self, alert: str, status: str, snapshot: list[str]) -> bool:
        return any(delivery_status(line, alert) == status for line in lines_after(self.receiver, snapshot))


@dataclass
class AlertExpectation:
    """One thing the drill waits to see in one place, and when it saw it."""

    alert: str | None  # None: a fact about the phase, not one alert
    key: str  # pending_prometheus, fire_alertmanager, resolve_receiver, ...
    label: str
    place: str  # where to look, for a finding: an URL or the receiver's output
    probe: Callable[[Observation], bool]
    started: float  # time.monotonic() when its step began
    met_at: float | None = None
    met_wall: float | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.met_at is None else round(self.met_at - self.started, 1)


def _iso(wall: float | None) -> str | None:
    if wall is None:
        return None
    moment = datetime.datetime.fromtimestamp(wall, datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TrafficRun:
    """A phase's traffic during one step: one request at a time, one every `every_s`, until `until` holds or the
    budget is spent. Requests go out from a thread of their own, so a slow answer (a latency fault) never delays the
    observation of the alerts."""

    stack: StackBackend
    target: ServiceDecl
    pace: Pace
    until: Callable[[Observation], bool]
    statuses: list[str] = field(default_factory=list)
    next_at: float = 0.0
    stopped: str = ""
    _in_flight: Future[dict[str, int]] | None = None
    _sender: ThreadPoolExecutor | None = None

    def due_in(self) -> float:
        if self.stopped:
            return 1.0
        return max(0.0, self.next_at - time.monotonic())

    def _collect(self) -> None:
        if self._in_flight is None or not self._in_flight.done():
            return
        try:
            self.statuses.append(next(iter(self._in_flight.result())))
        except StackError:
            self.statuses.append("no answer")
        self._in_flight = None

    def step(self, observation: Observation) -> None:
        self._collect()
        if self.stopped:
            return
        if self.until(observation):
            self.stopped = f"condition met after {len(self.statuses) + (self._in_flight is not None)} requests"
            return
        if len(self.statuses) + (self._in_flight is not None) >= self.pace.max_requests:
            self.stopped = f"max_requests {self.pace.max_requests} sent"
            return
        if self._in_flight is not None or time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.pace.every_s
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sealgate-drill-traffic")
        self._in_flight = self._sender.submit(send_traffic, self.stack, 1, self.target)

    def close(self) -> None:
        """The step is over: the answer in flight is waited for (bounded) and counted."""
        if self._in_flight is not None:
            # An answer that failed is counted as "no answer" below; one still running is not counted.
            with contextlib.suppress(Exception):
                self._in_flight.result(timeout=TRAFFIC_DRAIN_S)
            self._collect()
        if self._sender is not None:
            self._sender.shutdown(wait=False)

    def to_json(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for status in self.statuses:
            counts[status] = counts.get(status, 0) + 1
        return {
            "sent": len(self.statuses),
            "every_s": self.pace.every_s,
            "statuses": counts,
            "stopped": self.stopped or "step ended",
        }


# --- the drill -----------------------------------------------------------------------------------------------------


@dataclass
class RuleFacts:
    """What the running Prometheus evaluates: each alert's `for` and labels, the scrape and evaluation intervals;
    and how long the running Alertmanager holds each alert's first notification (its route's `group_wait`)."""

    for_s: dict[str, float]
    scrape_s: float
    evaluation_s: float
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    group_wait_s: dict[str, float] = field(default_factory=dict)

    @property
    def slack(self) -> float:
        """First scrape + evaluation to notice, one more of each, and delivery."""
        return 2 * self.scrape_s + 2 * self.evaluation_s + 30

    def fire_bound(self, alert: str) -> float:
        """How long the drill waits for `alert` to be delivered firing after its fault: its `for`, the slack, and
        Alertmanager's group_wait for it."""
        return self.for_s[alert] + self.slack + self.group_wait_s.get(alert, 0.0)

    @classmethod
    def read(cls, prometheus: Prometheus, alertmanager: str | None = None) -> RuleFacts:
        groups = list((prometheus.api("rules") or {}).get("groups") or [])
        rules = [r for g in groups for r in g.get("rules", [])]
        for_s = {r["name"]: float(r.get("duration", 0)) for r in rules}
        labels = {r["name"]: {str(k): str(v) for k, v in (r.get("labels") or {}).items()} for r in rules}
        evaluation_s = max([float(g.get("interval", 15)) for g in groups] or [15.0])
        config = yaml.safe_load((prometheus.api("status/config") or {}).get("yaml") or "") or {}
        scrape_s = max(
            [duration_s((config.get("global") or {}).get("scrape_interval", "15s"))]
            + [duration_s(job.get("scrape_interval", "0s")) for job in config.get("scrape_configs") or []]
        )
        waits: dict[str, float] = {}
        if alertmanager is not None:
            status = get_json(f"{alertmanager}/api/v2/status")
            route = (yaml.safe_load(((status or {}).get("config") or {}).get("original") or "") or {}).get("route")
            waits = {name: group_wait(route or {}, {"alertname": name, **labels[name]}) for name in for_s}
        return cls(for_s, scrape_s, evaluation_s, labels, waits)


@dataclass(frozen=True)
class Budget:
    """One drilled alert's time budget: the bound the drill computes (what it waits at most) and the spec's own
    alerting SLO, if it states one."""

    alert: str
    fire_bound_s: float
    resolve_bound_s: float
    max_fire_s: float | None = None
    max_resolve_s: float | None = None
    where: str = ""  # the spec's line of the stated budget

    def over(self, fired_s: float | None, resolved_s: float | None) -> list[str]:
        """What exceeds the stated budget, each naming the alert and both numbers."""
        found = []
        if self.max_fire_s is not None and fired_s is not None and fired_s > self.max_fire_s:
            found.append(
                f"{self.alert}: delivered firing {fired_s:g}s after the fault, over its budget max_fire_s "
                f"{self.max_fire_s:g}s ({self.where})"
            )
        if self.max_resolve_s is not None and resolved_s is not None and resolved_s > self.max_resolve_s:
            found.append(
                f"{self.alert}: resolution delivered {resolved_s:g}s after the restore, over its budget "
                f"max_resolve_s {self.max_resolve_s:g}s ({self.where})"
            )
        return found


def group_wait(route: dict[str, Any], labels: dict[str, str], inherited: float = 30.0) -> float:
    """Seconds Alertmanager holds the first notification of an alert with `labels`: the `group_wait` of the route
    that takes it (the first matching child, depth first, as Alertmanager routes; inherited down the tree)."""
    own = duration_s(route["group_wait"]) if route.get("group_wait") else inherited
    for child in route.get("routes") or []:
        if isinstance(child, dict) and route_matches(child, labels):
            return group_wait(child, labels, own)
    return own


_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def route_matches(route: dict[str, Any], labels: dict[str, str]) -> bool:
    """A route's `match`, `match_re` and `matchers` against an alert's labels (an unset label is empty)."""
    tests: list[tuple[str, str, str]] = [(k, "=", str(v)) for k, v in (route.get("match") or {}).items()]
    tests += [(k, "=~", str(v)) for k, v in (route.get("match_re") or {}).items()]
    for text in route.get("matchers") or []:
        parsed = _MATCHER.match(str(text))
        if parsed:
            tests.append((parsed[1], parsed[2], parsed[3]))
    for name, op, value in tests:
        have = labels.get(name, "")
        hit = re.fullmatch(value, have) is not None if op in ("=~", "!~") else have == value
        if hit != (op in ("=", "=~")):
            return False
    return True


class Drill:
    """One phase's copy of the stack as the drill sees it: Prometheus, Alertmanager and the receiver, and the
    phase's timeline (times since the drill began, shared by every phase)."""

    def __init__(
        self,
        ctx: Context,
        stack: StackBackend,
        receiver: str,
        facts: RuleFacts,
        t0: float,
        name: str,
        budgets: dict[str, Budget] | None = None,
    ) -> None:
        self.ctx = ctx
        self.stack = stack
        self.name = name
        self.prometheus = Prometheus(stack.url(service_by_role(ctx, "prometheus")))
        self.alertmanager = stack.url(service_by_role(ctx, "alertmanager"))
        self.receiver = receiver
        self.job = ctx.description.main_target().job or ""
        self.facts = facts
        self.budgets = budgets or {}
        self.timeline: list[dict[str, Any]] = []
        self.t0 = t0

    @property
    def slack(self) -> float:
        return self.facts.slack

    def say(self, text: str) -> None:
        self.stack.progress(f"drill: {text}")

    def event(self, what: str) -> float:
        wall = time.time()
        elapsed = time.monotonic() - self.t0
        self.timeline.append({"t_s": round(elapsed, 1), "at": _iso(wall), "phase": self.name, "event": what})
        self.say(f"{what} (t+{elapsed:.0f}s)")
        return wall

    def receiver_lines(self) -> list[str]:
        return self.stack.logs(self.receiver, tail=RECEIVER_TAIL).splitlines()

    def observe(self) -> Observation:
        errors: list[str] = []
        try:
            prom = list((self.prometheus.api("alerts") or {}).get("alerts") or [])
        except (StackError, HttpAnswerError) as exc:
            prom, errors = [], [*errors, f"{self.prometheus.base}/api/v1/alerts: {exc}"]
        try:
            am = get_json(f"{self.alertmanager}/api/v2/alerts")
            am = am if isinstance(am, list) else []
        except (StackError, HttpAnswerError) as exc:
            am, errors = [], [*errors, f"{self.alertmanager}/api/v2/alerts: {exc}"]
        try:
            lines = self.receiver_lines()
        except Exception as exc:  # a backend error reading output: keep polling, report if it lasts
            lines, errors = [], [*errors, f"{self.receiver} output: {exc}"]
        return Observation(prom, am, lines, errors)

    def apply(self, action: Action) -> None:
        if action.verb == "stop":
            self.stack.stop_service(action.service)
        elif action.verb == "start":
            self.stack.start_service(action.service)
        else:
            answer = request("POST", self.stack.url(action.service) + action.path, body=action.body)
            if not answer.ok:
                self.ctx.error(f"{action}: HTTP {answer.status} {json.dumps(answer.body)[:200]}")

    def target_up_since(self, since: float) -> bool:
        """Prometheus holds a sample of the target's job scraped after `since` (epoch s), and it says `up`."""
        try:
            values = self.prometheus.query(f'up{{job="{self.job}"}}')
            return (
                bool(values)
                and all(float(v["value"][1]) == 1 for v in values)
                and self.prometheus.newest_sample(self.job) > since
            )
        except (StackError, HttpAnswerError, KeyError, ValueError):
            return False

    def wait(
        self, what: str, expectations: list[AlertExpectation], timeout: float, traffic: TrafficRun | None = None
    ) -> bool:
        """Poll until every expectation is met or `timeout` passes, sending the traffic between polls; a progress
        line every 10 s. Ends at once (the check errored) when the run is stopped."""
        last_line = [time.monotonic()]

        def all_met() -> bool:
            observation = self.observe()
            now = time.monotonic()
            for expectation in expectations:
                if expectation.met_at is None and expectation.probe(observation):
                    expectation.met_at, expectation.met_wall = now, time.time()
                    self.event(f"{self.name}: {expectation.label} after {expectation.seconds}s")
            if all(e.met_at is not None for e in expectations):
                return True
            if traffic is not None:
                traffic.step(observation)
            if now - last_line[0] >= PROGRESS_EVERY_S:
                alerts = sorted({e.alert for e in expectations if e.alert})
                states = ", ".join(f"{a} {observation.prom_state(a)} in Prometheus" for a in alerts)
                self.say(
                    f"{self.name}: waiting {now - start:.0f}/{timeout:.0f}s — {states}; still to see: "
                    + "; ".join(e.label for e in expectations if e.met_at is None)
                    + (f" (errors: {'; '.join(observation.errors)})" if observation.errors else "")
                )
                last_line[0] = now
            return False

        def pause(seconds: float) -> None:
            self.ctx.sleep(min(seconds, traffic.due_in()) if traffic is not None else seconds)

        start = time.monotonic()
        try:
            met, waited = poll(all_met, timeout=timeout, interval=1.0, sleep=pause)
            self.ctx.note_wait(what if met else f"{what} (timed out)", waited)
            return met
        finally:
            if traffic is not None:
                traffic.close()


@dataclass
class PhaseRun:
    """One phase as it ran: the facts its evidence records."""

    phase: Phase
    status: str = "not run"
    copy: dict[str, Any] = field(default_factory=dict)  # the stack copy it ran on
    waited_for_copy_s: float | None = None  # from the drill's start until its copy was ready
    began: float | None = None  # time.monotonic() when its first step began
    started_at: float | None = None
    fault_at: float | None = None
    restored_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None  # first step to last
    expectations: list[AlertExpectation] = field(default_factory=list)
    traffic: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def proof(self, alert: str) -> DrillProof:
        seen = {e.key: e.seconds for e in self.expectations if e.alert == alert}
        return DrillProof(
            self.phase.name,
            self.status,
            seen.get("fire_prometheus"),
            seen.get("fire_receiver"),
            seen.get("resolve_receiver"),
        )

    def to_json(self) -> dict[str, Any]:
        events: dict[str, dict[str, Any]] = {alert: {} for alert in self.phase.alerts}
        checks: dict[str, Any] = {}
        for e in self.expectations:
            entry = {"s": e.seconds, "at": _iso(e.met_wall)}
            if e.alert is None:
                checks[e.key] = entry
            else:
                events[e.alert][e.key] = entry
        return {
            "name": self.phase.name,
            "alerts": list(self.phase.alerts),
            "fault": str(self.phase.fault),
            "restore": str(self.phase.restore),
            "on_request": self.phase.on_request,
            "status": self.status,
            "copy": self.copy,
            "waited_for_copy_s": self.waited_for_copy_s,
            "started_at": _iso(self.started_at),
            "fault_at": _iso(self.fault_at),
            "restored_at": _iso(self.restored_at),
            "finished_at": _iso(self.finished_at),
            "duration_s": self.duration_s,
            "events": events,
            "checks": checks,
            "traffic": self.traffic,
        }


def prepare(drill: Drill, phase: Phase) -> None:
    """A clean start: the phase's restore applied, its alerts inactive in Prometheus."""
    drill.apply(phase.restore)
    began = time.monotonic()
    clear = [
        AlertExpectation(a, "clear", f"{a} inactive before the phase", "", _in_state(a, "inactive"), began)
        for a in phase.alerts
    ]
    traffic = (
        TrafficRun(drill.stack, phase.traffic.target, phase.traffic.after_restore, lambda o: False)
        if phase.traffic
        else None
    )
    if not drill.wait(f"{phase.name}: earlier alerts cleared", clear, 120 + drill.slack, traffic):
        drill.ctx.error(
            f"{phase.name}: alerts of an earlier drill are still active in Prometheus after waiting: "
            + ", ".join(e.alert or "" for e in clear if e.met_at is None)
        )


def inject(drill: Drill, run: PhaseRun) -> list[str]:
    """The fault; returns the receiver's output before it, so deliveries after it can be told apart."""
    snapshot = drill.receiver_lines()
    run.fault_at = drill.event(f"{run.phase.name}: fault injected: {run.phase.fault}")
    drill.apply(run.phase.fault)
    return snapshot


# Probes: one observation in, met or not out.
def _pending(alert: str) -> Callable[[Observation], bool]:
    return lambda o: o.prom_state(alert) in ("pending", "firing")


def _in_state(alert: str, state: str) -> Callable[[Observation], bool]:
    return lambda o: o.prom_state(alert) == state


def _am_active(alert: str, since: float) -> Callable[[Observation], bool]:
    return lambda o: o.am_active(alert, since)


def _am_cleared(alert: str) -> Callable[[Observation], bool]:
    return lambda o: o.am_cleared(alert)


def _delivered(alert: str, status: str, snapshot: list[str]) -> Callable[[Observation], bool]:
    return lambda o: o.delivered(alert, status, snapshot)


def wait_fire(drill: Drill, run: PhaseRun, snapshot: list[str]) -> bool:
    """Pending -> firing in Prometheus -> active in Alertmanager -> delivered, for every alert of the phase."""
    phase, since, began = run.phase, run.fault_at or time.time(), time.monotonic()
    prom, am = f"{drill.prometheus.base}/api/v1/alerts", f"{drill.alertmanager}/api/v2/alerts"
    out = f"{drill.receiver} output"
    expectations: list[AlertExpectation] = []
    for a in phase.alerts:
        expectations += [
            AlertExpectation(a, "pending_prometheus", f"{a} pending in Prometheus", prom, _pending(a), began),
            AlertExpectation(a, "fire_prometheus", f"{a} firing in Prometheus", prom, _in_state(a, "firing"), began),
            AlertExpectation(a, "fire_alertmanager", f"{a} active in Alertmanager", am, _am_active(a, since), began),
            AlertExpectation(
                a, "fire_receiver", f"{a} delivered to {drill.receiver}", out, _delivered(a, "firing", snapshot), began
            ),
        ]
    run.expectations += expectations
    traffic = None
    if phase.traffic:
        # By default until Prometheus holds every alert pending: the fault is noticed; more traffic would only keep
        # the target busy (a breaker kept busy re-opens at each failed trial and delays its own recovery). A rule
        # whose condition needs traffic all along its `for` (an error ratio) says `until: firing`.
        wanted = "firing" if phase.traffic.until == "firing" else None
        traffic = TrafficRun(
            drill.stack,
            phase.traffic.target,
            phase.traffic.during_fault,
            lambda o: all(o.prom_state(a) == wanted if wanted else o.prom_state(a) != "inactive" for a in phase.alerts),
        )
    timeout = max(drill.facts.fire_bound(a) for a in phase.alerts)
    fired = drill.wait(f"{phase.name}: alerts fire", expectations, timeout, traffic)
    if traffic is not None:
        run.traffic["during_fault"] = traffic.to_json()
    report_unmet(drill, expectations, timeout, f"the fault ({phase.name}: {phase.fault})")
    return fired


def restore(drill: Drill, run: PhaseRun) -> list[str]:
    """Undo the fault; returns the receiver's output before it."""
    snapshot = drill.receiver_lines()
    run.restored_at = drill.event(f"{run.phase.name}: restored: {run.phase.restore}")
    drill.apply(run.phase.restore)
    return snapshot


def wait_resolved(drill: Drill, run: PhaseRun, snapshot: list[str]) -> bool:
    """Resolved in Prometheus (from a fresh scrape of the target answering up), in Alertmanager, and delivered."""
    phase, since, began = run.phase, run.restored_at or time.time(), time.monotonic()
    prom, am = f"{drill.prometheus.base}/api/v1/alerts", f"{drill.alertmanager}/api/v2/alerts"
    out = f"{drill.receiver} output"
    query = f'{drill.prometheus.base}/api/v1/query up{{job="{drill.job}"}}'
    expectations = [
        AlertExpectation(
            None, "target_scraped_up", f"{drill.job} scraped up after the restore", query,
            lambda _o: drill.target_up_since(since), began,
        )
    ]  # fmt: skip
    for a in phase.alerts:
        expectations += [
            AlertExpectation(
                a, "resolve_prometheus", f"{a} resolved in Prometheus", prom, _in_state(a, "inactive"), began
            ),
            AlertExpectation(a, "resolve_alertmanager", f"{a} resolved in Alertmanager", am, _am_cleared(a), began),
            AlertExpectation(
                a,
                "resolve_receiver",
                f"{a} resolution delivered to {drill.receiver}",
                out,
                _delivered(a, "resolved", snapshot),
                began,
            ),
        ]
    run.expectations += expectations
    traffic = None
    window = 0.0
    if phase.traffic:
        pace = phase.traffic.after_restore
        traffic = TrafficRun(
            drill.stack, phase.traffic.target, pace, lambda o: all(o.prom_state(a) == "inactive" for a in phase.alerts)
        )
        window = pace.every_s * pace.max_requests
    timeout = drill.slack + window
    resolved = drill.wait(f"{phase.name}: alerts resolve", expectations, timeout, traffic)
    if traffic is not None:
        run.traffic["after_restore"] = traffic.to_json()
    report_unmet(drill, expectations, timeout, f"the restore ({phase.name}: {phase.restore})")
    return resolved


def report_unmet(drill: Drill, expectations: list[AlertExpectation], timeout: float, since: str) -> None:
    """A finding per expectation not seen within the wait that began at `since`."""
    for e in expectations:
        if e.met_at is None:
            drill.ctx.finding(f"{e.label}: not seen within {timeout:.0f}s of {since}", json_path=e.place)


def run_phase(drill: Drill, run: PhaseRun) -> None:
    run.status = "running"
    run.began, run.started_at = time.monotonic(), time.time()
    try:
        prepare(drill, run.phase)
        snapshot = inject(drill, run)
        fired = wait_fire(drill, run, snapshot)
        snapshot = restore(drill, run)
        resolved = wait_resolved(drill, run, snapshot) if fired else False
        over = [(alert, line) for alert in run.phase.alerts for line in budget_overruns(drill, run, alert)]
        for alert, line in over:
            drill.ctx.finding(line, json_path=f"rules/alert-drill phase {run.phase.name}", rule=alert)
        run.status = "passed" if fired and resolved and not over else "failed"
    except BaseException:
        run.status = "errored"
        raise
    finally:
        run.finished_at = time.time()
        run.duration_s = round(time.monotonic() - run.began, 1)
        run.timeline = drill.timeline


def budget_overruns(drill: Drill, run: PhaseRun, alert: str) -> list[str]:
    budget = drill.budgets.get(alert)
    if budget is None:
        return []
    seen = {e.key: e.seconds for e in run.expectations if e.alert == alert}
    return budget.over(seen.get("fire_receiver"), seen.get("resolve_receiver"))


def budgets_of(ctx: Context, facts: RuleFacts, phases: list[Phase]) -> dict[str, Budget]:
    """Every drilled alert's budget: the bound the drill computes, and the spec's own where it states one."""
    stated = ctx.params.get("budgets") or {}
    for alert in stated:
        if alert not in facts.for_s:
            param_error(ctx, ("budgets", alert), f"alert {alert} is not loaded by the running Prometheus")
    budgets = {}
    for phase in phases:
        window = phase.traffic.after_restore.every_s * phase.traffic.after_restore.max_requests if phase.traffic else 0
        for alert in phase.alerts:
            own = stated.get(alert) or {}
            budgets[alert] = Budget(
                alert,
                round(facts.fire_bound(alert), 1),
                round(facts.slack + window, 1),
                own.get("max_fire_s"),
                own.get("max_resolve_s"),
                param_where(ctx, "budgets", alert) if own else "",
            )
    return budgets


def on_copy(
    ctx: Context, run: PhaseRun, receiver: str, facts: RuleFacts, t0: float, budgets: dict[str, Budget]
) -> None:
    """One phase, in a thread of its own: wait for its copy of the stack, then its steps on it."""
    phase = run.phase
    stack = ctx.stack_copy(phase.copy_name, copy_services(ctx, phase, receiver))
    run.waited_for_copy_s = round(time.monotonic() - t0, 1)
    ctx.note_wait(f"{phase.name}: its stack copy ready", run.waited_for_copy_s)
    run.copy = {"name": phase.copy_name, **_copy_facts(stack)}
    drill = Drill(ctx, stack, receiver, facts, t0, phase.name, budgets)
    try:
        run_phase(drill, run)
    finally:
        ctx.attach(f"drill-{phase.copy_name}-{receiver}.txt", _receiver_tail(stack, receiver))


def _copy_facts(stack: StackBackend) -> dict[str, Any]:
    described = stack.describe()
    keep = ("backend", "project", "run_dir", "ports", "port_choice")
    facts = {k: described[k] for k in keep if k in described}
    facts["ready_s"] = round(stack.timings.fresh_scrape or stack.timings.ready, 3)
    facts["services"] = sorted(name for name, state in stack.services().items() if state.running)
    return facts


def _receiver(ctx: Context) -> str:
    receiver = service_by_role(ctx, "receiver", "receiver")
    try:
        ctx.stack.logs(receiver, tail=1)
    except ServiceNotRunning as exc:
        ctx.skip(f"the receiver {receiver} does not run on this stack ({ctx.stack.name}): {exc.reason}")
    return receiver


def prepare_copies(ctx: Context) -> None:
    """At the run's start: one copy of the stack per phase this run drills, started in the background."""
    if ctx.options.no_drill:
        return
    receiver = service_by_role(ctx, "receiver", "receiver")
    for phase in requested(ctx, phases_of(ctx)):
        ctx.start_stack_copy(phase.copy_name, copy_services(ctx, phase, receiver))


@check(
    "rules/alert-drill",
    title="Alert drill: each phase's fault makes its alerts fire, reach Alertmanager and the receiver, then resolve; "
    "every alerting rule is covered by a unit test, a drill or a waiver",
    titles={
        "pt-BR": (
            "Drill de alertas: a falha de cada fase faz seus alertas dispararem, chegarem ao Alertmanager e "
            "ao receptor, e se resolverem; toda regra de alerta coberta por teste unitário, drill ou waiver"
        )
    },
    needs_stack=True,
    # A rule on a metric that does not exist can never fire: the drill would only wait out its timeout.
    requires=("rules/metrics-exist", "rules/loaded-live", "rules/routing"),
    params=PARAMS,
    concurrent=True,
    prepare=prepare_copies,
)
def alert_drill(ctx: Context) -> None:
    if ctx.options.no_drill:
        ctx.skip("--no-drill: the alert drill was not run, so the criteria it proves cannot pass")
    declared = phases_of(ctx)
    phases = requested(ctx, declared)
    receiver = _receiver(ctx)
    # What Prometheus evaluates, read from the main stack (its rules are the copies' rules: rules/loaded-live proved
    # them the project's), so an alert no Prometheus runs fails at once, before any copy is waited for.
    main_prometheus = Prometheus(ctx.stack.url(service_by_role(ctx, "prometheus")))
    main_alertmanager = ctx.stack.url(service_by_role(ctx, "alertmanager"))
    try:
        facts = RuleFacts.read(main_prometheus, main_alertmanager)
    except HttpAnswerError as exc:
        ctx.error(f"the running Prometheus or Alertmanager does not say its rules, intervals and routes: {exc}")
    alerts = [a for phase in phases for a in phase.alerts]
    for alert in alerts:
        if alert not in facts.for_s:
            ctx.fail(f"alert {alert} is not loaded by the running Prometheus ({main_prometheus.base}/api/v1/rules)")
    ctx.record("intervals", {"scrape_s": facts.scrape_s, "evaluation_s": facts.evaluation_s})
    ctx.record("rule_for_s", {a: facts.for_s[a] for a in alerts})
    ctx.record("group_wait_s", {a: facts.group_wait_s.get(a, 0.0) for a in alerts})
    budgets = budgets_of(ctx, facts, phases)
    ctx.record(
        "observed",
        {
            "receiver": receiver,
            "target_job": ctx.description.main_target().job or "",
            "copies": {p.name: p.copy_name for p in phases},
        },
    )
    not_run = [p for p in declared if p not in phases]
    if not_run:
        ctx.record("phases_on_request", [p.name for p in not_run])
    runs = [PhaseRun(phase) for phase in phases]
    t0, started = time.monotonic(), time.time()
    errors: dict[str, BaseException] = {}
    lock = threading.Lock()

    def one(run: PhaseRun) -> None:
        try:
            on_copy(ctx, run, receiver, facts, t0, budgets)
        except BaseException as exc:  # handed to the check's own thread below
            with lock:
                errors[run.phase.name] = exc

    threads = [threading.Thread(target=one, args=(run,), name=f"sealgate-drill-{run.phase.name}") for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record_runs(ctx, runs, started, t0)
    ctx.record("budgets", budget_table(runs, budgets))
    for run in runs:  # the first phase (in spec order) that could not run decides how the check ends
        if run.phase.name in errors:
            _raise_for(ctx, run.phase.name, errors[run.phase.name])
    proofs = {alert: run.proof(alert) for run in runs for alert in run.phase.alerts}
    on_request = {alert: p.name for p in not_run for alert in p.alerts}
    ctx.record("coverage", [row.to_json() for row in judge_coverage(ctx, proofs, on_request)])


def budget_table(runs: list[PhaseRun], budgets: dict[str, Budget]) -> list[dict[str, Any]]:
    """Per drilled alert, the computed bound and the stated budget beside the measured times (the SEAL shows them
    side by side)."""
    rows = []
    for run in runs:
        for alert in run.phase.alerts:
            seen = {e.key: e.seconds for e in run.expectations if e.alert == alert}
            budget = budgets[alert]
            rows.append(
                {
                    "alert": alert,
                    "phase": run.phase.name,
                    "fire_bound_s": budget.fire_bound_s,
                    "resolve_bound_s": budget.resolve_bound_s,
                    "max_fire_s": budget.max_fire_s,
                    "max_resolve_s": budget.max_resolve_s,
                    "fire_prometheus_s": seen.get("fire_prometheus"),
                    "fire_receiver_s": seen.get("fire_receiver"),
                    "resolve_receiver_s": seen.get("resolve_receiver"),
                    "over_budget": budget.over(seen.get("fire_receiver"), seen.get("resolve_receiver")),
                }
            )
    return rows


def record_runs(ctx: Context, runs: list[PhaseRun], started: float, t0: float) -> None:
    results: dict[str, dict[str, float | None]] = {}
    for run in runs:
        for alert in run.phase.alerts:
            results[alert] = {}
        for e in run.expectations:
            if e.alert is not None:
                results[e.alert][f"{e.key}_s"] = e.seconds
    ctx.record("alerts", results)
    # One scalar line for the SEAL report: each alert's time from its fault to firing in Prometheus.
    fired = {a: t.get("fire_prometheus_s") for a, t in results.items()}
    ctx.record("time_to_fire", ", ".join(f"{a} {s}s" if s is not None else f"{a} never" for a, s in fired.items()))
    ctx.record("phases", [run.to_json() for run in runs])
    ctx.record("timeline", sorted((e for run in runs for e in run.timeline), key=lambda e: e["t_s"]))
    ctx.record("started_at", _iso(started))
    ctx.record("total_s", round(time.monotonic() - t0, 1))
    durations = [run.duration_s for run in runs if run.duration_s is not None]
    if durations:
        ctx.record("longest_phase_s", max(durations))


def _raise_for(ctx: Context, phase: str, exc: BaseException) -> None:
    """A phase's exception, raised again in the check's own thread with the phase named."""
    if isinstance(exc, CheckSkipped):
        ctx.skip(f"{phase}: {exc}")
    if isinstance(exc, CheckFailed):
        ctx.fail(f"{phase}: {exc}")
    if isinstance(exc, (CheckErrored, SealgateError, StackUnavailable)):
        ctx.error(f"{phase}: {exc}")
    raise exc


def _receiver_tail(stack: StackBackend, receiver: str) -> str:
    try:
        return stack.logs(receiver, tail=400)
    except Exception as exc:  # evidence of a failure path must not raise
        return f"(could not read {receiver}'s output: {exc})"

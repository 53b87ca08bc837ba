"""rules/receiver-delivery: Alertmanager's integrations deliver each alert to the receivers it must reach, in those
receivers' own request formats — and to none it must not reach.

The check drives the stack's real Alertmanager, with its real configuration and secrets, the way `amtool alert add`
does: it posts the spec's alerts (labels as the spec gives them: a rule's alertname and severity) to
`/api/v2/alerts`, waits for what they must produce, then resolves them (the same alerts with `endsAt` now) and waits
again. Routing, grouping, the integrations' templates and the secret files are all Alertmanager's own; nothing is
simulated but the far end. (The alert drill, rules/alert-drill, proves the rules fire and reach a receiver; this
check proves what Alertmanager sends on from there, per integration, independently of how the drill runs.)

What arrived is judged from what the receiver service recorded: `GET <records path>` (default `/deliveries`) must
answer the JSON the stack's stand-in receivers keep —

    {"deliveries": [{"seq": 1, "received_at": "...Z", "api": "slack" | "pagerduty", "status": 202,
                     "payload": {... the request body as received, secrets masked ...}, "dedup_key": "..."}]}

— one entry per request, in arrival order. A delivery is *about* an alert when the alert's name appears in its
payload as a whole word. Each format is judged by the check itself from the payload (not from the receiver's
verdict alone):

    slack      an incoming-webhook message: a JSON object with a non-empty `text`, `blocks`, or an attachment with
               `text` or `fallback` (what Slack refuses with `no_text` otherwise); answered 2xx
    pagerduty  Events API v2: `routing_key`, `event_action` trigger, `payload` with `summary`, `source` and a
               `severity` of critical/error/warning/info, answered 2xx with a `dedup_key` — then, once the alert is
               resolved, an `event_action: resolve` with that same `dedup_key`, after the trigger

An alert that must reach no format (`expect: []`) must still be taken by Alertmanager (it lists the alert, with the
receivers its route chose) and then reach nothing of the receiver's while every other alert's deliveries arrive.
Any request the receiver refused while the check ran (4xx) is a finding: the real service would have dropped it.
"""

from __future__ import annotations

import datetime
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sealgate.analysis.described import described_service, service_by_role
from sealgate.api.context import Context
from sealgate.api.registry import check
from sealgate.backends.errors import ServiceNotRunning, StackError
from sealgate.backends.http import HttpAnswerError, get_json, request
from sealgate.kernel.poll import poll

FORMATS = ("slack", "pagerduty")
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
POLL_S = 0.5
ALERT_LIFETIME_S = 600  # endsAt of a posted alert: it stays active until the check resolves it

PARAMS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["receiver", "alerts"],
    "properties": {
        "receiver": {"type": "string", "minLength": 1, "description": "the service that records what it received"},
        "records": {"type": "string", "pattern": "^/", "description": "its record's HTTP path (default /deliveries)"},
        "within_s": {
            "type": "number",
            "minimum": 1,
            "maximum": 600,
            "description": "how long each step waits for its deliveries (default 60)",
        },
        "settle_s": {
            "type": "number",
            "minimum": 0,
            "maximum": 300,
            "description": "each step observes at least this long when an alert must reach nothing (default 10)",
        },
        "alerts": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["labels", "expect"],
                "properties": {
                    "labels": {
                        "type": "object",
                        "required": ["alertname"],
                        "additionalProperties": {"type": "string"},
                    },
                    "expect": {
                        "type": "array",
                        "items": {"enum": list(FORMATS)},
                        "uniqueItems": True,
                        "description": "the formats this alert must reach (empty: it must reach none of them)",
                    },
                },
            },
        },
    },
}


# --- the formats -----------------------------------------------------------------------------------------------------


def slack_problems(payload: Any) -> list[str]:
    """Why Slack's incoming webhooks would refuse this message (empty: a valid message)."""
    if not isinstance(payload, dict):
        return ["not a JSON object (invalid_payload)"]
    text, blocks, attachments = payload.get("text"), payload.get("blocks"), payload.get("attachments")
    if text is not None and not isinstance(text, str):
        return ["`text` is not a string (invalid_payload)"]
    if attachments is not None and (
        not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments)
    ):
        return ["`attachments` is not a list of objects (invalid_payload)"]
    carries = (
        bool(text and text.strip())
        or bool(blocks)
        or any(str(a.get("text") or "").strip() or str(a.get("fallback") or "").strip() for a in attachments or [])
    )
    return [] if carries else ["no text, blocks or attachment text/fallback (no_text)"]


def pagerduty_problems(payload: Any) -> list[str]:
    """Why PagerDuty's Events API v2 would refuse this event (empty: a valid event). The routing key may be masked."""
    if not isinstance(payload, dict):
        return ["not a JSON object"]
    problems: list[str] = []
    if not isinstance(payload.get("routing_key"), str) or not payload["routing_key"]:
        problems.append("no routing_key")
    action = payload.get("event_action")
    if action not in PAGERDUTY_ACTIONS:
        problems.append(f"event_action {action!r} is not one of {', '.join(PAGERDUTY_ACTIONS)}")
    if action in ("acknowledge", "resolve") and not payload.get("dedup_key"):
        problems.append(f"a {action} without dedup_key")
    if action == "trigger":
        body = payload.get("payload")
        if not isinstance(body, dict):
            problems.append("a trigger without payload")
        else:
            if not str(body.get("summary") or "").strip():
                problems.append("payload.summary is empty")
            if not str(body.get("source") or "").strip():
                problems.append("payload.source is empty")
            if body.get("severity") not in PAGERDUTY_SEVERITIES:
                problems.append(f"payload.severity {body.get('severity')!r} is not one of {PAGERDUTY_SEVERITIES}")
    return problems


def names_alert(payload: Any, alert: str) -> bool:
    """The alert's name appears in the payload as a whole word (the routing key left out)."""
    if isinstance(payload, dict):
        payload = {k: v for k, v in payload.items() if k != "routing_key"}
    text = json.dumps(payload, ensure_ascii=False)
    return re.search(rf"(?<![\w.-]){re.escape(alert)}(?![\w.-])", text) is not None


# --- what the receiver recorded --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    seq: int
    api: str
    status: int
    payload: Any
    received_at: str
    dedup_key: str | None  # pagerduty: the key the event carried, or the one the service gave it

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300

    @property
    def action(self) -> str | None:
        return self.payload.get("event_action") if isinstance(self.payload, dict) else None

    def brief(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "api": self.api,
            "status": self.status,
            "received_at": self.received_at,
            # "dedup", not "dedup_key": evidence redaction hides the value of any key named like a secret (`*_KEY`).
            **({"event_action": self.action, "dedup": self.dedup_key} if self.api == "pagerduty" else {}),
        }


def _deliveries(body: Any, where: str) -> list[Delivery]:
    items = body.get("deliveries") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise HttpAnswerError(where, 200, "no `deliveries` list in the answer")
    found: list[Delivery] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("seq"), int):
            raise HttpAnswerError(where, 200, f"a delivery without an integer `seq`: {str(item)[:120]}")
        payload = item.get("payload")
        key = item.get("dedup_key") or (payload.get("dedup_key") if isinstance(payload, dict) else None)
        found.append(
            Delivery(
                item["seq"],
                str(item.get("api", "")),
                int(item.get("status") or 0),
                payload,
                str(item.get("received_at", "")),
                str(key) if key else None,
            )
        )
    return found


@dataclass
class DeliveryExpectation:
    """One alert of the spec and what it must (or must not) produce."""

    alert: str
    labels: dict[str, str]
    formats: list[str]
    receivers: list[str] = field(default_factory=list)  # Alertmanager's routing, as it lists the alert
    seen: dict[str, Delivery] = field(default_factory=dict)  # slack | trigger | resolve -> first matching delivery


class Run:
    """The check's view of the stack: Alertmanager to post to, the receiver's record to read."""

    def __init__(self, ctx: Context, receiver: str, records: str) -> None:
        self.ctx = ctx
        self.alertmanager = ctx.stack.url(service_by_role(ctx, "alertmanager"))
        self.receiver = receiver
        self.records_url = ctx.stack.url(receiver) + records
        self.token = uuid.uuid4().hex[:12]
        self.t0 = time.monotonic()
        self.timeline: list[dict[str, Any]] = []

    def event(self, what: str) -> None:
        self.timeline.append({"t_s": round(time.monotonic() - self.t0, 1), "event": what})
        self.ctx.stack.progress(f"receiver-delivery: {what}")

    def record(self) -> list[Delivery]:
        try:
            return _deliveries(get_json(self.records_url), self.records_url)
        except HttpAnswerError as exc:
            self.ctx.error(f"the receiver {self.receiver} does not serve its record: {exc}")

    def post(self, expectations: list[DeliveryExpectation], resolved: bool) -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        ends = now if resolved else now + datetime.timedelta(seconds=ALERT_LIFETIME_S)
        alerts = [
            {
                "labels": e.labels,
                "annotations": {"summary": f"sealgate receiver-delivery check {self.token}: {e.alert}"},
                "startsAt": (now - datetime.timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
                "endsAt": ends.isoformat().replace("+00:00", "Z"),
                "generatorURL": f"urn:sealgate:receiver-delivery:{self.token}",
            }
            for e in expectations
        ]
        answer = request("POST", f"{self.alertmanager}/api/v2/alerts", body=alerts)
        if not answer.ok:
            self.ctx.error(f"Alertmanager refused the alerts: HTTP {answer.status} {str(answer.body)[:200]}")

    def routed(self, expectation: DeliveryExpectation) -> list[str]:
        """The receivers Alertmanager's routing chose for this check's alert (empty while it does not list it)."""
        try:
            wanted = {"filter": f'alertname="{expectation.alert}"'}
            listed = get_json(f"{self.alertmanager}/api/v2/alerts", params=wanted)
        except (HttpAnswerError, StackError):
            return []
        for alert in listed if isinstance(listed, list) else []:
            if str(alert.get("generatorURL", "")).endswith(self.token):
                return sorted(str(r.get("name")) for r in alert.get("receivers") or [])
        return []


def _match(expectation: DeliveryExpectation, delivery: Delivery) -> str | None:
    """Which of the expectation's steps this delivery is (slack | trigger | resolve), or None."""
    if not delivery.accepted or not names_alert(delivery.payload, expectation.alert):
        return None
    if delivery.api == "slack" and "slack" in expectation.formats:
        return "slack" if not slack_problems(delivery.payload) else None
    if delivery.api == "pagerduty" and "pagerduty" in expectation.formats and not pagerduty_problems(delivery.payload):
        if delivery.action == "trigger":
            return "trigger"
        if delivery.action == "resolve":
            return "resolve"
    return None


def _wanted(expectation: DeliveryExpectation, steps: list[str]) -> list[str]:
    """The steps of `steps` this expectation must see: slack for Slack; trigger, then resolve, for PagerDuty."""
    needs = {"slack": "slack", "trigger": "pagerduty", "resolve": "pagerduty"}
    return [step for step in steps if needs[step] in expectation.formats]


def _observe(
    run: Run, expectations: list[DeliveryExpectation], after: int, steps: list[str], within: float, settle: float
) -> list[Delivery]:
    """Poll the record until every expectation saw its `steps` and was listed by Alertmanager — and at least `settle`
    seconds passed, so a delivery that must not happen has had the time to happen — or `within` passes. Returns the
    deliveries recorded after seq `after`."""
    start = time.monotonic()
    fresh: list[Delivery] = []

    def seen_all() -> bool:
        nonlocal fresh
        fresh = [d for d in run.record() if d.seq > after]
        for expectation in expectations:
            if not expectation.receivers:
                expectation.receivers = run.routed(expectation)
            for delivery in fresh:
                step = _match(expectation, delivery)
                if step not in steps or step in expectation.seen:
                    continue
                trigger = expectation.seen.get("trigger")
                if step == "resolve" and (trigger is None or delivery.dedup_key != trigger.dedup_key):
                    continue  # judged at the end: a resolve must close the trigger's incident
                expectation.seen[step] = delivery
                run.event(f"{expectation.alert}: {step} received ({delivery.api}, HTTP {delivery.status})")
        met = all(e.receivers and all(s in e.seen for s in _wanted(e, steps)) for e in expectations)
        return met and time.monotonic() - start >= settle

    _, waited = poll(seen_all, timeout=within, interval=POLL_S, sleep=run.ctx.sleep)
    run.ctx.note_wait(f"deliveries ({', '.join(steps)})", waited)
    return fresh


@check(
    "rules/receiver-delivery",
    title="Alertmanager delivers each alert to the receivers it must reach, in their request formats (Slack webhook "
    "message; PagerDuty trigger, then resolve with the same dedup_key), and to none it must not reach",
    titles={
        "pt-BR": (
            "Alertmanager entrega cada alerta aos receivers que deve alcançar, no formato de cada um "
            "(mensagem Slack; trigger e depois resolve do PagerDuty com o mesmo dedup_key), e a nenhum que "
            "não deve"
        )
    },
    needs_stack=True,
    requires=("rules/alertmanager-config",),
    params=PARAMS,
)
def receiver_delivery(ctx: Context) -> None:
    receiver = described_service(ctx, str(ctx.params["receiver"]), ("receiver",)).name
    within = float(ctx.params.get("within_s", 60))
    expectations = [
        DeliveryExpectation(
            str(a["labels"]["alertname"]), {str(k): str(v) for k, v in a["labels"].items()}, list(a["expect"])
        )
        for a in ctx.params["alerts"]
    ]
    # Only an alert that must reach nothing needs the wait: its silence proves something only after a while.
    settle = float(ctx.params.get("settle_s", 10)) if any(not e.formats for e in expectations) else 0.0
    if len({e.alert for e in expectations}) != len(expectations):
        ctx.error("with.alerts: each alertname once (deliveries are told apart by the alert's name)")
    try:
        run = Run(ctx, receiver, str(ctx.params.get("records") or "/deliveries"))
    except ServiceNotRunning as exc:
        ctx.skip(f"{exc.service} does not run on this stack ({ctx.stack.name}): {exc.reason}")
    ctx.record("receiver", {"service": receiver, "records": run.records_url.removeprefix(ctx.stack.url(receiver))})
    ctx.record("alertmanager", run.alertmanager)
    baseline = max([d.seq for d in run.record()] or [0])
    fired: list[Delivery] = []
    resolved: list[Delivery] = []
    try:
        run.post(expectations, resolved=False)
        run.event(f"posted {len(expectations)} alerts to Alertmanager ({', '.join(e.alert for e in expectations)})")
        fired = _observe(run, expectations, baseline, ["slack", "trigger"], within, settle)
    finally:
        # Resolved whatever happened: the check's alerts must not stay active in the stack.
        run.post(expectations, resolved=True)
        run.event("resolved the alerts in Alertmanager")
    after_fire = max([d.seq for d in fired] or [baseline])
    resolved = _observe(run, expectations, after_fire, ["resolve"], within, settle)
    everything = {d.seq: d for d in [*fired, *resolved]}
    for delivery in everything.values():
        if not delivery.accepted:
            ctx.finding(
                f"{receiver} refused a {delivery.api} request (HTTP {delivery.status}) while the check ran: the real "
                "service would have dropped it",
                json_path=f"{run.records_url}#seq={delivery.seq}",
            )
    _judge(ctx, run, expectations, list(everything.values()), within)
    ctx.record("timeline", run.timeline)


def _judge(
    ctx: Context, run: Run, expectations: list[DeliveryExpectation], deliveries: list[Delivery], within: float
) -> None:
    where = run.records_url
    results: dict[str, Any] = {}
    for e in expectations:
        about = [d for d in deliveries if names_alert(d.payload, e.alert)]
        results[e.alert] = {
            "labels": e.labels,
            "expect": e.formats,
            "routed_to": e.receivers,
            "deliveries": [d.brief() for d in about],
        }
        if not e.receivers:
            ctx.finding(f"{e.alert}: Alertmanager never listed the alert posted to it ({run.alertmanager})")
        if not e.formats:
            if about:
                apis = sorted({d.api for d in about})
                ctx.finding(
                    f"{e.alert} ({_labels(e.labels)}) must reach no {'/'.join(FORMATS)} receiver, but {run.receiver} "
                    f"received {len(about)} request(s) about it ({', '.join(apis)}); Alertmanager routed it to "
                    f"{', '.join(e.receivers) or 'nothing'}",
                    json_path=where,
                )
            continue
        for fmt in e.formats:
            mine = [d for d in about if d.api == fmt]
            if fmt == "slack" and "slack" not in e.seen:
                problems = [p for d in mine for p in slack_problems(d.payload)]
                ctx.finding(
                    f"{e.alert}: no Slack message about it reached {run.receiver} within {within:g}s"
                    + (f" (received, not valid: {'; '.join(problems)})" if problems else ""),
                    json_path=where,
                )
            if fmt == "pagerduty":
                _judge_pagerduty(ctx, run, e, mine, within)
    ctx.record("alerts", results)


def _judge_pagerduty(ctx: Context, run: Run, e: DeliveryExpectation, mine: list[Delivery], within: float) -> None:
    where = run.records_url
    trigger = e.seen.get("trigger")
    if trigger is None:
        problems = [p for d in mine for p in pagerduty_problems(d.payload)]
        ctx.finding(
            f"{e.alert}: no PagerDuty trigger event about it reached {run.receiver} within {within:g}s"
            + (f" (received, not valid: {'; '.join(problems)})" if problems else ""),
            json_path=where,
        )
        return
    if not trigger.dedup_key:
        ctx.finding(f"{e.alert}: the PagerDuty trigger carries no dedup_key and was given none", json_path=where)
        return
    if "resolve" in e.seen:
        return
    others = [d for d in mine if d.action == "resolve" and d.seq > trigger.seq]
    if others:
        keys = ", ".join(sorted({str(d.dedup_key) for d in others}))
        ctx.finding(
            f"{e.alert}: PagerDuty resolve event(s) with dedup_key {keys}, not the trigger's {trigger.dedup_key}: "
            "the incident the trigger opened stays open",
            json_path=where,
        )
    else:
        ctx.finding(
            f"{e.alert}: no PagerDuty resolve event with the trigger's dedup_key {trigger.dedup_key} reached "
            f"{run.receiver} within {within:g}s of the resolution",
            json_path=where,
        )


def _labels(labels: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(labels.items()))

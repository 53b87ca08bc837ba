"""integrations-standin: a stand-in for Slack and PagerDuty, which cannot be reached from the machines this stack is
sealed on (no network but the package registries). Standard library only; it runs in a bare python image.

It speaks the two request formats Alertmanager's own integrations send, answers the way the real services answer,
and records every request so a check can judge what arrived:

* Slack incoming webhooks (`slack_configs`): `POST /services/<team>/<bot>/<token>`, a JSON body (or the form field
  `payload=`). 200 `ok` when it carries a message; 400 `invalid_payload` when the body is not a JSON object (or a
  field has the wrong type), 400 `no_text` when there is no `text`, no `blocks` and no attachment with `text` or
  `fallback`, 400 `too_many_attachments` past 100; 404 `no_service` for a path that is not a webhook's.
* PagerDuty Events API v2 (`pagerduty_configs`): `POST /v2/enqueue`. 202 `{"status": "success", "message":
  "Event processed", "dedup_key": ...}` (a dedup_key is made up for a trigger that has none); 400 `{"status":
  "invalid event", "message": "Event object is invalid", "errors": [...]}` when the routing key is not a
  32-character integration key, the event_action is not trigger/acknowledge/resolve, an acknowledge/resolve has no
  dedup_key, or a trigger's payload lacks a summary, a source or a valid severity.

What it received is recorded in memory (since it started) and served as JSON by `GET /deliveries`:

    {"stands_in_for": ["slack", "pagerduty"], "dropped": 0, "deliveries": [
      {"seq": 1, "received_at": "2026-01-01T00:00:00.123Z", "api": "pagerduty", "path": "/v2/enqueue",
       "status": 202, "accepted": true, "error": null, "errors": [], "payload": {... the body as received ...}}]}

Secrets never leave it: a PagerDuty `routing_key` is recorded as `<redacted: N characters>` and a Slack webhook's
path (its token) as `/services/<redacted>`. Each request is also one line on stdout, e.g.

    integrations-standin: pagerduty 202 trigger dedup_key=4f1c… summary="[FIRING:1] CircuitBreakerOpen …"
    integrations-standin: slack 400 no_text

GET /healthz answers 200. Usage: python3 -m integrations_standin [--host H] [--port N] (env STANDIN_HOST /
STANDIN_PORT, default 0.0.0.0:5002; port 0 picks a free one, printed on stderr).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import sys
import threading
import urllib.parse
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

MAX_BODY_BYTES = 4 << 20
MAX_RECORDS = 5000  # the oldest are dropped past this (counted in `dropped`)
SLACK_WEBHOOK = re.compile(r"^/services/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+$")
SLACK_MAX_ATTACHMENTS = 100
PAGERDUTY_ACTIONS = ("trigger", "acknowledge", "resolve")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
PAGERDUTY_KEY_LENGTH = 32  # an Events API v2 integration (routing) key
PAGERDUTY_MAX_SUMMARY = 1024
PAGERDUTY_MAX_DEDUP_KEY = 255


def _now() -> str:
    moment = datetime.datetime.now(datetime.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Record:
    """Every request received since the start, oldest first (bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDS)
        self._seq = 0
        self.dropped = 0

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            if len(self._items) == MAX_RECORDS:
                self.dropped += 1
            item = {"seq": self._seq, **entry}
            self._items.append(item)
            return item

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"stands_in_for": ["slack", "pagerduty"], "dropped": self.dropped, "deliveries": list(self._items)}


RECORD = Record()
_PRINT = threading.Lock()


def emit(line: str) -> None:
    with _PRINT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _quoted(text: Any, limit: int = 160) -> str:
    flat = " ".join(str(text).split())
    return json.dumps(flat if len(flat) <= limit else flat[:limit] + "…", ensure_ascii=False)


# --- Slack incoming webhooks -----------------------------------------------------------------------------------------


def slack_error(body: bytes, content_type: str) -> tuple[str | None, Any]:
    """(the error Slack would answer, or None; the parsed payload or None)."""
    text = body.decode("utf-8", errors="replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        fields = urllib.parse.parse_qs(text)
        if "payload" not in fields:
            return "invalid_payload", None
        text = fields["payload"][0]
    try:
        payload = json.loads(text)
    except ValueError:
        return "invalid_payload", None
    if not isinstance(payload, dict):
        return "invalid_payload", payload
    message = payload.get("text")
    blocks = payload.get("blocks")
    attachments = payload.get("attachments")
    if (
        (message is not None and not isinstance(message, str))
        or (blocks is not None and not isinstance(blocks, list))
        or (attachments is not None and not isinstance(attachments, list))
        or any(not isinstance(a, dict) for a in attachments or [])
    ):
        return "invalid_payload", payload
    if len(attachments or []) > SLACK_MAX_ATTACHMENTS:
        return "too_many_attachments", payload
    carries = (
        bool(message and message.strip())
        or bool(blocks)
        or any(str(a.get("text") or "").strip() or str(a.get("fallback") or "").strip() for a in attachments or [])
    )
    return (None if carries else "no_text"), payload


def slack_summary(payload: dict[str, Any]) -> str:
    parts = [str(payload.get("text") or "")]
    for attachment in payload.get("attachments") or []:
        parts.append(str(attachment.get("title") or attachment.get("fallback") or attachment.get("text") or ""))
    return " | ".join(p for p in parts if p.strip())


# --- PagerDuty Events API v2 ------------------------------------------------------------------------------------------


def pagerduty_errors(payload: Any) -> list[str]:
    """What makes an Events API v2 event invalid (empty: it is valid)."""
    if not isinstance(payload, dict):
        return ["the event must be a JSON object"]
    errors: list[str] = []
    key = payload.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("routing_key is required")
    elif len(key) != PAGERDUTY_KEY_LENGTH:
        errors.append(f"routing_key must be a {PAGERDUTY_KEY_LENGTH}-character integration key")
    action = payload.get("event_action")
    if action not in PAGERDUTY_ACTIONS:
        errors.append(f"event_action must be one of {', '.join(PAGERDUTY_ACTIONS)}")
    dedup = payload.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > PAGERDUTY_MAX_DEDUP_KEY):
        errors.append(f"dedup_key must be a string of at most {PAGERDUTY_MAX_DEDUP_KEY} characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append(f"dedup_key is required to {action} an incident")
    if action == "trigger":
        body = payload.get("payload")
        if not isinstance(body, dict):
            errors.append("payload is required for a trigger event")
        else:
            summary = body.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors.append("payload.summary is required")
            elif len(summary) > PAGERDUTY_MAX_SUMMARY:
                errors.append(f"payload.summary must be at most {PAGERDUTY_MAX_SUMMARY} characters")
            source = body.get("source")
            if not isinstance(source, str) or not source.strip():
                errors.append("payload.source is required")
            if body.get("severity") not in PAGERDUTY_SEVERITIES:
                errors.append(f"payload.severity must be one of {', '.join(PAGERDUTY_SEVERITIES)}")
    return errors


def masked(payload: Any) -> Any:
    """The event as recorded: its routing key replaced by its length (the key is a secret)."""
    if isinstance(payload, dict) and isinstance(payload.get("routing_key"), str):
        return {**payload, "routing_key": f"<redacted: {len(payload['routing_key'])} characters>"}
    return payload


# --- HTTP -------------------------------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "integrations-standin/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # stdout carries one line per delivery; request noise would bury them

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode() + b"\n", "application/json")

    def _text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/html")  # Slack answers webhooks in text/html

    def _body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/deliveries":
            self._json(200, RECORD.snapshot())
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/v2/enqueue":
            self._pagerduty()
        elif path.startswith("/services/"):
            self._slack(path)
        else:
            self._json(404, {"error": "POST /services/<team>/<bot>/<token> (Slack) or /v2/enqueue (PagerDuty)"})

    def _slack(self, path: str) -> None:
        body = self._body()
        if not SLACK_WEBHOOK.match(path):
            error, payload = "no_service", None
        elif body is None:
            error, payload = "invalid_payload", None
        else:
            error, payload = slack_error(body, self.headers.get("Content-Type") or "")
        status = {None: 200, "no_service": 404}.get(error, 400)
        RECORD.add(
            {
                "received_at": _now(),
                "api": "slack",
                "path": "/services/<redacted>",  # the path holds the webhook's token
                "status": status,
                "accepted": error is None,
                "error": error,
                "errors": [error] if error else [],
                "payload": payload,
            }
        )
        if error is None and isinstance(payload, dict):
            emit(f"integrations-standin: slack {status} ok {_quoted(slack_summary(payload))}")
        else:
            emit(f"integrations-standin: slack {status} {error}")
        self._text(status, "ok" if error is None else error)

    def _pagerduty(self) -> None:
        body = self._body()
        payload: Any = None
        if body is None:
            errors = [f"the body must be 0..{MAX_BODY_BYTES} bytes with a Content-Length"]
        else:
            try:
                payload = json.loads(body.decode("utf-8", errors="replace"))
            except ValueError:
                errors = ["the body is not valid JSON"]
            else:
                errors = pagerduty_errors(payload)
        dedup_key = None
        if not errors:
            dedup_key = payload.get("dedup_key") or uuid.uuid4().hex  # PagerDuty makes one up for a trigger
        status = 202 if not errors else 400
        RECORD.add(
            {
                "received_at": _now(),
                "api": "pagerduty",
                "path": "/v2/enqueue",
                "status": status,
                "accepted": not errors,
                "error": None if not errors else "invalid event",
                "errors": errors,
                "payload": masked(payload),
                "dedup_key": dedup_key,
            }
        )
        if errors:
            emit(f"integrations-standin: pagerduty 400 invalid event: {'; '.join(errors)}")
            self._json(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})
            return
        summary = (payload.get("payload") or {}).get("summary", "") if isinstance(payload.get("payload"), dict) else ""
        emit(
            f"integrations-standin: pagerduty 202 {payload['event_action']} dedup_key={dedup_key} "
            f"summary={_quoted(summary)}"
        )
        self._json(202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="integrations-standin", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("STANDIN_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("STANDIN_PORT", "5002")))
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    sys.stderr.write(
        f"integrations-standin: listening on http://{host}:{port} (stands in for Slack webhooks at /services/... "
        "and PagerDuty Events API v2 at /v2/enqueue; what arrived: GET /deliveries)\n"
    )
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

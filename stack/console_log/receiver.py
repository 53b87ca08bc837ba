"""console-log: the sink of Alertmanager's `console-log` receiver (F9.10: alerts go to stdout, a human reads them).

A tiny webhook receiver (standard library only; it runs in a bare python image). Every alert of every notification
Alertmanager POSTs to /alerts becomes exactly one line on stdout:

    console-log: FIRING alertname=CircuitBreakerOpen severity=critical receiver=console-log-critical
        instance="api:8000" summary="..." starts_at=2025-01-01T00:00:00Z

(one line; values with spaces or quotes are JSON-quoted). RESOLVED alerts are printed the same way. GET /healthz
answers 200. Usage: python3 -m console_log [--host H] [--port N] (env CONSOLE_LOG_HOST / CONSOLE_LOG_PORT, default
0.0.0.0:5001; port 0 picks a free one, printed on the first line).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

MAX_BODY_BYTES = 4 << 20
# Printed first, in this order; any other label follows sorted by name.
LEADING_LABELS = ("alertname", "severity")
SHOWN_ANNOTATIONS = ("summary", "description")
_LOCK = threading.Lock()  # one print per alert, never interleaved between request threads


def _value(text: str) -> str:
    # Annotations may span lines (YAML block scalars): one alert, one line, whitespace runs collapsed.
    text = " ".join(text.split())
    if text and all(c.isalnum() or c in "-_.:/@+,%" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def format_alert(alert: dict[str, Any], receiver: str) -> str:
    status = str(alert.get("status", "unknown")).upper()
    labels: dict[str, str] = alert.get("labels") or {}
    annotations: dict[str, str] = alert.get("annotations") or {}
    parts = [f"console-log: {status}"]
    parts += [f"{name}={_value(str(labels[name]))}" for name in LEADING_LABELS if name in labels]
    parts.append(f"receiver={_value(receiver)}")
    parts += [f"{name}={_value(str(value))}" for name, value in sorted(labels.items()) if name not in LEADING_LABELS]
    parts += [f"{name}={_value(str(annotations[name]))}" for name in SHOWN_ANNOTATIONS if name in annotations]
    parts.append(f"starts_at={_value(str(alert.get('startsAt', '')))}")
    if status == "RESOLVED":
        parts.append(f"ends_at={_value(str(alert.get('endsAt', '')))}")
    return " ".join(parts)


def emit(line: str) -> None:
    with _LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    server_version = "console-log/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # stdout carries the alerts only; request noise would bury them.
        return

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/healthz":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/alerts":
            self._reply(404, {"error": "POST /alerts only"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY_BYTES:
                raise ValueError(f"Content-Length must be 1..{MAX_BODY_BYTES}")
            payload = json.loads(self.rfile.read(length))
            alerts = payload["alerts"]
            receiver = str(payload.get("receiver", ""))
            if not isinstance(alerts, list):
                raise ValueError("alerts must be a list")
        except (ValueError, KeyError, TypeError) as exc:
            # Said on stderr so a malformed delivery is visible without polluting the alert lines.
            sys.stderr.write(f"console-log: rejected a notification: {exc}\n")
            self._reply(400, {"error": str(exc)})
            return
        for alert in alerts:
            emit(format_alert(alert, receiver))
        self._reply(200, {"printed": len(alerts)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="console-log", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("CONSOLE_LOG_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CONSOLE_LOG_PORT", "5001")))
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def stop(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    # On stderr: stdout is reserved for alert lines, so `logs console-log | grep '^console-log: FIRING'` is exact.
    sys.stderr.write(f"console-log: listening on http://{host}:{port}/alerts\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

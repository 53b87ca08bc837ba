"""Small text helpers: one-line messages quoting a tool's output, and the timestamps Prometheus and Alertmanager
write."""

from __future__ import annotations

import datetime
import re


def first_line(text: str) -> str:
    """The first non-blank line, stripped ('' when there is none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def last_line(text: str) -> str:
    """The last non-blank line, stripped ('' when there is none)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def iso_to_epoch(text: str) -> float:
    """RFC 3339 (Prometheus/Alertmanager timestamps, nanoseconds allowed) to unix seconds; 0 when unset."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", text.strip())
    if not match:
        return 0.0
    base = datetime.datetime.fromisoformat(match[1] + ("+00:00" if match[3] == "Z" else match[3]))
    return base.timestamp() + float(match[2] or 0)

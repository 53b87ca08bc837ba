"""Redaction of secrets from anything that reaches evidence, reports or tag messages.

Redaction is by *name* pattern (PASSWORD, TOKEN, SECRET, KEY, ...) and by shape (credentials inside URLs), because
values cannot be recognised reliably.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***REDACTED***"
# TOKEN, but not the LLM's countable tokens (`llm_tokens_total`, `token_count`): those are metrics, not secrets.
# WEBHOOK_URL and ROUTING_KEY: an incoming-webhook URL (Slack's carries its token in the path) and a PagerDuty
# integration key page whoever holds them (`*_KEY` already covers ROUTING_KEY; it is named for the reader).
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|TOKEN(?!S|_TOTAL|_COUNT|_TYPE|_USAGE)|SECRET|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL"
    # _PASS: DB_PASS, SMTP_PASS, postgres_exporter's DATA_SOURCE_PASS
    r"|WEBHOOK_?URL|ROUTING_?KEY|_KEY$|^KEY$|_PASS$)",
    re.I,
)
# NAME=value / NAME: value / --name=value forms whose NAME looks secret.
_ASSIGNMENT = re.compile(
    r"(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)(?P<sep>\s*[=:]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/\s:@]+):(?P<password>[^/\s@]+)@")


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name.lstrip("-").replace("-", "_")))


def redact_text(text: str) -> str:
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)
    return _ASSIGNMENT.sub(
        lambda m: f"{m['name']}{m['sep']}{REDACTED}" if is_secret_name(m["name"]) else m.group(0), text
    )


def redact_argv(argv: list[str]) -> list[str]:
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("-") and "=" not in arg and is_secret_name(arg):
            hide_next = True  # "--password VALUE"
            out.append(arg)
            continue
        out.append(redact_text(arg))
    return out


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """Environment-like mappings: secret-looking names lose their values; nested values are walked."""
    return {k: (REDACTED if is_secret_name(k) else redact_value(v)) for k, v in values.items()}


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    return value

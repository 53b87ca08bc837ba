"""Alertmanager as the repository configures it: the configuration checked by amtool and read for what promtool
cannot see (receivers, integrations, secrets read from files), and the routing tree tested with `amtool config routes
test` — every alert a rule emits reaches the receivers the spec names, and no other."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema

from sealgate.analysis.compose import load_compose
from sealgate.analysis.described import alertmanager_config as _alertmanager_config
from sealgate.analysis.described import rule_file_patterns, service_by_role
from sealgate.analysis.rulefiles import all_rules, load_rules
from sealgate.api.context import Context
from sealgate.api.params import LABELS, STRING_LIST
from sealgate.api.registry import check
from sealgate.backends.composefile import map_path
from sealgate.kernel.errors import InputError
from sealgate.kernel.text import first_line
from sealgate.kernel.yamlsource import Located, json_path, load_yaml
from sealgate.model.results import Severity

# --- rules/alertmanager-config ------------------------------------------------------------------------------------

# Receiver integrations that deliver outside the stack: a stack whose alerts stay inside it (e.g. a console receiver
# a human reads, no paging) allows none of them.
EXTERNAL_INTEGRATIONS = (
    "email_configs",
    "pagerduty_configs",
    "slack_configs",
    "opsgenie_configs",
    "victorops_configs",
    "pushover_configs",
    "wechat_configs",
    "sns_configs",
    "telegram_configs",
    "discord_configs",
    "webex_configs",
    "msteams_configs",
    "msteamsv2_configs",
    "jira_configs",
    "rocketchat_configs",
)


# Fields of an integration (and of the global section) that hold a secret, and the field that reads it from a file
# instead (Alertmanager 0.25+). An allowed integration must use the file: a secret written in the configuration is a
# secret committed to the repository.
SECRET_FIELDS: dict[str, dict[str, str]] = {
    "slack_configs": {"api_url": "api_url_file"},
    "pagerduty_configs": {"routing_key": "routing_key_file", "service_key": "service_key_file"},
    "opsgenie_configs": {"api_key": "api_key_file"},
    "victorops_configs": {"api_key": "api_key_file"},
    "pushover_configs": {"user_key": "user_key_file", "token": "token_file"},
    "telegram_configs": {"bot_token": "bot_token_file"},
    "discord_configs": {"webhook_url": "webhook_url_file"},
    "msteams_configs": {"webhook_url": "webhook_url_file"},
    "email_configs": {"auth_password": "auth_password_file"},
    "wechat_configs": {"api_secret": "api_secret_file"},
}
GLOBAL_SECRET_FIELDS = {
    "slack_api_url": "slack_api_url_file",
    "opsgenie_api_key": "opsgenie_api_key_file",
    "victorops_api_key": "victorops_api_key_file",
    "smtp_auth_password": "smtp_auth_password_file",
    "wechat_api_secret": "wechat_api_secret_file",
    "telegram_bot_token": "telegram_bot_token_file",
}
HTTP_SECRET_FIELDS = {("basic_auth", "password"): "password_file", ("authorization", "credentials"): "credentials_file"}


def _file_fields(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, file) of every `*_file` setting in a configuration tree: what Alertmanager reads at run time."""
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).endswith("_file") and isinstance(item, str) and item:
                yield (*path, key), item
            else:
                yield from _file_fields(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _file_fields(item, (*path, index))


def _inline_secrets(config: dict[str, Any], allowed: list[str]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, the file field to use instead) of every secret written inline in the configuration."""
    for name, file_field in GLOBAL_SECRET_FIELDS.items():
        if (config.get("global") or {}).get(name):
            yield ("global", name), file_field
    for index, receiver in enumerate(config.get("receivers") or []):
        for integration in [*allowed, "webhook_configs"]:
            for ci, entry in enumerate(receiver.get(integration) or []):
                if not isinstance(entry, dict):
                    continue
                at = ("receivers", index, integration, ci)
                for name, file_field in SECRET_FIELDS.get(integration, {}).items():
                    if entry.get(name):
                        yield (*at, name), file_field
                http = entry.get("http_config") or {}
                for (section, name), file_field in HTTP_SECRET_FIELDS.items():
                    if isinstance(http.get(section), dict) and http[section].get(name):
                        yield (*at, "http_config", section, name), file_field


def _walk_routes(route: dict[str, Any], path: tuple[Any, ...]) -> Iterator[tuple[dict[str, Any], tuple[Any, ...]]]:
    yield route, path
    for index, child in enumerate(route.get("routes") or []):
        if isinstance(child, dict):
            yield from _walk_routes(child, (*path, "routes", index))


# What the checks below read from an Alertmanager config, in the types they read it as (amtool refuses these too).
_INTEGRATION_LIST = {
    "type": ["array", "null"],
    "items": {"type": "object", "properties": {"http_config": {"type": ["object", "null"]}}},
}
_AM_SHAPE: dict[str, Any] = {
    "type": ["object", "null"],
    "properties": {
        "global": {"type": ["object", "null"]},
        "route": {"$ref": "#/$defs/route"},
        "receivers": {
            "type": ["array", "null"],
            "items": {
                "type": "object",
                "properties": {name: _INTEGRATION_LIST for name in ("webhook_configs", *EXTERNAL_INTEGRATIONS)},
            },
        },
    },
    "$defs": {
        "route": {
            "type": ["object", "null"],
            "properties": {"routes": {"type": ["array", "null"], "items": {"$ref": "#/$defs/route"}}},
        }
    },
}


def _load_am(ctx: Context, relative: str) -> tuple[Located, dict[str, Any]]:
    path = ctx.judge(relative)
    try:
        located = load_yaml(path, relative)
    except InputError as exc:
        problem = exc.problems[0]
        file, _, line = problem.where.partition(":")
        ctx.finding(problem.what, file=file or relative, line=int(line) if line.isdigit() else None)
        ctx.fail(str(problem))
    errors = sorted(
        jsonschema.Draft202012Validator(_AM_SHAPE).iter_errors(located.value),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    for error in errors:
        where = tuple(error.absolute_path)
        ctx.finding(f"{json_path(where)}: {error.message}"[:300], file=relative, line=located.line_of(where))
    if errors:
        ctx.fail(f"{relative}: not an Alertmanager configuration of the expected shape ({len(errors)} problems)")
    return located, dict(located.value or {})


@check(
    "rules/alertmanager-config",
    title="amtool check-config passes; alerts go only to the stack's own receivers and the integrations allowed, "
    "whose secrets are read from files the container is given",
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "config": {"type": "string", "description": "default: the file the described Alertmanager mounts"},
            "webhook_hosts": {**STRING_LIST, "description": "default: the described services with role receiver"},
            "integrations": {
                "type": "array",
                "items": {"enum": list(EXTERNAL_INTEGRATIONS)},
                "uniqueItems": True,
                "description": "external integrations allowed (default none); their secrets must come from files "
                "(`api_url_file`, `routing_key_file`, ...) that a compose secret or bind mount gives the container",
            },
        },
    },
)
def alertmanager_config(ctx: Context) -> None:
    relative = _alertmanager_config(ctx)
    located, config = _load_am(ctx, relative)
    version = ctx.run(["amtool", "--version"], timeout=30)
    ctx.tool_version("amtool", first_line(version.output).replace("amtool, version ", ""))
    result = ctx.run(["amtool", "check-config", relative], timeout=60)
    if not result.ok:
        ctx.finding(f"amtool check-config: {result.output.strip()[-500:]}", file=relative)
    receivers = {str(r.get("name")): i for i, r in enumerate(config.get("receivers") or []) if isinstance(r, dict)}
    root = config.get("route") or {}
    if not root.get("receiver"):
        ctx.finding(
            "the root route names no receiver (every alert needs a default)",
            file=relative,
            line=located.line_of(("route",)),
        )
    for route, path in _walk_routes(root, ("route",)):
        receiver = route.get("receiver")
        if receiver is not None and str(receiver) not in receivers:
            ctx.finding(
                f"route sends to receiver {receiver!r}, which is not defined (receivers: {', '.join(receivers)})",
                file=relative,
                line=located.line_of((*path, "receiver")),
            )
    hosts = [str(h) for h in ctx.params.get("webhook_hosts") or [s.name for s in ctx.description.with_role("receiver")]]
    if not hosts:
        ctx.error(
            f"no `with.webhook_hosts` and no service with role receiver in {ctx.description.path}: "
            "say where alerts may be delivered"
        )
    allowed = [str(i) for i in ctx.params.get("integrations") or []]
    used: dict[str, list[str]] = {}
    for name, index in receivers.items():
        receiver = config["receivers"][index]
        for integration in EXTERNAL_INTEGRATIONS:
            if not receiver.get(integration):
                continue
            used.setdefault(name, []).append(integration)
            if integration not in allowed:
                ctx.finding(
                    f"receiver {name} uses {integration}: only webhooks to {', '.join(hosts)}"
                    + (f" and {', '.join(allowed)}" if allowed else " (no external integration)")
                    + " are allowed",
                    file=relative,
                    line=located.line_of(("receivers", index, integration)),
                )
        for wi, webhook in enumerate(receiver.get("webhook_configs") or []):
            url = str(webhook.get("url", ""))
            host = re.sub(r"^[a-z]+://", "", url).split("/", 1)[0].split(":", 1)[0]
            if host not in hosts:
                ctx.finding(
                    f"receiver {name} posts to {url}, not to the stack's receivers ({', '.join(hosts)})",
                    file=relative,
                    line=located.line_of(("receivers", index, "webhook_configs", wi, "url")),
                )
            if not webhook.get("send_resolved", True):
                ctx.finding(
                    f"receiver {name}: send_resolved is false, so a resolved alert is never printed",
                    file=relative,
                    line=located.line_of(("receivers", index, "webhook_configs", wi)),
                    severity=Severity.WARNING,
                )
    for path, file_field in _inline_secrets(config, allowed):
        ctx.finding(
            f"{json_path(path)} holds a secret in the configuration (committed with it): read it from a file with "
            f"`{file_field}`",
            file=relative,
            line=located.line_of(path),
        )
    ctx.record("receivers", sorted(receivers))
    ctx.record("integrations", used)
    ctx.record("secret_files", _judge_secret_files(ctx, relative, located, config))


def _judge_secret_files(ctx: Context, relative: str, located: Located, config: dict[str, Any]) -> dict[str, str]:
    """Every `*_file` the configuration reads must be given to the Alertmanager container: a compose secret (the
    place for a secret: never in the repository) or a bind mount. Returns file -> what provides it."""
    files = list(_file_fields(config, ()))
    if not files:
        return {}
    service_name = service_by_role(ctx, "alertmanager")
    compose = load_compose(ctx)
    service = compose.services.get(service_name)
    if service is None:
        ctx.error(f"{ctx.description.compose_file} has no service {service_name}")
    secrets = {ref.target: ref.name for ref in service.secrets()}
    mounts = service.mounts(compose.base)
    provided: dict[str, str] = {}
    for path, file in files:
        if file in secrets:
            provided[file] = f"compose secret {secrets[file]}"
        elif map_path(file, mounts) is not None:
            provided[file] = "bind mount"
        else:
            ctx.finding(
                f"{json_path(path)}: {file} is given to service {service_name} by no compose secret or bind mount "
                f"in {ctx.description.compose_file}, so Alertmanager cannot read it",
                file=relative,
                line=located.line_of(path),
            )
    return provided


# --- rules/routing ------------------------------------------------------------------------------------------------


def _labels_argv(labels: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(labels.items())]


def _routes_test(ctx: Context, relative: str, labels: dict[str, str]) -> list[str]:
    result = ctx.run(
        ["amtool", "config", "routes", "test", f"--config.file={relative}", *_labels_argv(labels)], timeout=60
    )
    if not result.ok:
        ctx.error(
            f"amtool config routes test {' '.join(_labels_argv(labels))} exited {result.exit_code}: "
            f"{first_line(result.stderr or result.stdout)}"
        )
    return [r.strip() for r in result.stdout.strip().split(",") if r.strip()]


@check(
    "rules/routing",
    title="Routing: each given label set reaches its receiver; every rule's labels are routed",
    requires=("rules/alertmanager-config",),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "config": {"type": "string"},
            "rules": STRING_LIST,
            "routes": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["labels", "receiver"],
                    "properties": {"labels": LABELS, "receiver": {"type": "string"}},
                },
            },
            "probes": {"type": "array", "items": LABELS},
        },
    },
)
def routing(ctx: Context) -> None:
    relative = _alertmanager_config(ctx)
    located, config = _load_am(ctx, relative)
    default = str((config.get("route") or {}).get("receiver", ""))
    tree = ctx.run(["amtool", "config", "routes", f"--config.file={relative}"], timeout=60)
    if tree.ok:
        ctx.attach("alertmanager-routes.txt", tree.stdout)
    proven = {}
    for expectation in ctx.params.get("routes", []):
        labels = {str(k): str(v) for k, v in expectation["labels"].items()}
        receiver = str(expectation["receiver"])
        argv = [
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={relative}",
            f"--verify.receivers={receiver}",
            *_labels_argv(labels),
        ]
        result = ctx.run(argv, timeout=60)
        got = first_line(result.stdout)  # amtool prints its mismatch WARNING on stdout, after the receivers
        proven[" ".join(_labels_argv(labels))] = got
        if not result.ok:
            ctx.finding(
                f"alerts with {' '.join(_labels_argv(labels))} reach {got or 'nothing'}, expected {receiver} "
                f"(amtool config routes test --verify.receivers)",
                file=relative,
                line=located.line_of(("route",)),
            )
    has_children = bool((config.get("route") or {}).get("routes"))
    rules = all_rules(load_rules(ctx, rule_file_patterns(ctx)))
    routed = {}
    for rule in rules:
        if rule.kind != "alert":
            continue
        labels = {"alertname": rule.name, **rule.labels}
        got = _routes_test(ctx, relative, labels)
        routed[rule.name] = ",".join(got)
        if has_children and got == [default]:
            ctx.finding(
                f"alert {rule.name} ({' '.join(_labels_argv(rule.labels))}) is handled by no route: it only "
                f"reaches the default receiver {default}",
                file=rule.file,
                line=rule.line,
            )
    unhandled = []
    for labels in ctx.params.get("probes", []):
        got = _routes_test(ctx, relative, {str(k): str(v) for k, v in labels.items()})
        if has_children and got == [default]:
            unhandled.append(" ".join(_labels_argv(labels)))
            ctx.finding(
                f"label set {{{', '.join(_labels_argv(labels))}}} is handled by no route (falls back to the "
                f"default receiver {default})",
                file=relative,
                line=located.line_of(("route",)),
                severity=Severity.INFO,
            )
    ctx.record("verified_routes", proven)
    ctx.record("rules_routed", routed)
    ctx.record("unhandled_label_sets", unhandled)

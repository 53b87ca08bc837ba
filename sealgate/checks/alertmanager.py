"""Alertmanager as the repository configures it: the configuration checked by amtool and read for what promtool
cannot see (receivers that deliver nowhere, integrations, secrets read from files), and the routing tree tested with
`amtool config routes test` — every alert a rule emits reaches the receivers the spec names, and no other."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sealgate.analysis.compose import load_compose
from sealgate.analysis.described import alertmanager_config as _alertmanager_config
from sealgate.analysis.described import param_error, rule_file_patterns, service_by_role
from sealgate.analysis.rulefiles import Rule, all_rules, expand, load_rules, parsed_rule_file
from sealgate.api.context import CheckErrored, Context
from sealgate.api.params import LABELS, REPO_GLOBS, REPO_PATH
from sealgate.api.registry import check
from sealgate.backends.composefile import map_path
from sealgate.kernel.errors import InputError
from sealgate.kernel.text import first_line
from sealgate.kernel.yamlsource import Located, json_path, load_yaml
from sealgate.model.results import Severity

# --- rules/alertmanager-config ------------------------------------------------------------------------------------

# Receiver integrations that deliver outside the stack. Allowed by default; a spec that keeps its alerts inside the
# stack (a console receiver a human reads, no paging: a "console mode") names what it allows instead.
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


def _inline_secrets(config: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, the file field to use instead) of every secret written inline in the configuration, whatever the
    integration: allowed or not, a secret written there is committed with it."""
    for name, file_field in GLOBAL_SECRET_FIELDS.items():
        if (config.get("global") or {}).get(name):
            yield ("global", name), file_field
    for index, receiver in enumerate(config.get("receivers") or []):
        for integration in ("webhook_configs", *EXTERNAL_INTEGRATIONS):
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


def _integrations_of(receiver: dict[str, Any]) -> list[str]:
    """The integrations a receiver delivers through: each `*_configs` list with an entry. Alertmanager names every
    integration so (webhook_configs, slack_configs, ... and those added after EXTERNAL_INTEGRATIONS was written)."""
    return [str(key) for key, value in receiver.items() if str(key).endswith("_configs") and value]


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


# A receiver name YAML reads as null: `sinks: [null]` means kube-prometheus's receiver "null" (no receiver can be
# named YAML-null: Alertmanager refuses a receiver without a name).
_SINK_NAMES = {"type": "array", "items": {"type": ["string", "null"]}, "uniqueItems": True}


@check(
    "rules/alertmanager-config",
    title="amtool check-config passes; no alert the rules emit reaches a receiver that delivers nowhere; secrets are "
    "read from files the container is given; with webhook_hosts/integrations, alerts go only where those allow",
    titles={
        "pt-BR": (
            "amtool check-config passa; nenhum alerta emitido pelas regras chega a um receiver que não entrega a "
            "lugar nenhum; segredos lidos de arquivos entregues ao container; com webhook_hosts/integrations, os "
            "alertas vão só aonde eles permitem"
        )
    },
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "config": {**REPO_PATH, "description": "default: the file the described Alertmanager mounts"},
            "webhook_hosts": {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "uniqueItems": True,
                "description": "the hosts webhooks may post to (`[]`: none). Naming this or `integrations` turns on "
                "the allow-list; then the default is the described services with role receiver",
            },
            "integrations": {
                "type": "array",
                "items": {"enum": list(EXTERNAL_INTEGRATIONS)},
                "uniqueItems": True,
                "description": "the external integrations allowed (`[]`: none). Naming this or `webhook_hosts` "
                "turns on the allow-list; then the default is none. Without either, every integration is allowed",
            },
            "sinks": {
                **_SINK_NAMES,
                "examples": [["null"]],
                "description": "receivers with no integration meant to drop what reaches them (e.g. kube-prometheus's "
                "`null`): never a finding",
            },
            "rules": {
                **REPO_GLOBS,
                "description": "the rule files whose alerts must not reach a receiver that delivers nowhere "
                "(default: the rule_files of the described Prometheus)",
            },
        },
    },
)
def alertmanager_config(ctx: Context) -> None:
    """Judges the Alertmanager configuration as written:

    * `amtool check-config` passes, the root route names a receiver and every route's receiver is defined;
    * where alerts may go: without `webhook_hosts` and `integrations`, anywhere (Slack, PagerDuty, email, any
      webhook, ...). A spec that names either turns on an allow-list, as a "console mode" sprint does: webhooks only to
      `webhook_hosts` (default: the described services with role receiver), integrations only `integrations`
      (default: none);
    * no secret is written in the configuration (any integration, and the global section): it is read from a file
      (`api_url_file`, `routing_key_file`, ...) that a compose secret or a bind mount gives the container;
    * no alert the rules emit is dropped: a receiver with no integration (no `*_configs` entry) is a finding, naming
      the routes that reach it, when an alert the rules emit at a paging severity reaches it, unless `with.sinks`
      names it. The alerts probed, each with `amtool config routes test` on the configuration's own routing tree:
      each alerting rule of the rule files the described Prometheus loads (`alertname` and its labels, templated
      values left out), and an alert carrying only each severity those rules emit (what a new rule, or another
      Prometheus, of that severity sends when no route takes it by name). Every severity pages except `none`:
      kube-prometheus's Watchdog and InfoInhibitor carry `severity: none` and are routed to a receiver with no
      integration on purpose. So a receiver reached only by routes matching alert names no rule emits at a paging
      severity is not flagged; the root route's receiver, which takes every severity no route takes, is.
    """
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
    routable = result.ok and not ctx.findings  # amtool can route alerts through this tree
    used = _judge_destinations(ctx, relative, located, config, receivers)
    for path, file_field in _inline_secrets(config):
        ctx.finding(
            f"{json_path(path)} holds a secret in the configuration (committed with it): read it from a file with "
            f"`{file_field}`",
            file=relative,
            line=located.line_of(path),
        )
    ctx.record("receivers", sorted(receivers))
    ctx.record("integrations", used)
    ctx.record("secret_files", _judge_secret_files(ctx, relative, located, config))
    ctx.record("receivers_without_integration", _judge_silent_receivers(ctx, relative, located, config, routable))


def _allowed_text(hosts: list[str], allowed: list[str]) -> str:
    if hosts and allowed:
        return f"only webhooks to {', '.join(hosts)} and {', '.join(allowed)} are allowed"
    if hosts:
        return f"only webhooks to {', '.join(hosts)} (no external integration) are allowed"
    if allowed:
        return f"only {', '.join(allowed)} are allowed (no webhook)"
    return "nothing is allowed (`with.webhook_hosts` and `with.integrations` allow none)"


def _judge_destinations(
    ctx: Context, relative: str, located: Located, config: dict[str, Any], receivers: dict[str, int]
) -> dict[str, list[str]]:
    """Where receivers deliver, against the spec's allow-list when it names one. Returns receiver -> the external
    integrations it uses."""
    restricted = "webhook_hosts" in ctx.params or "integrations" in ctx.params
    hosts: list[str] = []
    allowed: list[str] = list(EXTERNAL_INTEGRATIONS)
    if restricted:
        if "webhook_hosts" in ctx.params:
            hosts = [str(h) for h in ctx.params["webhook_hosts"]]
        else:
            hosts = [s.name for s in ctx.description.with_role("receiver")]
        allowed = [str(i) for i in ctx.params.get("integrations") or []]
    ctx.record("allowed", {"webhook_hosts": hosts, "integrations": allowed} if restricted else "any destination")
    used: dict[str, list[str]] = {}
    for name, index in receivers.items():
        receiver = config["receivers"][index]
        for integration in EXTERNAL_INTEGRATIONS:
            if not receiver.get(integration):
                continue
            used.setdefault(name, []).append(integration)
            if integration not in allowed:
                ctx.finding(
                    f"receiver {name} uses {integration}: {_allowed_text(hosts, allowed)}",
                    file=relative,
                    line=located.line_of(("receivers", index, integration)),
                )
        for wi, webhook in enumerate(receiver.get("webhook_configs") or []):
            url = str(webhook.get("url", ""))
            host = re.sub(r"^[a-z]+://", "", url).split("/", 1)[0].split(":", 1)[0]
            if restricted and host not in hosts:
                where = f"not to the stack's receivers ({', '.join(hosts)})" if hosts else "but no webhook is allowed"
                ctx.finding(
                    f"receiver {name} posts to {url}, {where}",
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
    return used


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


# --- receivers that deliver nowhere (rules/alertmanager-config) ---------------------------------------------------

# Severities of alerts meant to reach no one: kube-prometheus's Watchdog and InfoInhibitor carry `severity: none` and
# go to a receiver with no integration on purpose. Every other severity pages someone.
SILENT_SEVERITIES = frozenset({"none"})
# The routing tree amtool is asked about, each route's receiver renamed to one of its own (below): written to the
# check's scratch directory and attached to the evidence, so what amtool answered about can be read back.
ROUTE_PROBE = "alertmanager-route-probe.yml"
_PROBE_RECEIVER = "sealgate-route-{}"


def _judge_silent_receivers(
    ctx: Context, relative: str, located: Located, config: dict[str, Any], routable: bool
) -> dict[str, Any]:
    """A receiver with no integration drops what reaches it: a finding when an alert the rules emit at a paging
    severity reaches it and `with.sinks` does not name it (the rule is in alertmanager_config's docstring).
    Returns receiver -> {sink, reached_by: {route path: what reaches it there}}."""
    receivers = [r for r in config.get("receivers") or [] if isinstance(r, dict)]
    names = [str(r.get("name")) for r in receivers]
    sinks = ["null" if s is None else str(s) for s in ctx.params.get("sinks") or []]
    for index, sink in enumerate(sinks):
        if sink not in names:
            param_error(ctx, ("sinks", index), f"no receiver {sink!r} in {relative}", f"receivers: {', '.join(names)}")
    silent = [str(r.get("name")) for r in receivers if not _integrations_of(r)]
    for index, sink in enumerate(sinks):
        if sink not in silent:
            ctx.finding(
                f"with.sinks[{index}]: receiver {sink} delivers through "
                f"{', '.join(_integrations_of(receivers[names.index(sink)]))}: it is no sink (remove it from sinks)",
                file=relative,
                line=located.line_of(("receivers", names.index(sink))),
                severity=Severity.WARNING,
            )
    judged = [name for name in silent if name not in sinks]
    record: dict[str, Any] = {name: {"sink": name in sinks, "reached_by": {}} for name in silent}
    if not judged or not routable:
        return record  # nothing to judge, or amtool cannot route through this tree (already a finding)
    reached = _probe_routes(ctx, config, _alerts_to_deliver(ctx, judged))
    for name in judged:
        by_route = reached.get(name, {})
        record[name]["reached_by"] = {json_path(path): what for path, what in by_route.items()}
        if not by_route:
            continue
        takes = "; ".join(f"{_route_name(located, path)} takes {_what(what)}" for path, what in by_route.items())
        ctx.finding(
            f"receiver {name} has no integration, so the alerts that reach it are dropped: {takes}. Give it an "
            "integration, or name it in `with.sinks` if they must go nowhere",
            file=relative,
            line=located.line_of(("receivers", names.index(name))),
        )
    return record


def _alerts_to_deliver(ctx: Context, silent: list[str]) -> list[tuple[dict[str, str], str | None]]:
    """(labels, the alert's rule name or None) of the alerts probed: each alerting rule whose severity pages, then
    an alert carrying only each severity they emit."""
    try:
        patterns = rule_file_patterns(ctx)
        files = expand(ctx, patterns)
        if not files:
            ctx.error(f"no rule file matches {', '.join(patterns)}")
    except CheckErrored as exc:
        ctx.error(
            f"receiver {', '.join(silent)} has no integration; to tell whether alerts the rules emit reach it, this "
            f"check reads the rule files, and: {exc} (or name the receiver in `with.sinks`)"
        )
    rules: list[Rule] = []
    for file in files:
        rules.extend(r for r in parsed_rule_file(ctx, file)[0].rules if r.kind == "alert")  # problems: promtool's
    alerts: list[tuple[dict[str, str], str | None]] = []
    severities: set[str] = set()
    for rule in rules:
        # A templated value ({{ $labels.team }}) is only known when the alert fires: the probe leaves it out.
        labels = {k: v for k, v in {**rule.labels, "alertname": rule.name}.items() if "{{" not in v}
        if labels.get("severity") in SILENT_SEVERITIES:
            continue
        alerts.append((labels, rule.name))
        if "severity" in labels:
            severities.add(labels["severity"])
    return [({"severity": s}, None) for s in sorted(severities)] + alerts


def _probe_routes(
    ctx: Context, config: dict[str, Any], alerts: list[tuple[dict[str, str], str | None]]
) -> dict[str, dict[tuple[Any, ...], dict[str, list[str]]]]:
    """Receiver -> route path -> what reaches it there ({"severities": [...], "alerts": [...]}), as amtool routes
    each alert. amtool answers with receivers only: it is asked about a copy of the routing tree in which every route
    has a receiver of its own, so each answer names the routes that took the alert; the real receiver of each is its
    own or, when it names none, its parent's (Alertmanager's inheritance)."""
    routes: list[tuple[tuple[Any, ...], str]] = []  # index -> (route path, its effective receiver)

    def renamed(route: dict[str, Any], path: tuple[Any, ...], inherited: str) -> dict[str, Any]:
        receiver = str(route["receiver"]) if route.get("receiver") is not None else inherited
        copy = {key: value for key, value in route.items() if key != "routes"}
        copy["receiver"] = _PROBE_RECEIVER.format(len(routes))
        routes.append((path, receiver))
        children = [
            renamed(child, (*path, "routes", ci), receiver)
            for ci, child in enumerate(route.get("routes") or [])
            if isinstance(child, dict)
        ]
        if children:
            copy["routes"] = children
        return copy

    probe: dict[str, Any] = {"route": renamed(dict(config.get("route") or {}), ("route",), "")}
    probe["receivers"] = [{"name": _PROBE_RECEIVER.format(i)} for i in range(len(routes))]
    for key in ("time_intervals", "mute_time_intervals"):  # routes may name them: amtool refuses undefined ones
        if config.get(key):
            probe[key] = config[key]
    text = yaml.safe_dump(probe, sort_keys=False, allow_unicode=True)
    (ctx.run_dir / ROUTE_PROBE).write_text(text, encoding="utf-8")
    ctx.attach(ROUTE_PROBE, text)
    by_probe_name = {_PROBE_RECEIVER.format(i): route for i, route in enumerate(routes)}
    reached: dict[str, dict[tuple[Any, ...], dict[str, list[str]]]] = {}
    seen: set[tuple[tuple[str, str], ...]] = set()
    for labels, alert in alerts:
        key = tuple(sorted(labels.items()))
        if key in seen:
            continue
        seen.add(key)
        for got in _routes_test(ctx, ROUTE_PROBE, labels, cwd=ctx.run_dir):
            if got not in by_probe_name:
                ctx.error(f"amtool config routes test answered {got!r}, which is no route of {ROUTE_PROBE}")
            path, receiver = by_probe_name[got]
            what = reached.setdefault(receiver, {}).setdefault(path, {"severities": [], "alerts": []})
            if alert is None:
                what["severities"].append(labels["severity"])
            elif alert not in what["alerts"]:
                what["alerts"].append(alert)
    return reached


def _route_name(located: Located, path: tuple[Any, ...]) -> str:
    line = located.line_of(path)
    at = f" (line {line})" if line else ""
    return f"the root route {json_path(path)}{at}" if path == ("route",) else f"route {json_path(path)}{at}"


def _what(what: dict[str, list[str]]) -> str:
    """`severity=critical and severity=warning alerts and the rules' alerts A, B`: what a route sends a receiver."""
    parts = []
    severities = [f"severity={s}" for s in what["severities"]]
    if severities:
        listed = f"{', '.join(severities[:-1])} and {severities[-1]}" if len(severities) > 1 else severities[0]
        parts.append(f"{listed} alerts")
    names = what["alerts"]
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        parts.append(f"the rules' alert{'s' if len(names) > 1 else ''} {shown}")
    return " and ".join(parts)


# --- rules/routing ------------------------------------------------------------------------------------------------


def _labels_argv(labels: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in sorted(labels.items())]


def _routes_test(ctx: Context, relative: str, labels: dict[str, str], cwd: Path | None = None) -> list[str]:
    """The receivers amtool routes `labels` to, in the tree's order (`relative` to `cwd`, by default the
    repository's root)."""
    result = ctx.run(
        ["amtool", "config", "routes", "test", f"--config.file={relative}", *_labels_argv(labels)],
        timeout=60,
        cwd=cwd,
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
    titles={"pt-BR": "Roteamento: cada conjunto de labels chega ao seu receiver; os labels de toda regra são roteados"},
    requires=("rules/alertmanager-config",),
    params={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "config": REPO_PATH,
            "rules": REPO_GLOBS,
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
            # Information, not a failure: a root receiver that takes what no route names is how many teams route
            # (kube-prometheus sends warnings there); a receiver that drops them is rules/alertmanager-config's
            # finding, and a route the team requires is stated in `routes`.
            ctx.finding(
                f"alert {rule.name} ({' '.join(_labels_argv(rule.labels))}) is handled by no route: it only "
                f"reaches the default receiver {default}",
                file=rule.file,
                line=rule.line,
                severity=Severity.INFO,
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

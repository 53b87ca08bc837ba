"""Generators for large inputs: rule sets and dashboards built from the metrics the API really exports."""

from __future__ import annotations

from typing import Any

EXPRESSIONS = [
    "histogram_quantile(0.95, sum by (le, provider) (rate(llm_request_latency_seconds_bucket[5m]))) > {n}",
    "sum by (provider) (rate(llm_errors_total[5m]))"
    " / sum by (provider) (rate(llm_request_latency_seconds_count[5m])) > 0.0{n}",
    "llm_circuit_breaker_state >= 1 and on () sum(rate(llm_tokens_total[1m])) > {n}",
    'up{{job="techno-os-api"}} == 0',
]


def rule_files(count: int, per_group: int = 50) -> dict[str, dict[str, Any]]:
    """`count` alerting rules in groups of `per_group`, one file per 1,000 rules."""
    files: dict[str, dict[str, Any]] = {}
    for index in range(count):
        file = files.setdefault(f"generated_{index // 1000:03d}.yml", {"groups": []})
        if index % per_group == 0:
            file["groups"].append({"name": f"group_{index // per_group}", "rules": []})
        file["groups"][-1]["rules"].append(
            {
                "alert": f"Generated{index}",
                "expr": EXPRESSIONS[index % len(EXPRESSIONS)].format(n=index % 9 + 1),
                "for": "1m",
                "labels": {"severity": "warning" if index % 2 else "critical"},
                "annotations": {"summary": f"generated rule {index}", "description": "benchmark input"},
            }
        )
    return files


def inventory_groups(files: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    """The `rules/inventory` expectation that matches `rule_files(...)` exactly (so the check passes, as it would
    in a project that pins its rules)."""
    return {
        group["name"]: [
            {"alert": r["alert"], "severity": r["labels"]["severity"], "for": r["for"]} for r in group["rules"]
        ]
        for document in files.values()
        for group in document["groups"]
    }


def dashboard(panels: int) -> dict[str, Any]:
    return {
        "uid": "llm-metrics-f910",
        "title": "LLM Metrics (generated)",
        "tags": ["llm", "f9.10"],
        "schemaVersion": 39,
        "panels": [
            {
                "id": i + 1,
                "type": "timeseries",
                "title": f"Panel {i}",
                "datasource": {"type": "prometheus", "uid": "prometheus"},
                "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
                "targets": [
                    {
                        "refId": "A",
                        "datasource": {"type": "prometheus", "uid": "prometheus"},
                        "expr": "sum by (provider, model, type) (rate(llm_tokens_total[1m]))",
                    }
                ],
            }
            for i in range(panels)
        ],
    }


# --- a rule set shaped like the real mixins (kubernetes-mixin, node-mixin, …) -----------------------------------

_MIXIN_ALERTS = [
    # (name, expression template, for, warning threshold, critical threshold)
    (
        "{C}HighErrorRate",
        'sum by (job, namespace) (rate({c}_requests_total{{job=~"{c}.*", code=~"5.."}}[5m]))\n'
        '  /\nsum by (job, namespace) (rate({c}_requests_total{{job=~"{c}.*"}}[5m]))\n  > {t}',
        ("10m", "5m"),
        (0.01, 0.05),
    ),
    (
        "{C}HighLatency",
        "histogram_quantile(0.99,\n  sum by (job, namespace, le) (rate({c}_request_duration_seconds_bucket[5m]))\n)"
        " > {t}",
        ("15m", "10m"),
        (1, 4),
    ),
    (
        "{C}QueueGrowing",
        "job:{c}_queue_length:max5m > {t}\nand on (job, namespace)\nderiv({c}_queue_length[30m]) > 0",
        ("30m", "15m"),
        (100, 1000),
    ),
    (
        "{C}Down",
        'absent(up{{job="{c}"}} == 1)',
        ("5m", "15m"),
        (None, None),
    ),
    (
        "{C}TargetFlapping",
        'changes(up{{job="{c}"}}[30m]) > {t}\nunless on (job)\n{c}_maintenance_mode == 1',
        ("10m", "30m"),
        (2, 6),
    ),
]
_MIXIN_RECORDS = [
    ("job:{c}_requests:rate5m", "sum by (job, namespace, code) (rate({c}_requests_total[5m]))"),
    (
        "job:{c}_request_duration_seconds:p99",
        "histogram_quantile(0.99, sum by (job, namespace, le) (rate({c}_request_duration_seconds_bucket[5m])))",
    ),
    ("job:{c}_queue_length:max5m", "max by (job, namespace) (max_over_time({c}_queue_length[5m]))"),
    (
        "namespace_{c}:cpu_usage:sum",
        'sum by (namespace, pod) (\n  label_replace(rate({c}_cpu_seconds_total[5m]), "pod", "$1", "instance",'
        ' "(.*):.*")\n)',
    ),
]


def mixin_rule_files(total: int = 2300) -> dict[str, dict[str, Any]]:
    """About `total` rules shaped like the compiled monitoring mixins: per component an alerts file (groups of
    warning/critical pairs of one alert with their own `for`, templated annotations, multi-line expressions) and a
    rules file (recording rules the alerts read)."""
    files: dict[str, dict[str, Any]] = {}
    count = 0
    component = 0
    while count < total:
        c = f"comp{component:03d}"
        big_c = c.capitalize()
        records = [
            {"record": name.format(c=c), "expr": expr.format(c=c)} | ({"labels": {"source": "mixin"}} if i % 2 else {})
            for i, (name, expr) in enumerate(_MIXIN_RECORDS)
        ]
        files[f"{c}-rules.yaml"] = {"groups": [{"name": f"{c}.rules", "interval": "1m", "rules": records}]}
        count += len(records)
        alerts = []
        for name, expr, durations, thresholds in _MIXIN_ALERTS:
            for severity, duration, threshold in zip(("warning", "critical"), durations, thresholds, strict=True):
                alerts.append(
                    {
                        "alert": name.format(C=big_c),
                        "annotations": {
                            "description": (
                                f"{{{{ $labels.job }}}} in {{{{ $labels.namespace }}}}: {name.format(C=big_c)} "
                                "is {{ $value | humanizePercentage }} for {{ $labels.instance }}."
                            ),
                            "runbook_url": f"https://runbooks.example.invalid/{c}/{name.format(C=big_c).lower()}",
                            "summary": f"{big_c} {severity}: {name.format(C=big_c)}.",
                        },
                        "expr": expr.format(c=c, t=threshold) + "\n",
                        "for": duration,
                        "labels": {"severity": severity},
                    }
                )
        half = len(alerts) // 2
        files[f"{c}-alerts.yaml"] = {
            "groups": [
                {"name": f"{c}-availability", "rules": alerts[:half]},
                {"name": f"{c}-performance", "rules": alerts[half:]},
            ]
        }
        count += len(alerts)
        component += 1
    return files


def mixin_inventory(files: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The `rules/inventory` expectation matching `mixin_rule_files(...)` exactly: pairs and recording rules."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for document in files.values():
        for group in document["groups"]:
            entries = groups.setdefault(group["name"], [])
            for rule in group["rules"]:
                if "record" in rule:
                    entries.append(
                        {"record": rule["record"], **({"labels": rule["labels"]} if "labels" in rule else {})}
                    )
                else:
                    entries.append({"alert": rule["alert"], "severity": rule["labels"]["severity"], "for": rule["for"]})
    return groups


class _Literal(str):
    """A string dumped as a YAML block (`expr: |`), as the mixins write their expressions."""


def dump_rules(document: dict[str, Any]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(_Literal, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|"))

    def literal(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _Literal(v) if k == "expr" and "\n" in v else literal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [literal(v) for v in value]
        return value

    return yaml.dump(literal(document), Dumper=Dumper, sort_keys=False, width=120)

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

"""A project laid out unlike this one, for the check library: the compose file, the stack description and the
Prometheus/Grafana configuration at the repository's root (the seed's own layout), services with other names
(`web`, `metrics`, `alerts`, `dash`), another network, other volumes and its own sprint spec, `OTHER`.

`make_other_layout(dest)` writes it as a real git repository. Its files are this project's own, moved and renamed:
the dashboard and the provisioning files are copied from stack/grafana, so the dashboard checks judge the same
content at other paths. Host ports come from variables (`WEB_PORT`, ...) a test points at free ports.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from conftest import PROJECT_ROOT, commit_all, init_repo

SPEC = "sprint/OTHER.yaml"
DASHBOARD = "grafana/dashboards/board.json"
DATASOURCES = "grafana/provisioning/datasources/datasources.yml"
PROVIDERS = "grafana/provisioning/dashboards/providers.yml"
PORT_VARIABLES = {"web": "WEB_PORT", "metrics": "METRICS_PORT", "alerts": "ALERTS_PORT", "dash": "DASH_PORT"}

COMPOSE = """\
services:
  web:
    image: python:3.11.10-slim-bookworm
    command: ["python3", "-m", "http.server", "--bind", "0.0.0.0", "8080"]
    ports:
      - "127.0.0.1:${WEB_PORT:-18080}:8080"
    networks: [obs]
  metrics:
    image: prom/prometheus:v2.51.0
    command:
      - --config.file=/etc/prometheus/prometheus.yml
      - --storage.tsdb.path=/data
    volumes:
      - metrics_data:/data
      - ./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro
    ports:
      - "127.0.0.1:${METRICS_PORT:-19090}:9090"
    networks: [obs]
  alerts:
    image: prom/alertmanager:v0.27.0
    command:
      - --config.file=/etc/alertmanager/alertmanager.yml
      - --storage.path=/alertmanager
    volumes:
      - alerts_data:/alertmanager
      - ./prometheus/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro
    ports:
      - "127.0.0.1:${ALERTS_PORT:-19093}:9093"
    networks: [obs]
  dash:
    image: grafana/grafana:11.3.1
    entrypoint: ["sh", "-c", 'case "$${GF_SECURITY_ADMIN_PASSWORD:-admin}" in admin) exit 78;; esac; exec /run.sh']
    environment:
      - GF_SECURITY_ADMIN_PASSWORD
    volumes:
      - dash_data:/var/lib/grafana
      - ./grafana/provisioning:/etc/grafana/provisioning:ro
      - ./grafana/dashboards:/var/lib/grafana/dashboards:ro
    ports:
      - "127.0.0.1:${DASH_PORT:-13000}:3000"
    networks: [obs]

networks:
  obs: {}

volumes:
  metrics_data: {}
  alerts_data: {}
  dash_data: {}
"""

STACK = """\
sealgate_stack: 1
compose:
  file: docker-compose.yml
services:
  alerts: {role: alertmanager, ready: /-/ready}
  web: {role: target, ready: /, traffic: {method: GET, path: /}}
  metrics: {role: prometheus, ready: /-/ready}
  dash:
    role: dashboards
    ready: /api/health
    local: {kind: unavailable, reason: no Grafana binary here}
"""

PROMETHEUS = """\
global: {scrape_interval: 15s}
alerting:
  alertmanagers:
    - static_configs: [{targets: ["alerts:9093"]}]
scrape_configs:
  - job_name: web-app
    static_configs: [{targets: ["web:8080"]}]
"""

ALERTMANAGER = """\
route: {receiver: log}
receivers:
  - name: log
"""


def spec(stages: list[dict]) -> str:
    return yaml.safe_dump(
        {
            "sealgate": 1,
            "id": "OTHER",
            "title": "Another layout",
            "language": "en",
            "first_in_chain": True,
            "tag": "OTHER-SEALED",
            "stack": "stack.yaml",
            "objective": "The check library on a stack laid out unlike sealgate's reference project.",
            "stages": stages,
            "criteria": [{"id": "C1", "title": "Everything holds", "stages": [s["number"] for s in stages]}],
        },
        sort_keys=False,
    )


STAGES = [
    {
        "number": 0,
        "name": "preflight",
        "title": "Preflight",
        "checks": [{"id": "preflight/ports-free"}],
    },
    {
        "number": 1,
        "name": "containerize",
        "title": "Containerize",
        "checks": [
            {"id": "containerize/compose-services"},
            {"id": "containerize/images-pinned"},
            {"id": "containerize/network", "with": {"network": "obs"}},
            {
                "id": "containerize/volumes",
                "with": {"volumes": {"metrics": "metrics_data", "alerts": "alerts_data", "dash": "dash_data"}},
            },
            {
                "id": "containerize/config-mounts",
                "with": {
                    "expected": {
                        "metrics": {"/etc/prometheus/prometheus.yml": "prometheus/prometheus.yml"},
                        "dash": {
                            "/etc/grafana/provisioning": "grafana/provisioning",
                            "/var/lib/grafana/dashboards": "grafana/dashboards",
                        },
                    }
                },
            },
            {"id": "containerize/ports-loopback"},
            {"id": "containerize/hardening"},
        ],
    },
    {
        "number": 2,
        "name": "dashboard",
        "title": "Dashboard",
        "checks": [
            {
                "id": "dashboard/provisioning",
                "with": {
                    "dashboard": DASHBOARD,
                    "datasources": DATASOURCES,
                    "providers": PROVIDERS,
                    "datasource": {"name": "Prometheus", "type": "prometheus", "url": "http://metrics:9090"},
                    "provider": {"path": "/var/lib/grafana/dashboards", "interval_s": 10},
                },
            },
            {
                "id": "dashboard/json-structure",
                "with": {
                    "dashboard": DASHBOARD,
                    "datasources": DATASOURCES,
                    "uid": "llm-metrics-f910",
                    "tags": ["llm"],
                    "panels": [
                        {"title": "LLM Request Latency", "type": "timeseries"},
                        {"title": "LLM Token Usage", "type": "timeseries"},
                        {"title": "LLM Error Rate", "type": "gauge"},
                        {"title": "Circuit Breaker State", "type": "stat"},
                        {"title": "PostgreSQL Transactions", "type": "timeseries"},
                        {"title": "API Rate Limiting (429/s)", "type": "timeseries"},
                    ],
                },
            },
        ],
    },
]


def make_other_layout(dest: Path) -> Path:
    """The other project, committed (a clean tree), with its spec `OTHER`."""
    root = init_repo(dest)
    grafana = PROJECT_ROOT / "stack" / "grafana"
    files = {
        "docker-compose.yml": COMPOSE,
        "stack.yaml": STACK,
        "prometheus/prometheus.yml": PROMETHEUS,
        "prometheus/alertmanager.yml": ALERTMANAGER,
        SPEC: spec(STAGES),
        DATASOURCES: (grafana / "provisioning/datasources/prometheus.yml")
        .read_text()
        .replace("http://prometheus:9090", "http://metrics:9090"),
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    for source, relative in (
        ("provisioning/dashboards/default.yml", PROVIDERS),
        ("dashboards/llm_metrics.json", DASHBOARD),
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(grafana / source, root / relative)
    commit_all(root, "another layout")
    return root


def set_check(root: Path, check_id: str, **entry: object) -> None:
    """Replace the `with:` (and add any other key, e.g. `title:`) of one check of the OTHER spec, and commit."""
    document = yaml.safe_load((root / SPEC).read_text())
    for stage in document["stages"]:
        for item in stage["checks"]:
            if item["id"] == check_id:
                item.update(entry)
    (root / SPEC).write_text(yaml.safe_dump(document, sort_keys=False))
    commit_all(root, f"spec: {check_id}")

"""Another project that uses sealgate's check library: other layout, other service names, jobs, variables, receiver
output and backup script than F9.10 — written here, in a temporary git repository, for the tests that prove the
library checks are not F9.10's (tests/checks/test_other_layout.py).

    stack/docker-compose.yml   shop (the scraped target), sink (the alert receiver), am, prom
    deploy/stack.yaml          the stack description the spec names (`stack:`)
    monitoring/                prom.yml (rule_files relative to it), rules/shop.rules.yml, am.yml
    services/shop, services/sink   the Python services (standard library only)
    ops/snapshot.sh            the backup script (local backend: data directories, a TSDB snapshot)
    config/shop.env.example    the documented environment
    sprint/S1.yaml             the sprint: EIXO 0 rules, 1 backup, 2 env_config

The compose file sits at stack/docker-compose.yml because `rules/promtool-check` still reads the compose file
through containerize's loader, which has that path (the compose file of the stack description is the goal there).
Alert windows are short (`for: 2s`, scrape and evaluation every 1 s), so a whole drill takes well under a minute.
"""

from __future__ import annotations

from pathlib import Path

from conftest import commit_all, init_repo

SHOP = r'''"""shop: a tiny order service (a test fixture of sealgate: another project's service).

GET /healthz, GET /config (its effective settings), GET /metrics, POST /orders, POST /break {"broken": bool}.
SHOP_RETRIES (default 2) and SHOP_COOLDOWN_S (default 1): positive whole numbers, else it refuses to start (exit 3).
Broken, it refuses orders; mended, it is "recovering" for SHOP_COOLDOWN_S seconds, then "ok".
"""

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def setting(name, default):
    if name not in os.environ:
        return default, "default"
    raw = os.environ[name]
    if not raw.strip().isdigit() or int(raw) < 1:
        print(f"shop: {name}={raw!r} must be a positive whole number", file=sys.stderr)
        sys.exit(3)
    return int(raw), "env"


RETRIES, RETRIES_FROM = setting("SHOP_RETRIES", 2)
COOLDOWN, COOLDOWN_FROM = setting("SHOP_COOLDOWN_S", 1)
STATE = {"broken": False, "recover_at": 0.0, "orders": 0, "refused": 0}


def state():
    if STATE["broken"]:
        return "broken"
    return "recovering" if time.monotonic() < STATE["recover_at"] else "ok"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, payload, content_type="application/json"):
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            self.reply(200, {"ok": True})
        elif self.path == "/config":
            origin = {"retries": RETRIES_FROM, "cooldown_s": COOLDOWN_FROM}
            self.reply(200, {"retries": RETRIES, "cooldown_s": COOLDOWN, "state": state(), "origin": origin})
        elif self.path == "/metrics":
            lines = [
                "# HELP shop_orders_total Orders accepted.",
                "# TYPE shop_orders_total counter",
                f"shop_orders_total {STATE['orders']}",
                "# HELP shop_refused_orders_total Orders refused while not ok.",
                "# TYPE shop_refused_orders_total counter",
                f"shop_refused_orders_total {STATE['refused']}",
                "# HELP shop_unhealthy 1 while broken or recovering.",
                "# TYPE shop_unhealthy gauge",
                f"shop_unhealthy {0 if state() == 'ok' else 1}",
            ]
            self.reply(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
        else:
            self.reply(404, {"error": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        if self.path == "/orders":
            if state() != "ok":
                STATE["refused"] += 1
                self.reply(503, {"error": "unavailable", "state": state()})
            else:
                STATE["orders"] += 1
                self.reply(200, {"accepted": True, "retries": RETRIES})
        elif self.path == "/break":
            if body.get("broken"):
                STATE["broken"] = True
            elif STATE["broken"]:
                STATE["broken"] = False
                STATE["recover_at"] = time.monotonic() + COOLDOWN
            self.reply(200, {"state": state()})
        else:
            self.reply(404, {"error": "no such path"})


def main():
    parser = argparse.ArgumentParser(prog="shop")
    parser.add_argument("--bind-host", default="0.0.0.0")
    parser.add_argument("--bind-port", type=int, default=8080)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.bind_host, args.bind_port), Handler)
    print(f"shop: serving on {args.bind_host}:{args.bind_port}", flush=True)
    server.serve_forever()


main()
'''

SINK = r'''"""sink: prints every alert Alertmanager delivers, one line each, in its own format."""

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200 if self.path == "/ping" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        for alert in payload.get("alerts", []):
            labels = alert.get("labels", {})
            print(f"[sink] {labels.get('alertname')} -> {alert.get('status')} (severity {labels.get('severity')})",
                  flush=True)
        self.send_response(204)
        self.end_headers()


parser = argparse.ArgumentParser(prog="sink")
parser.add_argument("--host", default="0.0.0.0")
parser.add_argument("--port", type=int, default=9000)
args = parser.parse_args()
ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
'''

SNAPSHOT = r"""#!/usr/bin/env bash
set -euo pipefail
# snapshot.sh — backups of the shop stack's data (a test fixture of sealgate: another project's backup script).
#   snapshot.sh --data-dir DIR --prometheus URL --dest DIR
# shop_data and prom_data (a TSDB snapshot) as <name>_<UTC stamp>.tar.gz (0600) with <name>_latest.tar.gz links,
# one `backup:` line each; archives older than 7 days deleted. A missing directory or an unwritable DEST exits 1
# naming it, and changes nothing.
umask 077
data_dir="" prom_url="" dest=""
fail() {
  echo "backup: FAILED $*" >&2
  exit 1
}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --data-dir) data_dir="$2"; shift 2 ;;
    --prometheus) prom_url="$2"; shift 2 ;;
    --dest) dest="$2"; shift 2 ;;
    *) echo "backup: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n "$data_dir" && -n "$prom_url" && -n "$dest" ]] || { echo "backup: all three arguments are required" >&2; exit 2; }
for name in shop prom; do
  [[ -d "$data_dir/$name" ]] || fail "${name}_data: directory $data_dir/$name does not exist"
done
mkdir -p -- "$dest" 2>/dev/null || fail "dest $dest: cannot create it"
staging=$(mktemp -d "$dest/.backup-staging.XXXXXX" 2>/dev/null) || fail "dest $dest: not writable"
trap 'rm -rf -- "$staging"' EXIT
stamp=$(date -u +%Y%m%dT%H%M%SZ)
snapshot=$(curl -fsS -X POST "$prom_url/api/v1/admin/tsdb/snapshot" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')
[[ -n "$snapshot" ]] || fail "prom_data: $prom_url took no snapshot"
tar -C "$data_dir/prom/snapshots/$snapshot" -czf "$staging/prom.tar.gz" . || fail "prom_data: archiving failed"
rm -rf -- "${data_dir:?}/prom/snapshots/$snapshot"
tar -C "$data_dir/shop" -czf "$staging/shop.tar.gz" . || fail "shop_data: archiving failed"
declare -A method=([prom]=tsdb-snapshot [shop]=directory-copy)
[[ -n "$(ls -A "$data_dir/shop")" ]] || method[shop]=directory-copy-empty
for name in shop prom; do
  chmod 0600 "$staging/$name.tar.gz"
  mv "$staging/$name.tar.gz" "$dest/${name}_${stamp}.tar.gz"
done
for name in shop prom; do
  archive="$dest/${name}_${stamp}.tar.gz"
  ln -sfn "${name}_${stamp}.tar.gz" "$dest/${name}_latest.tar.gz"
  echo "backup: ${name}_data method=${method[$name]} archive=$archive sha256=$(sha256sum "$archive" | cut -d' ' -f1)"
done
find "$dest" -maxdepth 1 -type f -regextype posix-extended -regex '.*/(shop|prom)_[0-9]{8}T[0-9]{6}Z\.tar\.gz' \
  -mtime +7 -delete
echo "backup: OK"
"""

COMPOSE = """\
services:
  shop:
    image: python:3.11-slim
    working_dir: /app
    command: ["python3", "-m", "shop", "--bind-host", "0.0.0.0", "--bind-port", "8080"]
    environment: [SHOP_RETRIES, SHOP_COOLDOWN_S]
    volumes: ["../services/shop:/app/shop:ro", "shop_data:/var/lib/shop"]
  sink:
    image: python:3.11-slim
    working_dir: /app
    command: ["python3", "-m", "sink", "--host", "0.0.0.0", "--port", "9000"]
    volumes: ["../services/sink:/app/sink:ro"]
  am:
    image: prom/alertmanager:v0.27.0
    command: ["--config.file=/etc/am/am.yml"]
    volumes: ["../monitoring/am.yml:/etc/am/am.yml:ro"]
  prom:
    image: prom/prometheus:v2.51.0
    command: ["--config.file=/etc/prom/prom.yml", "--storage.tsdb.path=/prom-data"]
    volumes: ["../monitoring/prom.yml:/etc/prom/prom.yml:ro", "../monitoring/rules:/etc/prom/rules:ro",
              "prom_data:/prom-data"]
volumes:
  shop_data: {}
  prom_data: {}
"""

DESCRIPTION = """\
sealgate_stack: 1
compose: {file: stack/docker-compose.yml}
services:
  sink: {role: receiver, port: 9000, ready: /ping}
  am: {role: alertmanager, port: 9093, ready: /-/ready}
  shop:
    role: target
    port: 8080
    ready: /healthz
    local: {kind: python, host_flag: --bind-host, port_flag: --bind-port}
    traffic: {method: POST, path: /orders, body: {item: sealgate-test}}
  prom: {role: prometheus, port: 9090, ready: /-/ready}
backup:
  script: ops/snapshot.sh
  args:
    local: [--data-dir, "{data_dir}", --prometheus, "{url:prom}"]
  volumes: {shop_data: shop, prom_data: prom}
"""

PROMETHEUS = """\
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules/*.rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: ['am:9093']}]
scrape_configs:
  - job_name: shop-metrics
    static_configs: [{targets: ['shop:8080']}]
"""

RULES = """\
groups:
  - name: shop
    rules:
      - alert: ShopUnhealthy
        expr: shop_unhealthy == 1
        for: 2s
        labels: {severity: page}
        annotations: {summary: shop is unhealthy, description: the shop refuses orders}
      - alert: ShopGone
        expr: up{job="shop-metrics"} == 0
        for: 2s
        labels: {severity: page}
        annotations: {summary: shop is gone, description: Prometheus cannot scrape the shop}
"""

ALERTMANAGER = """\
route:
  receiver: fallback
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['severity="page"']
      receiver: page
receivers:
  - name: fallback
    webhook_configs:
      - url: http://sink:9000/hook
        send_resolved: true
  - name: page
    webhook_configs:
      - url: http://sink:9000/hook
        send_resolved: true
"""

ENV_EXAMPLE = """\
# The shop's settings (positive whole numbers).
SHOP_RETRIES=2
SHOP_COOLDOWN_S=1
"""

SPEC = """\
sealgate: 1
id: S1
title: Shop observability
language: en
first_in_chain: true
tag: S1-SEALED
stack: deploy/stack.yaml
objective: The shop's alerts, backups and settings, proven.
stages:
  - number: 0
    name: rules
    title: Alerts
    checks:
      - id: rules/promtool-check
        with: {rules: [monitoring/rules/*.rules.yml], config: monitoring/prom.yml}
      - id: rules/metrics-exist
      - id: rules/loaded-live
      - id: rules/alertmanager-config
      - id: rules/routing
        with: {routes: [{labels: {severity: page}, receiver: page}]}
      - id: rules/alert-drill
        with:
          phases:
            - name: unhealthy
              alerts: [ShopUnhealthy]
              fault: {post: {service: shop, path: /break, body: {broken: true}}}
              restore: {post: {service: shop, path: /break, body: {broken: false}}}
              traffic: {every_s: 0.5, max_requests: 20}
            - name: gone
              alerts: [ShopGone]
              fault: {stop: shop}
              restore: {start: shop}
  - number: 1
    name: backup
    title: Backups
    checks:
      - id: backup/script-static
      - id: backup/run-live
        with: {empty_ok_methods: [directory-copy-empty], methods: {prom_data: [tsdb-snapshot]}}
      - id: backup/retention
        with: {retention_days: 7}
      - id: backup/fail-closed
      - id: backup/restore-drill
        with: {queries: ['sum(shop_orders_total)', 'up{job="shop-metrics"}'], seed_rows: 10, traffic_requests: 3}
  - number: 2
    name: settings
    title: Settings by environment
    checks:
      - id: env_config/defaults
        with:
          <<: &shop
            service: shop
            variables: {SHOP_RETRIES: retries, SHOP_COOLDOWN_S: cooldown_s}
            settings: {path: /config, source_field: origin}
          defaults: {retries: 2, cooldown_s: 1}
      - id: env_config/overrides
        with:
          <<: *shop
          cases:
            - {env: {SHOP_RETRIES: "4"}, expect: {retries: 4, cooldown_s: 1}}
            - {env: {SHOP_RETRIES: "1", SHOP_COOLDOWN_S: "9"}, expect: {retries: 1, cooldown_s: 9}}
      - id: env_config/behaviour
        with:
          <<: *shop
          env: {SHOP_COOLDOWN_S: "2"}
          steps:
            - {name: order, post: /orders, body: {item: a}, expect: {status: 200, body: {accepted: true}}}
            - {name: break, post: /break, body: {broken: true}, expect: {status: 200, settings: {state: broken}}}
            - {name: refused, post: /orders, body: {item: b}, expect: {status: 503, body: {error: unavailable}}}
            - {name: mend, post: /break, body: {broken: false}, expect: {settings: {state: recovering}}}
            - name: recovered
              wait: {setting: state, equals: ok, after: mend, not_before_s: 2, within_s: 4, meanwhile: [recovering],
                     record: recovered_after_s}
            - {name: order again, post: /orders, body: {item: c}, expect: {status: 200}}
      - id: env_config/bad-values
        with: {<<: *shop, values: ["x", "0", ""]}
      - id: env_config/env-example
        with: {<<: *shop, env_example: config/shop.env.example, pattern: "SHOP_[A-Z0-9_]+"}
      - id: env_config/live-settings
        with: {<<: *shop, defaults: {retries: 2, cooldown_s: 1}}
criteria:
  - {id: A1, title: Alerts, stages: [0]}
  - {id: A2, title: Backups, stages: [1]}
  - {id: A3, title: Settings, stages: [2]}
"""

FILES = {
    "stack/docker-compose.yml": COMPOSE,
    "deploy/stack.yaml": DESCRIPTION,
    "monitoring/prom.yml": PROMETHEUS,
    "monitoring/rules/shop.rules.yml": RULES,
    "monitoring/am.yml": ALERTMANAGER,
    "services/shop/__main__.py": SHOP,
    "services/shop/__init__.py": "",
    "services/sink/__main__.py": SINK,
    "services/sink/__init__.py": "",
    "ops/snapshot.sh": SNAPSHOT,
    "config/shop.env.example": ENV_EXAMPLE,
    "sprint/S1.yaml": SPEC,
    ".gitignore": "artifacts/\n.sealgate/\n",
}


def make_shop_project(root: Path) -> Path:
    """The project above as a git repository with one commit."""
    init_repo(root)
    for relative, text in FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "ops/snapshot.sh").chmod(0o755)
    commit_all(root, "the shop project")
    return root


def write_spec(root: Path, sprint_id: str, text: str) -> None:
    """Another sprint of the same project (a variant of S1 under its own id)."""
    (root / "sprint" / f"{sprint_id}.yaml").write_text(text.replace("id: S1\n", f"id: {sprint_id}\n", 1))

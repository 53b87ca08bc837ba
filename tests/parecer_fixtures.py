"""A real exposition and a real Prometheus scraping it, for the parecer's live judgements (checks/parecer.py).

`Exporter` serves a prometheus_client registry over HTTP on 127.0.0.1 (kernel-chosen port); a test can unregister
a metric to make it disappear from the next scrape. `scraping_prometheus` starts the real Prometheus binary on a
kernel-chosen port, scraping the exporter every second, and waits until it holds the exporter's series.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from standalone import prometheus_process

from sealgate.kernel.ports import free_ports

# A rule in the seed's style on a misspelt metric (http_request_total): what the parecer exists to refuse.
MISSPELT_RULE = """
      - alert: APIHighErrorRateTypo
        expr: |
          sum(rate(http_request_total{job="techno-os-api", status=~"5.."}[5m]))
            / sum(rate(http_request_total{job="techno-os-api"}[5m])) > 0.05
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "API error rate above 5%"
          description: "More than 5% of API requests failed over 5 minutes."
"""


class Exporter(ThreadingHTTPServer):
    """`GET /metrics` answers the registry's text exposition, as an instrumented service does."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(("127.0.0.1", 0), _ExporterHandler)
        self.registry = registry
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _ExporterHandler(BaseHTTPRequestHandler):
    server: Exporter

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = generate_latest(self.server.registry)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def prom_query(url: str, query: str) -> list[dict[str, Any]]:
    response = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=10)
    response.raise_for_status()
    return list(response.json()["data"]["result"])


def wait_until(what: str, predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@contextlib.contextmanager
def scraping_prometheus(
    workdir: Path, exporter: Exporter, job: str = "app", others: Mapping[str, Exporter] | None = None
) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 (kernel-chosen port) scraping `exporter` every second as job `job` (and each
    of `others` as the job it is keyed by); yields its URL once it holds a sample of every one of them."""
    (port,) = free_ports(1)
    jobs = {job: exporter, **(others or {})}
    scrape = "scrape_configs:\n" + "".join(
        f"  - job_name: {name}\n    static_configs: [{{targets: ['{scraped.address}']}}]\n"
        for name, scraped in jobs.items()
    )
    with prometheus_process(
        workdir,
        port,
        scrape,
        lambda url: all(prom_query(url, f'up{{job="{name}"}} == 1') for name in jobs),
        f"a scrape of {', '.join(scraped.url for scraped in jobs.values())}",
    ) as url:
        yield url

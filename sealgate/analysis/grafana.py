"""A small Grafana HTTP API client for the dashboard checks: health, datasource health, dashboard by uid.

Only the few read-only endpoints the checks need, with basic auth. Grafana cannot run on the machines this project
is built on (no image, no package), so the tests exercise this client against a local `http.server` that stands in
for Grafana by speaking these endpoints; the check itself talks to a real Grafana wherever one answers.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

# Keys Grafana adds or rewrites when it stores a provisioned dashboard; they are not part of what the file declares.
VOLATILE_KEYS = frozenset({"id", "version", "iteration"})


class GrafanaError(Exception):
    """Grafana did not answer, or answered something other than what the endpoint documents."""


@dataclass
class GrafanaClient:
    base_url: str
    user: str = "admin"
    password: str = "admin"
    timeout: float = 10.0

    def _get(self, path: str) -> tuple[int, Any]:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(
            self.base_url.rstrip("/") + path, headers={"Authorization": f"Basic {token}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise GrafanaError(f"GET {path}: {getattr(exc, 'reason', exc)}") from None
        try:
            return status, json.loads(raw or b"null")
        except json.JSONDecodeError:
            raise GrafanaError(f"GET {path}: answer {status} is not JSON: {raw[:200]!r}") from None

    def health(self) -> dict[str, Any]:
        """GET /api/health -> {"database": "ok", "version": ...} (no auth needed; sent anyway)."""
        status, body = self._get("/api/health")
        if status != 200 or not isinstance(body, dict):
            raise GrafanaError(f"GET /api/health answered {status}: {body}")
        return body

    def datasource_by_name(self, name: str) -> dict[str, Any]:
        status, body = self._get(f"/api/datasources/name/{urllib.parse.quote(name, safe='')}")
        if status != 200 or not isinstance(body, dict):
            raise GrafanaError(f"datasource {name!r}: GET answered {status}: {body}")
        return body

    def datasource_health(self, uid: str) -> tuple[int, dict[str, Any]]:
        """GET /api/datasources/uid/<uid>/health: 200 {"status": "OK", "message": ...} when Grafana reaches it."""
        status, body = self._get(f"/api/datasources/uid/{urllib.parse.quote(uid, safe='')}/health")
        return status, body if isinstance(body, dict) else {"raw": body}

    def dashboard(self, uid: str) -> tuple[int, dict[str, Any]]:
        """GET /api/dashboards/uid/<uid> -> (status, {"dashboard": {...}, "meta": {"provisioned": bool, ...}})."""
        status, body = self._get(f"/api/dashboards/uid/{urllib.parse.quote(uid, safe='')}")
        return status, body if isinstance(body, dict) else {"raw": body}


def comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard without the keys Grafana manages itself, for comparing what it serves with the file."""
    return {k: v for k, v in dashboard.items() if k not in VOLATILE_KEYS}


def differences(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """JSON paths where `actual` differs from `expected` (first few are enough to say what drifted)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                found.append(f"{path}.{key}: missing")
            elif key not in expected:
                found.append(f"{path}.{key}: not in the file")
            else:
                found += differences(expected[key], actual[key], f"{path}.{key}")
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{path}: {len(actual)} items, the file has {len(expected)}"]
        pairs = enumerate(zip(expected, actual, strict=True))
        return [d for i, (e, a) in pairs for d in differences(e, a, f"{path}[{i}]")]
    return [] if expected == actual else [f"{path}: {actual!r} != {expected!r}"]

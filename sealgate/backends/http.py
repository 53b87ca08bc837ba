"""HTTP to a running stack, in one place: JSON requests with a timeout, one Prometheus API client, one traffic
generator for a described target, and one "wait for a scrape newer than T".

A part that does not answer raises StackError naming its address (the runner reports the check as *errored*: it
could not run); an answer that is an error is returned or raised as HttpAnswerError with the status and the text, so a
check can judge it (a Prometheus that refuses a query is a finding, not an outage).
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from sealgate.backends.errors import StackError
from sealgate.kernel.errors import Problem
from sealgate.kernel.poll import poll
from sealgate.kernel.text import iso_to_epoch

if TYPE_CHECKING:
    from sealgate.backends.base import StackBackend
    from sealgate.backends.description import ServiceDecl

TIMEOUT = 15.0  # one request; every loop around requests has its own deadline too


class HttpAnswerError(ValueError):
    """The server answered, with an error (HTTP status >= 400, or a Prometheus `status: error`)."""

    def __init__(self, url: str, status: int, text: str) -> None:
        self.url, self.status, self.text = url, status, text
        super().__init__(f"HTTP {status} from {url}: {text}")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or the text when the answer is not JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def request(
    method: str,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
    form: dict[str, Any] | None = None,
    timeout: float = TIMEOUT,
    session: requests.Session | None = None,
) -> Answer:
    """One request (`body` as JSON, or `form` url-encoded); StackError when nothing answers at `url` (refused,
    reset, timed out). A `session` keeps the connection for the next request."""
    try:
        response = (session or requests).request(method, url, params=params, json=body, data=form, timeout=timeout)
    except requests.Timeout:
        raise StackError(Problem(url, f"{method} timed out after {timeout:g} s")) from None
    except requests.RequestException as exc:
        raise StackError(Problem(url, f"{method} got no answer: {type(exc).__name__}")) from None
    try:
        parsed: Any = response.json()
    except ValueError:
        parsed = response.text
    return Answer(response.status_code, parsed)


def get_json(url: str, params: dict[str, Any] | None = None, timeout: float = TIMEOUT) -> Any:
    """GET a JSON document; HttpAnswerError on an error status."""
    answer = request("GET", url, params=params, timeout=timeout)
    if not answer.ok:
        raise HttpAnswerError(url, answer.status, _short(answer.body))
    return answer.body


class Prometheus:
    """The Prometheus HTTP API of one server (`base` = http://host:port): the one client every check, the readiness
    waits and the parecer's metric source (analysis/parecer.py) talk to Prometheus through."""

    def __init__(self, base: str, timeout: float = TIMEOUT) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()  # one connection for the many questions a judgement asks

    def api(self, path: str, *, post: bool = False, **params: Any) -> Any:
        """`data` of /api/v1/<path>; HttpAnswerError when Prometheus answers with an error, StackError when it does
        not answer. `post` sends the parameters as a form (a selector over hundreds of names outgrows a URL)."""
        url = f"{self.base}/api/v1/{path}"
        given = {k: v for k, v in params.items() if v is not None}
        answer = request(
            "POST" if post else "GET",
            url,
            params=None if post else given,
            form=given if post else None,
            timeout=self.timeout,
            session=self._session,
        )
        body = answer.body if isinstance(answer.body, dict) else {}
        if not answer.ok or body.get("status") != "success":
            raise HttpAnswerError(url, answer.status, str(body.get("error") or _short(answer.body)))
        return body.get("data")

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's vector (a scalar comes back as one sample with no labels)."""
        data = self.api("query", query=expr, time=None if at is None else f"{at:.3f}") or {}
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": data.get("result")}]
        return list(data.get("result") or [])

    def refusal(self, expr: str) -> str | None:
        """Why Prometheus refuses `expr` (its own parser's words), or None when it evaluates it."""
        try:
            self.query(expr)
        except HttpAnswerError as exc:
            return exc.text
        return None

    def metric_names(self, since: float | None = None) -> set[str]:
        """Metric names Prometheus holds (only series with samples after `since`, when given)."""
        return set(self.api("label/__name__/values", start=None if since is None else f"{since:.3f}") or [])

    def newest_sample(self, job: str) -> float:
        """Wall-clock time of the newest `up` sample of `job`; 0 when there is none."""
        result = self.query(f'max(timestamp(up{{job="{job}"}}))')
        return float(result[0]["value"][1]) if result else 0.0

    def unscraped_since(self, after: float) -> list[str]:
        """`job/instance` of every active target Prometheus has not scraped since `after` (wall clock)."""
        targets = (self.api("targets", state="active") or {}).get("activeTargets") or []
        return [
            f"{t.get('labels', {}).get('job', '?')}/{t.get('labels', {}).get('instance', '?')}"
            for t in targets
            if iso_to_epoch(str(t.get("lastScrape") or "")) <= after
        ]

    def wait_all_scraped_after(
        self, after: float, limit_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> float:
        """Seconds waited until every active target was scraped after `after` (its samples are this stack's, not
        persisted ones); the wait ends at `limit_s` either way — what is still unscraped is judged as it is."""
        _, waited = poll(lambda: not self.unscraped_since(after), timeout=limit_s, interval=0.5, sleep=sleep)
        return waited

    def wait_scrape_after(
        self, job: str, after: float, limit_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> float:
        """Seconds waited until Prometheus holds a sample of `job` scraped after `after` (epoch seconds); StackError
        naming the job when none comes within `limit_s`."""
        scraped, waited = poll(lambda: self.newest_sample(job) > after, timeout=limit_s, interval=0.5, sleep=sleep)
        if not scraped:
            raise StackError(Problem(self.base, f"Prometheus scraped no sample of job {job} within {limit_s:g} s"))
        return waited


def send_traffic(
    stack: StackBackend, count: int, target: ServiceDecl | None = None, concurrency: int = 1
) -> dict[str, int]:
    """Send the stack description's `traffic:` request of `target` (default: the main target) `count` times, from
    `concurrency` parallel clients (1: one after the other); return how many answers each status got. The work is
    real: the target's metrics move."""
    target = target or stack.description.main_target()
    if target.traffic is None:
        raise StackError(Problem(stack.description.path, f"service {target.name} has no `traffic:` request to send"))
    base = stack.url(target.name)
    traffic = target.traffic

    def one(_index: int) -> int:
        return request(traffic.method, base + traffic.path, body=traffic.body).status

    if concurrency > 1:
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            statuses = list(pool.map(one, range(count)))
    else:
        statuses = [one(index) for index in range(count)]
    outcomes: dict[str, int] = {}
    for status in statuses:
        outcomes[str(status)] = outcomes.get(str(status), 0) + 1
    return outcomes


def _short(body: Any, limit: int = 300) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return text.strip()[:limit]

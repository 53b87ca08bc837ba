"""How the runner words a check's unexpected exception: a part that stopped answering is named with its address and
what happened (real HTTP on 127.0.0.1); anything else is a crash of the check, with where it broke."""

from __future__ import annotations

import pytest
import requests
from faults import faulty_http

from sealgate.run.runner import crash_reason, unreachable_reason


def _raised(call) -> BaseException:
    with pytest.raises(Exception) as caught:
        call()
    return caught.value


def test_an_http_500_names_the_url_and_the_status() -> None:
    with faulty_http("500") as server:
        exc = _raised(lambda: requests.get(f"{server.url}/api/v1/query", timeout=5).raise_for_status())
    reason = unreachable_reason(exc)
    assert reason is not None and reason.startswith(f"GET {server.url}/api/v1/query answered HTTP 500: ")
    assert "injected fault" in reason


def test_a_hanging_server_is_named_as_not_answering_in_time() -> None:
    with faulty_http("hang") as server:
        exc = _raised(lambda: requests.get(f"{server.url}/-/ready", timeout=0.5))
    reason = unreachable_reason(exc)
    assert reason is not None and reason.startswith(f"GET {server.url}/-/ready did not answer in time: ")


def test_anything_else_is_a_crash_of_the_check_with_its_place() -> None:
    exc = _raised(lambda: {}["missing"])
    assert unreachable_reason(exc) is None
    assert crash_reason(exc).startswith("check crashed: KeyError: 'missing' (test_runner_reasons.py:")

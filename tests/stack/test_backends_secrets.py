"""Compose secrets on the local backend (a generic capability of the framework, sealgate/backends/local.py): a
service's `secrets:` become files under the run directory (0600, addresses inside rewritten like the configs'), every
config or variable value naming a secret's container path points at its file, and a secret with no value stops the
start naming the secret, its service and its variable — never the value.

Proven on another project's stack (tests/otherproject.py: the shop, its Alertmanager `am` and its receiver `sink`),
with a secret from the environment (a Slack webhook URL naming the sink) and one from a file (a basic-auth password),
and Alertmanager really reading both: the sink receives the Slack message at the rewritten address and the webhook
with the password."""

from __future__ import annotations

import datetime
import json
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from conftest import commit_all, need
from otherproject import make_shop_project
from stack_fixtures import new_run_dir, wait_for

from sealgate.backends.composefile import ComposeFile, SecretRef
from sealgate.backends.description import load_description
from sealgate.backends.errors import StackError
from sealgate.backends.local import LocalBackend
from sealgate.backends.provision import find_binary

PASSWORD = "shop-pw-for-a-test"
SINK = r'''"""sink (secrets variant): one line per delivery, saying what Alertmanager sent where."""

import argparse
import base64
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
        if self.path.startswith("/slack/"):
            titles = [a.get("title") for a in payload.get("attachments", [])]
            print(f"[slack] {self.path} {titles}", flush=True)
        else:
            auth = self.headers.get("Authorization", "")
            user = base64.b64decode(auth.split()[-1]).decode() if auth.startswith("Basic ") else "none"
            print(f"[hook] auth={user}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


parser = argparse.ArgumentParser(prog="sink")
parser.add_argument("--host", default="0.0.0.0")
parser.add_argument("--port", type=int, default=9000)
args = parser.parse_args()
ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()
'''
ALERTMANAGER = """\
route:
  receiver: page
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: page
    webhook_configs:
      - url: http://sink:9000/hook
        http_config: {basic_auth: {username: shop, password_file: /run/secrets/pw}}
    slack_configs:
      - api_url_file: /run/secrets/page_hook
        channel: '#shop'
        title: '{{ .CommonLabels.alertname }}'
"""


def with_secrets(root: Path) -> Path:
    """The shop project, its Alertmanager given two compose secrets: one from a variable, one from a file."""
    compose_path = root / "stack/docker-compose.yml"
    compose = yaml.safe_load(compose_path.read_text())
    compose["services"]["am"]["secrets"] = ["page_hook", {"source": "page_password", "target": "pw"}]
    compose["secrets"] = {
        "page_hook": {"environment": "SHOP_PAGE_HOOK"},
        "page_password": {"file": "../config/page.pw"},
    }
    compose_path.write_text(yaml.safe_dump(compose, sort_keys=False))
    (root / "config/page.pw").write_text(PASSWORD + "\n")
    (root / "monitoring/am.yml").write_text(ALERTMANAGER)
    (root / "services/sink/__main__.py").write_text(SINK)
    commit_all(root, "alertmanager reads its webhook URL and password from compose secrets")
    return root


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_secrets(make_shop_project(tmp_path_factory.mktemp("secrets") / "shop"))


@pytest.fixture
def backend(shop: Path) -> Iterator[LocalBackend]:
    need(find_binary("alertmanager") is not None, "alertmanager not installed (bash .ci/setup-system.sh installs it)")
    run_dir = new_run_dir("sealgate-secrets-")
    local = LocalBackend(
        shop,
        run_dir,
        progress=lambda line: None,
        description=load_description(shop, "deploy/stack.yaml"),
        allow_download=False,
        only=["sink", "am"],
    )
    try:
        yield local
    finally:
        local.down(remove_volumes=True)
        shutil.rmtree(run_dir, ignore_errors=True)


def post_alert(backend: LocalBackend, name: str) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    alert = {
        "labels": {"alertname": name, "severity": "page"},
        "startsAt": now.isoformat().replace("+00:00", "Z"),
        "endsAt": (now + datetime.timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
    }
    answer = requests.post(f"{backend.url('am')}/api/v2/alerts", json=[alert], timeout=10)
    assert answer.status_code == 200, answer.text


@pytest.mark.stack
def test_secrets_become_private_files_alertmanager_really_reads(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_PAGE_HOOK", "http://sink:9000/slack/T1/B1/hook-token")
    backend.up(timeout=60)
    sink_port = backend.ports["sink"]
    directory = backend.run_dir / "secrets" / "am"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    hook, password = directory / "page_hook", directory / "page_password"
    for path in (hook, password):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # The address inside the secret is rewritten like the configs' (the sink's local port); the file's value as is.
    assert hook.read_text() == f"http://127.0.0.1:{sink_port}/slack/T1/B1/hook-token"
    assert password.read_text() == PASSWORD + "\n"
    config = yaml.safe_load((backend.config_dir / "am.yml").read_text())
    receiver = config["receivers"][0]
    assert receiver["slack_configs"][0]["api_url_file"] == str(hook)
    assert receiver["webhook_configs"][0]["http_config"]["basic_auth"]["password_file"] == str(password)

    post_alert(backend, "ShopSecretsProbe")
    lines = wait_for(
        "the sink receiving both deliveries",
        lambda: (lambda out: out if "[slack]" in out and "[hook]" in out else None)(backend.logs("sink")),
        timeout=30,
    )
    assert "[slack] /slack/T1/B1/hook-token ['ShopSecretsProbe']" in lines
    assert "[hook] auth=shop:" + PASSWORD in lines

    backend.down()
    assert not (backend.run_dir / "secrets").exists(), "secrets outlived the processes that read them"


@pytest.mark.stack
@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_secret_without_value_stops_the_start_naming_it(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("SHOP_PAGE_HOOK", raising=False)
    else:
        monkeypatch.setenv("SHOP_PAGE_HOOK", value)
    with pytest.raises(StackError) as raised:
        backend.up(timeout=30)
    text = str(raised.value)
    said = "is not set" if value is None else "is empty"
    assert (
        f"stack/docker-compose.yml: secrets.page_hook (used by am): environment variable SHOP_PAGE_HOOK {said}" in text
    )
    assert "no service was started" in text
    assert not any(p.alive() for p in backend.procs.values())


def test_empty_secret_file_and_undeclared_secret_are_problems(shop: Path, tmp_path: Path) -> None:
    compose = ComposeFile(shop / "stack/docker-compose.yml", {"SHOP_PAGE_HOOK": "x"}, "stack/docker-compose.yml")
    assert compose.services["am"].secrets() == [
        SecretRef("page_hook", "/run/secrets/page_hook"),
        SecretRef("page_password", "/run/secrets/pw"),
    ]
    assert compose.secret_problems(["am", "sink"]) == []
    assert compose.secret_value("page_password", "am") == PASSWORD + "\n"

    raw = yaml.safe_load((shop / "stack/docker-compose.yml").read_text())
    raw["services"]["sink"]["secrets"] = [{"source": "nowhere", "target": "/etc/sink/token"}]
    raw["secrets"]["page_password"] = {"file": "empty.pw"}
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(yaml.safe_dump(raw))
    (tmp_path / "empty.pw").write_text("\n")
    problems = [str(p) for p in ComposeFile(broken, {"SHOP_PAGE_HOOK": "x"}, "c.yml").secret_problems(["am", "sink"])]
    assert problems == [
        "c.yml: secrets.page_password (used by am): its file empty.pw is empty",
        "c.yml: secrets.nowhere (used by sink): is not declared at the top level of the compose file",
    ]


def test_secret_values_never_reach_the_error(tmp_path: Path) -> None:
    """A secret that exists is never quoted: the problems name variables and files only."""
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(
        json.dumps(
            {
                "services": {"a": {"image": "x", "secrets": ["s1", "s2"]}},
                "secrets": {"s1": {"environment": "S1"}, "s2": {"environment": "S2"}},
            }
        )
    )
    problems = ComposeFile(compose_file, {"S1": "very-secret-value"}, "c.yml").secret_problems(["a"])
    assert [str(p) for p in problems] == [
        "c.yml: secrets.s2 (used by a): environment variable S2 is not set (set S2 to the secret's value)"
    ]
    assert "very-secret-value" not in repr(problems)


@pytest.mark.stack
def test_compose_backend_names_every_missing_secret_before_compose_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This project's stack on the compose backend: two secrets without a value are both named, and nothing of the
    project (no container, no volume) is created."""
    import docker
    from stack_fixtures import new_compose_backend

    backend = new_compose_backend(tmp_path, "-secrets")
    client = docker.from_env()
    images = [t for image in client.images.list() for t in image.tags]
    need(
        any(t.startswith("sealgate-offline:") for t in images),
        "no offline image (bash stack/scripts/build_offline_image.sh)",
    )
    monkeypatch.delenv("PAGERDUTY_ROUTING_KEY", raising=False)
    monkeypatch.setenv("OFFSITE_S3_SECRET_ACCESS_KEY", "")
    with pytest.raises(StackError) as raised:
        backend.up(timeout=60)
    text = str(raised.value)
    compose = "stack/docker-compose.yml"
    assert f"{compose}: secrets.pagerduty_routing_key (used by alertmanager): environment variable " \
        "PAGERDUTY_ROUTING_KEY is not set" in text  # fmt: skip
    assert f"{compose}: secrets.offsite_s3_secret_access_key (used by offsite-s3): environment variable " \
        "OFFSITE_S3_SECRET_ACCESS_KEY is empty" in text  # fmt: skip
    assert "compose up was not run" in text
    labels = {"label": f"com.docker.compose.project={backend.project}"}
    assert client.containers.list(all=True, filters=labels) == []
    assert client.volumes.list(filters=labels) == []

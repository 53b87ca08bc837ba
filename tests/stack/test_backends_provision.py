"""Provisioning of the local backend's binaries, the way envtest provisions its control plane — tested against a
real HTTP server on 127.0.0.1 serving a real release-shaped archive (these machines cannot reach the release site):
download, sha256 check, unpack into the per-user cache, reuse from the cache, and refusal of a corrupted archive or
a failed download with the manual install command.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import need_tool

from sealgate.backends import provision
from sealgate.backends.errors import StackError

MANUAL_HINT = "apt-get install -y prometheus prometheus-alertmanager"


@dataclass
class ReleaseServer:
    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def release_server() -> Iterator[ReleaseServer]:
    server_state = ReleaseServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_state.requests.append(self.path)
            body = server_state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()


def release_archive(arch: str) -> bytes:
    """prometheus-2.51.0.linux-<arch>.tar.gz shaped like the real release, around this machine's prometheus binary."""
    need_tool("prometheus", "promtool")
    top = f"prometheus-{provision.RELEASES['prometheus'].version}.linux-{arch}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:  # speed over size
        for name, source in (("prometheus", shutil.which("prometheus")), ("promtool", shutil.which("promtool"))):
            tar.add(str(source), arcname=f"{top}/{name}")
        for name, text in (("LICENSE", b"Apache License 2.0\n"), ("prometheus.yml", b"global: {}\n")):
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    return buffer.getvalue()


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, release_server: ReleaseServer) -> Path:
    """A fresh per-user cache, releases served from 127.0.0.1, no binary named by env vars."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SEALGATE_RELEASES_URL", release_server.url)
    monkeypatch.delenv("SEALGATE_PROMETHEUS_BIN", raising=False)
    return tmp_path / "cache" / "sealgate" / "bin"


def path_of(arch: str) -> str:
    release = provision.RELEASES["prometheus"]
    return f"/prometheus/prometheus/releases/download/v{release.version}/{provision.archive_name(release, arch)}"


def test_download_checksum_unpack_then_reuse_from_cache(isolated: Path, release_server: ReleaseServer):
    archive = release_archive("amd64")
    release_server.files[path_of("amd64")] = archive
    digest = hashlib.sha256(archive).hexdigest()

    first = provision.provision("prometheus", arch="amd64", sha256=digest)
    assert first.source == "download"
    assert first.path == isolated / "prometheus-2.51.0" / "prometheus"
    assert first.version.startswith("prometheus, version"), first.version  # the unpacked binary really runs
    assert (isolated / "prometheus-2.51.0" / "promtool").is_file()
    assert release_server.requests == [path_of("amd64")]

    again = provision.provision("prometheus", arch="amd64", sha256=digest)
    assert again.source == "cache" and again.path == first.path
    assert release_server.requests == [path_of("amd64")], "the second call must not download again"


def test_pinned_digest_is_enforced_by_default(isolated: Path, release_server: ReleaseServer):
    """Without a digest override only the pinned digest of the official archive is trusted: ours is refused."""
    release_server.files[path_of("amd64")] = release_archive("amd64")
    with pytest.raises(StackError, match="sha256 mismatch") as raised:
        provision.provision("prometheus", arch="amd64")
    assert MANUAL_HINT in str(raised.value)
    assert provision.RELEASES["prometheus"].sha256["amd64"] in str(raised.value)
    assert not (isolated / "prometheus-2.51.0").exists()


def test_corrupted_archive_is_refused_with_the_manual_install_command(isolated: Path, release_server: ReleaseServer):
    archive = release_archive("amd64")
    corrupted = bytearray(archive)
    corrupted[len(corrupted) // 2] ^= 0xFF
    release_server.files[path_of("amd64")] = bytes(corrupted)
    with pytest.raises(StackError, match="sha256 mismatch") as raised:
        provision.provision("prometheus", arch="amd64", sha256=hashlib.sha256(archive).hexdigest())
    assert MANUAL_HINT in str(raised.value)
    assert not (isolated / "prometheus-2.51.0").exists(), "a refused archive must leave nothing in the cache"
    assert not list(isolated.glob(".prometheus-*")), "no scratch directory left behind"


def test_failed_download_is_refused_with_the_manual_install_command(isolated: Path, release_server: ReleaseServer):
    with pytest.raises(StackError, match=r"download of .* failed") as raised:
        provision.provision("prometheus", arch="amd64", sha256="0" * 64)
    assert MANUAL_HINT in str(raised.value)
    assert release_server.requests == [path_of("amd64")]


def test_unknown_pinned_digest_refuses_without_downloading(isolated: Path, release_server: ReleaseServer):
    assert provision.RELEASES["prometheus"].sha256["arm64"] is None  # no published digest could be confirmed
    with pytest.raises(StackError, match="no pinned sha256") as raised:
        provision.provision("prometheus", arch="arm64")
    assert MANUAL_HINT in str(raised.value)
    assert release_server.requests == []


def test_lookup_order_env_then_path_then_cache(isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    need_tool("prometheus")
    monkeypatch.setenv("SEALGATE_PROMETHEUS_BIN", shutil.which("prometheus"))
    assert provision.find_binary("prometheus").source == "env"
    monkeypatch.delenv("SEALGATE_PROMETHEUS_BIN")
    assert provision.find_binary("prometheus").source == "path"
    cached = isolated / "prometheus-2.51.0" / "prometheus"
    cached.parent.mkdir(parents=True)
    shutil.copy2(shutil.which("prometheus"), cached)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    found = provision.find_binary("prometheus")
    assert found.source == "cache" and found.path == cached
    monkeypatch.setenv("SEALGATE_PROMETHEUS_BIN", str(tmp_path / "missing"))
    with pytest.raises(StackError, match="SEALGATE_PROMETHEUS_BIN"):
        provision.find_binary("prometheus")

"""Fault injectors for the reliability tests. Each stands between sealgate and a real part, so the fault is real
for the code under test while the real part stays unharmed for the rest of the test session:

* `DockerSocketProxy` — a Unix socket that forwards to the real Docker engine until `cut()`: then every open
  connection is dropped and new ones are refused, which is what a client sees when dockerd dies. (Killing this
  machine's dockerd would take every other test's stack with it.)
* `FaultyHTTPServer` — an HTTP server on 127.0.0.1 that answers every request with HTTP 500, or accepts it and never
  answers (hangs), standing where Prometheus should be.
* `listening_on` — ports held by a listening socket, as another program would hold them; `TakenFirst` — a port
  chooser for a stack backend whose first picks are such a held port: the race between choosing a free port and
  binding it, lost on purpose.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sealgate.kernel.ports import free_ports

DOCKER_SOCKET = "/var/run/docker.sock"


class DockerSocketProxy:
    """Forward `path` to the engine's socket; `cut()` makes the engine vanish for whoever uses `path`."""

    def __init__(self, path: Path, upstream: str = DOCKER_SOCKET) -> None:
        self.path = path
        self.upstream = upstream
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(64)
        self.cut_done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while not self.cut_done.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.cut_done.is_set():
                    client.close()
                    upstream.close()
                    return
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Drop every connection and stop listening: the engine stops answering mid-conversation."""
        with self.lock:
            self.cut_done.set()
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self.connections.clear()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@contextlib.contextmanager
def docker_socket_proxy(path: Path) -> Iterator[DockerSocketProxy]:
    proxy = DockerSocketProxy(path)
    try:
        yield proxy
    finally:
        proxy.cut()


class FaultyHTTPServer(ThreadingHTTPServer):
    """`mode="500"`: every request gets HTTP 500 with a Prometheus-like error body. `mode="hang"`: every request is
    read and never answered, until the server stops (bounded: a handler waits at most `hang_s`)."""

    daemon_threads = True

    def __init__(self, mode: str, hang_s: float = 120.0) -> None:
        self.mode = mode
        self.hang_s = hang_s
        self.stopping = threading.Event()
        self.requests: list[str] = []
        super().__init__(("127.0.0.1", 0), _FaultyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FaultyHandler(BaseHTTPRequestHandler):
    server: FaultyHTTPServer

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        if self.server.mode == "hang":
            self.server.stopping.wait(self.server.hang_s)
            return
        body = b'{"status":"error","errorType":"internal","error":"injected fault: HTTP 500"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def faulty_http(mode: str) -> Iterator[FaultyHTTPServer]:
    server = FaultyHTTPServer(mode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def listening_on(*ports: int) -> Iterator[list[int]]:
    """Hold a listening socket on 127.0.0.1 at each port (0: one the kernel hands out right now) until the block
    ends; yields the ports taken. A port something else already holds is taken too: it is yielded, not held here."""
    held: list[socket.socket] = []
    taken: list[int] = []
    try:
        for port in ports:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                sock.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                taken.append(port)
                continue
            sock.listen()
            held.append(sock)
            taken.append(sock.getsockname()[1])
        yield taken
    finally:
        for sock in held:
            sock.close()


class TakenFirst:
    """A backend's `choose_ports`: the kernel's free ports, except that each of the first `times` calls puts `taken`
    at position `at` (or last, for a shorter call). `calls` counts every call."""

    def __init__(self, taken: int, times: int = 1, at: int = 0) -> None:
        self.taken = taken
        self.times = times
        self.at = at
        self.calls = 0

    def __call__(self, count: int) -> list[int]:
        self.calls += 1
        ports = free_ports(count)
        if self.calls <= self.times and ports:
            ports[min(self.at, count - 1)] = self.taken
        return ports

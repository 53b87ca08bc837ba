"""An exporter that cannot run on this machine, stood in for by its own recorded exposition: a test fixture.

cAdvisor needs the Docker engine's state and root on the host, and no image of it can be pulled here. Its repository
records what its Prometheus collector exports in its own tests (google/cadvisor `lib/metrics/testdata/
prometheus_metrics` and `prometheus_machine_metrics`, kept unedited under tests/fixtures/real/cadvisor/ with their
licence): metric names, types, label names and label values exactly as cAdvisor writes them. This program serves
those files the way cAdvisor serves its metrics, so the public repositories of tests/fixtures/real/ that scrape a
cAdvisor are judged against cAdvisor's real exposition rather than against nothing:

    GET /metrics   the recorded files, concatenated (cAdvisor's one page holds its container and machine collectors),
                   each sample's timestamp dropped — cAdvisor stamps a sample with its last housekeeping, seconds ago;
                   the recording's stamps are from 2014, which Prometheus refuses as out of bounds, so here Prometheus
                   stamps each sample at scrape time, as it would a fresh one
    GET /healthz   `ok`, as cAdvisor answers it

It takes cAdvisor's own listening flags (`-listen_ip=127.0.0.1 -port=8080`), so a stack description that runs the
real `cadvisor` as a local process runs this where tests/seal/test_real_repos.py puts it on PATH under that name.
`--version` says what it is and names no version: none of cAdvisor's ran.
"""

from __future__ import annotations

import argparse
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION_LINE = (
    "cadvisor stand-in: the recorded exposition of google/cadvisor's own tests (lib/metrics/testdata), "
    "no cAdvisor program and no cAdvisor version"
)


def without_timestamps(text: str) -> str:
    """The exposition with every sample's optional trailing timestamp removed (comments and values untouched).

    A sample line is `name{labels} value [timestamp]`; label values may hold spaces, so the value and the timestamp
    are read after the closing brace of the labels, not by splitting the whole line."""
    lines = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            lines.append(line)
            continue
        head, sep, tail = line.rpartition("}")
        if not sep:  # no labels: `name value [timestamp]`
            head, _, tail = line.partition(" ")
        fields = tail.split()
        lines.append(f"{head}{sep} {fields[0]}" if len(fields) == 2 else line)
    return "\n".join(lines) + "\n"


def serve(host: str, port: int, page: str) -> None:
    body = page.encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass  # Prometheus scrapes every few seconds: one line each would only bury the log

        def reply(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self.reply(200, body, "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz":
                self.reply(200, b"ok", "text/plain; charset=utf-8")
            else:
                self.reply(404, b"not found\n", "text/plain; charset=utf-8")

    server = ThreadingHTTPServer((host, port), Handler)
    print(f"cadvisor stand-in: serving the recorded exposition on {host}:{port}", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cadvisor", description=VERSION_LINE)
    # cAdvisor's flags are Go flags: one dash or two, `-port=8080` or `-port 8080`.
    parser.add_argument("-listen_ip", "--listen_ip", default="")
    parser.add_argument("-port", "--port", type=int, default=8080)
    parser.add_argument("-version", "--version", action="store_true")
    parser.add_argument("--recording", action="append", default=[], type=Path, help="a recorded exposition file")
    args, _ignored = parser.parse_known_args(argv)  # cAdvisor's other flags (-docker_only, …) change nothing here
    if args.version:
        print(VERSION_LINE)
        return 0
    if not args.recording:
        parser.error("no --recording given")
    page = "".join(without_timestamps(path.read_text(encoding="utf-8")) for path in args.recording)
    serve(args.listen_ip or "127.0.0.1", args.port, page)  # this machine only, whatever cAdvisor defaults to
    return 0


if __name__ == "__main__":
    sys.exit(main())

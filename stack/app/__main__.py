"""Entry point: `python3 -m app [--host H] [--port N]` (cwd: the directory holding app/).

Exit status 2 with one stderr line when the breaker configuration (VERITTA_CB_*), the rate limiter's
(VERITTA_RL_*) or the arguments are invalid; 0 after SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(value)
    return port


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="techno-os-api", description=__doc__)
    parser.add_argument(
        "--host", default=os.environ.get("API_HOST", "0.0.0.0"), help="address to bind (env API_HOST, default 0.0.0.0)"
    )
    parser.add_argument(
        "--port", type=_port, default=None, help="port to bind, 0 for any free one (env API_PORT, default 8000)"
    )
    args = parser.parse_args(argv)
    if args.port is None:
        raw = os.environ.get("API_PORT", "8000")
        try:
            args.port = _port(raw)
        except ValueError:
            parser.exit(2, f"techno-os-api: API_PORT={raw!r} is invalid: expected a port number 0-65535\n")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here, not at the top: reading VERITTA_CB_* happens at import of the singleton, and a bad value must
    # end the process with one readable line, not a traceback.
    from app.llm.breaker_config import BreakerConfigError

    try:
        from app.llm import circuit_breaker_singleton as cb
    except BreakerConfigError as exc:
        print(f"techno-os-api: refusing to start: {exc}", file=sys.stderr)
        return 2
    from app.ratelimit import RateLimitConfig, RateLimitConfigError, RateLimiter

    try:
        limits = RateLimitConfig.from_environ()
    except RateLimitConfigError as exc:
        print(f"techno-os-api: refusing to start: {exc}", file=sys.stderr)
        return 2

    from app.http_metrics import HTTPMetrics
    from app.llm.provider import PROVIDERS
    from app.metrics import LLMMetrics
    from app.server import INITIAL_OUTCOMES, App, make_server

    metrics = LLMMetrics()
    metrics.bind_breaker(cb.circuit_breaker)
    metrics.initialise({name: provider.models for name, provider in PROVIDERS.items()})
    http_metrics = HTTPMetrics(metrics.registry)
    http_metrics.initialise(INITIAL_OUTCOMES)
    app = App(cb.CONFIG, cb.circuit_breaker, PROVIDERS, metrics, RateLimiter(limits), http_metrics)
    try:
        server = make_server(app, args.host, args.port)
    except OSError as exc:
        print(f"techno-os-api: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1

    stopping: list[str] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return, which runs in this (the main) thread: call it elsewhere.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    config = cb.CONFIG
    print(
        f"techno-os-api: listening on http://{host}:{port} "
        f"(breaker threshold={config.threshold} [{config.threshold_source}] "
        f"timeout_s={config.timeout_s} [{config.timeout_source}]; "
        f"rate limit={limits.limit} [{limits.limit_source}] per window_s={limits.window_s} [{limits.window_source}])",
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    print(f"techno-os-api: stopped ({stopping[0] if stopping else 'shutdown'})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

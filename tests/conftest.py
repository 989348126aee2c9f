"""Shared pytest fixtures."""

from collections.abc import Iterator

import pytest

from tests.kite_server import KiteServer
from tests.kraken_server import KrakenServer


@pytest.fixture
def kraken_server() -> Iterator[KrakenServer]:
    """A local Kraken REST look-alike on 127.0.0.1 (see tests/kraken_server.py), stopped after."""
    with KrakenServer() as server:
        yield server


@pytest.fixture
def kite_server() -> Iterator[KiteServer]:
    """A local Kite Connect look-alike on 127.0.0.1 (see tests/kite_server.py), stopped after.

    Workspaces on it: tests/exchange_fixtures.py (`kite_workspace`, `kite_ready`)."""
    with KiteServer() as server:
        yield server


# --- secrets servers (OpenBao dev server, moto) and a file keyring ----------------------------
from pathlib import Path  # noqa: E402

from tests.servers import MotoServer, OpenBaoDevServer  # noqa: E402


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBaoDevServer]:
    """A real Vault-API server (OpenBao dev mode, KV v2 at secret/), stopped after the session."""
    with OpenBaoDevServer(tmp_path_factory.mktemp("openbao")) as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's AWS server on 127.0.0.1, stopped after the session."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Fake AWS credentials and region for moto; secrets from earlier tests forgotten."""
    moto_server.reset()
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return moto_server


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """keyring backed by a test-only file backend in tmp_path; the old keyring restored.

    Subprocesses get it too, through PYTHON_KEYRING_BACKEND (tests/ must be importable).
    """
    import keyring

    from tests.keyring_for_tests import FileKeyringForTests

    previous = keyring.get_keyring()
    path = tmp_path / "keyring" / "keyring_for_tests.json"
    monkeypatch.setenv("VHC_TEST_KEYRING_FILE", str(path))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.keyring_for_tests.FileKeyringForTests")
    keyring.set_keyring(FileKeyringForTests(path))
    try:
        yield path
    finally:
        keyring.set_keyring(previous)

"""A keyring backend for the tests only: entries in a JSON file (mode 0600) under tmp_path.

vhc refuses plaintext backends that a user could end up with by accident (keyrings.alt's
PlaintextKeyring); this one is never installed with vhc and lives only in the test tree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend


class FileKeyringForTests(KeyringBackend):
    """Service/user -> password, kept in one JSON file."""

    priority = -1  # type: ignore[assignment]  # below every real backend: only chosen on purpose

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()
        self._path = path

    @property
    def path(self) -> Path:
        return Path(self._path or os.environ["VHC_TEST_KEYRING_FILE"])

    def _load(self) -> dict[str, str]:
        if not self.path.exists():
            return {}
        data: dict[str, str] = json.loads(self.path.read_text())
        return data

    def _save(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\0{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\0{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        data.pop(f"{service}\0{username}", None)
        self._save(data)

"""Encrypted ledger backups: a consistent copy taken under the lock, and a restore that verifies.

The copy is AES-256-GCM (the `cryptography` library), streamed in 1 MiB chunks, under a key kept
in the secrets backend as `backup_key` (created on the first backup when the backend can store
it). File layout: MAGIC, a 12-byte nonce, the ciphertext, the 16-byte tag; MAGIC and nonce are
authenticated too. The chain's digest is written beside it as `<file>.digest.json`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..errors import ConfigError, LedgerIntegrityError, UsageError
from .store import Head, open_ledger
from .verify import verify_chain

if TYPE_CHECKING:
    from ..workspace import Workspace

MAGIC = b"VHCBAK1\n"
KEY_NAME = "backup_key"
SUFFIX = ".vhcbak"
_NONCE = 12
_TAG = 16
_CHUNK = 1 << 20


@dataclass(frozen=True)
class BackupResult:
    """What a backup wrote, or what a restore put back."""

    path: Path
    digest_path: Path | None
    rows: int
    head: Head
    removed: tuple[Path, ...] = ()


def digest_path(backup: Path) -> Path:
    """Where a backup's digest lives."""
    return backup.with_name(backup.name + ".digest.json")


def _key(ws: Workspace, create: bool) -> bytes:
    from ..secrets import get_secret, set_secret
    from ..secrets.common import MissingSecretError

    try:
        text = get_secret(ws, KEY_NAME)
    except MissingSecretError:
        if not create:
            raise ConfigError(
                f"no {KEY_NAME} in the secrets backend: restore needs the key the backup was "
                f"made with (`vhc secrets set {KEY_NAME}`)"
            ) from None
        text = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        set_secret(ws, KEY_NAME, text)
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ConfigError(f"the secret {KEY_NAME} is not 32 bytes in URL-safe base64")
    return key


def default_output(ws: Workspace) -> Path:
    """backups/vhc-<UTC time>.vhcbak in the workspace."""
    return ws.home / "backups" / f"vhc-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}{SUFFIX}"


def take_backup(ws: Workspace, output: Path | None = None, keep: int | None = None) -> BackupResult:
    """Checkpoint and verify the ledger under its lock, then write it encrypted with its digest."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from ..workspace import output_path, write_output

    target = output_path(output or default_output(ws))
    key = _key(ws, create=True)  # first: storing a new key records an event in the ledger
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    nonce = os.urandom(_NONCE)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with ws.open_ledger() as ledger:
        # Holding the lock: no vhc process writes; after CHECKPOINT the file is whole on disk.
        ledger.con.execute("CHECKPOINT")
        result = verify_chain(ledger)
        if result.problem is not None:
            raise LedgerIntegrityError(
                f"not backing up a ledger that fails verify: {result.problem.describe()}"
            )
        encryptor = Cipher(algorithms.AES(key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(MAGIC + nonce)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out, open(ledger.path, "rb") as src:
                out.write(MAGIC + nonce)
                while chunk := src.read(_CHUNK):
                    out.write(encryptor.update(chunk))
                out.write(encryptor.finalize() + encryptor.tag)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.replace(tmp, target)
    head = result.head
    doc = {"seq": head.seq, "hash": head.hash, "rows": result.rows}
    write_output(digest_path(target), json.dumps(doc) + "\n")
    removed = _prune(target.parent, keep) if keep is not None else ()
    return BackupResult(target, digest_path(target), result.rows, head, removed)


def _prune(folder: Path, keep: int) -> tuple[Path, ...]:
    """Keep the newest `keep` backups named vhc-*.vhcbak (their names sort by time)."""
    found = sorted(folder.glob(f"vhc-*{SUFFIX}"))
    old = found[: max(len(found) - keep, 0)]
    for path in old:
        path.unlink(missing_ok=True)
        digest_path(path).unlink(missing_ok=True)
    return tuple(old)


def _decrypt(key: bytes, src: BinaryIO, size: int, out: BinaryIO) -> None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    header = src.read(len(MAGIC) + _NONCE)
    if size < len(MAGIC) + _NONCE + _TAG or not header.startswith(MAGIC):
        raise LedgerIntegrityError("not a vhc ledger backup (bad header)")
    nonce = header[len(MAGIC) :]
    src.seek(size - _TAG)
    tag = src.read(_TAG)
    src.seek(len(header))
    decryptor = Cipher(algorithms.AES(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(header)
    left = size - len(header) - _TAG
    while left > 0:
        chunk = src.read(min(_CHUNK, left))
        left -= len(chunk)
        out.write(decryptor.update(chunk))
    try:
        out.write(decryptor.finalize())
    except InvalidTag:
        raise LedgerIntegrityError(
            "the backup does not authenticate: it was altered, or made with another backup_key"
        ) from None


def restore_backup(ws: Workspace, backup: Path, to_dir: Path) -> BackupResult:
    """Decrypt into `to_dir`/vhc.duckdb, verify the chain and the digest; refuse otherwise."""
    key = _key(ws, create=False)
    if not backup.is_file():
        raise UsageError(f"{backup} is not a backup file")
    if to_dir.exists() and not to_dir.is_dir():
        raise UsageError(f"--to {to_dir} is not a directory")
    target = to_dir / "vhc.duckdb"
    if target.exists():
        raise UsageError(f"{target} already exists: restore into an empty folder")
    to_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = to_dir / f".restore-{os.getpid()}.duckdb"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, open(backup, "rb") as src:
            _decrypt(key, src, os.fstat(src.fileno()).st_size, out)
            out.flush()
            os.fsync(out.fileno())
        with open_ledger(tmp, 5, read_only=True) as ledger:
            result = verify_chain(ledger)
        if result.problem is not None:
            raise LedgerIntegrityError(
                f"the backup's ledger fails verify: {result.problem.describe()}"
            )
        _check_digest(backup, result.head)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_name(tmp.name + ".lock").unlink(missing_ok=True)
    return BackupResult(target, None, result.rows, result.head)


def _check_digest(backup: Path, head: Head) -> None:
    path = digest_path(backup)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        want = Head(int(doc["seq"]), str(doc["hash"]))
    except FileNotFoundError:
        raise LedgerIntegrityError(
            f"{path} is missing: without the digest taken with it, a backup cannot be trusted"
        ) from None
    except (ValueError, KeyError, TypeError):
        raise LedgerIntegrityError(f"{path} is not a vhc digest") from None
    if want != head:
        raise LedgerIntegrityError(
            f"the backup's head (seq {head.seq}) differs from its digest (seq {want.seq}): "
            "refusing it"
        )

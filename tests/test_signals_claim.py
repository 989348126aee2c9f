"""A worker's claim counts only on the lock file that is at the path now."""

import os

from ccxtkit.signals.worker import _still_at


def test_a_lock_on_a_file_its_holder_removed_is_not_a_claim(tmp_path):
    path = tmp_path / "sig.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert _still_at(path, fd)
        path.unlink()  # the holder finished and removed it
        assert not _still_at(path, fd)
        path.write_text("")  # a newer worker's file at the same path
        assert not _still_at(path, fd)
    finally:
        os.close(fd)

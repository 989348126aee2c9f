"""The kill switch's sweeps take turns: no account records its books before every account is
calling its exchange (`flatten.CancelsFirst`), so one account's ledger work never holds the
interpreter while another is still building the client that sends its cancels."""

from __future__ import annotations

import threading
import time

from ccxtkit.risk.flatten import CancelsFirst


def test_books_wait_until_every_account_is_calling_its_exchange() -> None:
    turns = CancelsFirst(2)
    order: list[str] = []

    def fast() -> None:
        turns.calling()
        order.append("fast cancelled")
        turns.books()
        order.append("fast books")

    thread = threading.Thread(target=fast)
    thread.start()
    time.sleep(0.2)  # the slow account is still importing its exchange library
    order.append("slow calling")
    turns.calling()
    thread.join(5)
    assert order == ["fast cancelled", "slow calling", "fast books"]


def test_an_account_that_never_gets_to_call_holds_nobody_past_the_patience() -> None:
    turns = CancelsFirst(2, patience=0.2)
    turns.calling()
    start = time.monotonic()
    turns.books()  # the other account hung building its client
    waited = time.monotonic() - start
    assert 0.15 <= waited < 2


def test_a_single_account_never_waits() -> None:
    turns = CancelsFirst(1, patience=10)
    turns.calling()
    start = time.monotonic()
    turns.books()
    assert time.monotonic() - start < 0.5

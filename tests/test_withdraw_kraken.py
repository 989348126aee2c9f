"""Withdrawals through unmodified ccxt against the Kraken look-alike: a lost reply is never resent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from ccxtkit.errors import WithdrawalOutcomeUnknown
from ccxtkit.ledger.store import open_ledger
from ccxtkit.withdrawals import recover, service
from ccxtkit.withdrawals.execute import LOOKUP_GRACE
from ccxtkit.workspace import Workspace
from tests.exchange_fixtures import ADDR, add_kraken_account, now_code, withdraw_workspace
from tests.kraken_server import KrakenServer
from tests.test_killswitch import run_cli


@pytest.fixture
def ws(tmp_path: Path, kraken_server: KrakenServer, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """A `kraken` account on the local server with 1 BTC, a withdrawal key `cold`, allowlisted."""
    kraken_server.set_balance("BTC", "1")
    kraken_server.register_withdrawal_key("BTC", "cold", ADDR)
    return withdraw_workspace(
        tmp_path, add_kraken_account, kraken_server, monkeypatch, label="cold"
    )


def ledger_transfers(ws: Workspace) -> list[dict[str, object]]:
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        return ledger.rows("SELECT * FROM transfers")


def test_lost_reply_is_found_not_resent(
    ws: Workspace, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run_cli(
        ws, ["--json", "withdraw", "request", "kraken", "BTC", "0.1", ADDR], capsys
    )
    assert rc == 0, err
    rid = json.loads(out)["id"]
    assert D(json.loads(out)["usd"]) == D("5000")  # 0.1 BTC at the server's 50000
    kraken_server.withdrawal_fees["XXBT"] = D("0.0005")
    kraken_server.drop_reply_next("Withdraw")
    rc, out, err = run_cli(ws, ["withdraw-approve", rid, "--auth-code", now_code()], capsys)
    assert rc == 0, err
    assert "found by lookup" in out
    # Exactly one Withdraw request reached the exchange, with the withdrawal key as `key`.
    (sent,) = kraken_server.requests_to("Withdraw")
    assert sent.params["key"] == "cold" and sent.params["amount"] == "0.1"
    (on_exchange,) = [t for t in kraken_server.transfers if t.kind == "withdrawal"]
    (row,) = ledger_transfers(ws)
    assert row["transfer_id"] == on_exchange.refid and row["request_id"] == rid
    assert row["source"] == "withdraw" and row["kind"] == "withdrawal"
    assert row["amount"] == D("0.0995") and row["fee"] == D("0.0005")  # net + fee = 0.1 sent
    # recover has nothing to do and never sends again.
    rc, out, _ = run_cli(ws, ["withdraw", "recover"], capsys)
    assert rc == 0 and "nothing to recover" in out
    assert len(kraken_server.requests_to("Withdraw")) == 1
    rc, out, _ = run_cli(ws, ["--json", "ledger", "log", "--limit", "50"], capsys)
    life = [e["kind"] for e in reversed(json.loads(out)) if e["subject"] == rid]
    assert life == [
        "withdraw.request",
        "withdraw.approval",
        "withdraw.approved",
        "withdraw.executing",
        "withdraw.unknown",
        "withdraw.executed",
    ]
    rc, _, err = run_cli(ws, ["ledger", "verify"], capsys)
    assert rc == 0, err
    # Reconciliation matches the recorded withdrawal by the exchange's id: no transfer finding.
    # (The balance differs only because the test's opening balance was never recorded.)
    rc, out, err = run_cli(ws, ["--json", "reconcile", "--exchange", "kraken"], capsys)
    assert json.loads(out)["accounts"]["kraken"]["findings"] == [], err


def test_lost_reply_and_failed_lookup_is_resolved_by_recover(
    ws: Workspace, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rid = service.request_withdrawal(ws, "kraken", "BTC", "0.2", ADDR).request.id
    kraken_server.drop_reply_next("Withdraw")
    kraken_server.fail_next("WithdrawStatus", times=3)  # the lookup right after fails too
    rc, _, err = run_cli(ws, ["withdraw-approve", rid, "--auth-code", now_code()], capsys)
    assert rc == 5 and "will not be sent again" in err and "vhc withdraw recover" in err
    assert ledger_transfers(ws) == []
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "list", "--status", "executing"], capsys)
    assert [r["id"] for r in json.loads(out)] == [rid]
    # Approving again does not resend; recover looks it up and records it once.
    rc, _, err = run_cli(ws, ["withdraw-approve", rid, "--auth-code", "123456"], capsys)
    assert rc == 2 and "recover" in err
    # Nor can the same withdrawal be asked for again while its outcome is unknown.
    rc, _, err = run_cli(ws, ["withdraw", "request", "kraken", "BTC", "0.2", ADDR], capsys)
    assert rc == 3 and rid in err and "vhc withdraw recover" in err
    rc, out, err = run_cli(ws, ["withdraw", "recover"], capsys)
    assert rc == 0, err
    assert "executing -> executed" in out
    assert len(kraken_server.requests_to("Withdraw")) == 1
    (row,) = ledger_transfers(ws)
    assert row["request_id"] == rid and row["amount"] == D("0.2")
    assert kraken_server.balance("BTC") == D("0.8")


def test_never_arrived_is_failed_only_after_the_grace_period(
    ws: Workspace, kraken_server: KrakenServer
) -> None:
    rid = service.request_withdrawal(ws, "kraken", "BTC", "0.15", ADDR).request.id
    # An answer that says nothing about the outcome: recorded as unknown, never resent.
    kraken_server.fail_next("Withdraw", status=None, error="EService:Unavailable")
    with pytest.raises(WithdrawalOutcomeUnknown, match=rid):
        service.approve(ws, rid, now_code(), "admin")
    assert [r.status for r in service.list_requests(ws, "all")] == ["executing"]
    # Inside the grace period recover keeps looking; after it, not listed means never arrived.
    sent_at = datetime.now(UTC)
    soon = recover.recover(ws, now=sent_at + LOOKUP_GRACE - timedelta(minutes=1))
    assert [(r.after, r.needs_attention) for r in soon] == [("executing", True)]
    late = recover.recover(ws, now=sent_at + LOOKUP_GRACE + timedelta(minutes=1))
    assert [r.after for r in late] == ["failed"]
    assert len(kraken_server.requests_to("Withdraw")) == 1
    assert ledger_transfers(ws) == []
    assert kraken_server.balance("BTC") == D("1")

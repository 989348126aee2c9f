"""Withdrawals end to end on the paper exchange: request, 2FA approvals, refusals, the ledger."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml

from ccxtkit.auth import totp
from ccxtkit.errors import AuthorizationError, KillSwitchActiveError, UsageError
from ccxtkit.exchanges.factory import open_exchange
from ccxtkit.ledger.store import open_ledger
from ccxtkit.risk import killswitch
from ccxtkit.withdrawals import allowlist, recover, service
from ccxtkit.workspace import Workspace, write_private
from tests.test_killswitch import run_cli

ADDR = "0x1111111111111111111111111111111111111111"
OTHER = "0x2222222222222222222222222222222222222222"
NOW = datetime.now(UTC)  # only for times given to the core functions, never for CLI codes
SETUP = NOW - timedelta(days=3)  # the allowlist entry was added three days ago: cool-off over
POLICY = {
    "auto_approve_under": 100,
    "daily_auto_approve_cap_usd": 150,
    "require_two_approvals_over": 1000,
    "daily_limit_usd": 5000,
    "new_address_delay_hours": 24,
    "request_ttl_hours": 24,
}

Make = Callable[..., Workspace]


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook receiver: its URL and the JSON alerts it received."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def make_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Make:
    """A paper workspace with USDC and BTC, approvers admin/alice/bob, and an allowlisted ADDR."""
    for name in ("VHC_TOTP_SECRET", "VHC_TOTP_ALICE", "VHC_TOTP_BOB", "VHC_CONTROL_KEY"):
        monkeypatch.delenv(name, raising=False)

    def make(alerts: dict[str, Any] | None = None, **withdrawals: Any) -> Workspace:
        cfg = {
            "version": "1.0",
            "exchanges": {
                "paper": {
                    "id": "paper",
                    "secrets": "none",
                    "paper": {"starting_balances": {"USD": 10000, "USDC": 50000, "BTC": 2}},
                }
            },
            "secrets": {"backend": "env"},
            "withdrawals": {**POLICY, **withdrawals},
            "monitoring": {"alerts": alerts or {}},
        }
        write_private(tmp_path / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
        ws = Workspace.locate(str(tmp_path))
        first = SETUP - timedelta(hours=1)
        admin = totp.enrol(ws, "admin", backend="env", now=first)
        for name, value in admin.exports.items():  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
            monkeypatch.setenv(name, value)
        for i, who in enumerate(("alice", "bob"), 1):
            # Each further approver is vouched for with a fresh admin code.
            when = first + timedelta(seconds=30 * i)
            vouch = pyotp.TOTP(admin.secret).at(when)
            enrolled = totp.enrol(
                ws, who, backend="env", now=when, replace_code=vouch, vouched_by="admin"
            )
            monkeypatch.setenv(totp.env_names(who)[0], enrolled.secret)
        allowlist.add_entry(ws, "USDC", ADDR, None, None, code(ws, "admin", SETUP), now=SETUP)
        return ws

    return make


def code(ws: Workspace, approver: str, when: datetime) -> str:
    """The approver's TOTP code at `when`, from the enrolled secret."""
    return pyotp.TOTP(os.environ[totp.env_names(approver)[0]]).at(when)


def events(ws: Workspace, subject: str | None = None) -> list[tuple[str, str | None]]:
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        rows = ledger.query("SELECT kind, subject FROM control_events ORDER BY seq")
    return [(k, s) for k, s in rows if subject is None or s == subject]


def paper_withdrawals(ws: Workspace) -> list[Any]:
    return open_exchange(ws, "paper").fetch_withdrawals(NOW - timedelta(days=10))


def transfers(ws: Workspace) -> list[dict[str, Any]]:
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        return ledger.rows("SELECT * FROM transfers ORDER BY seq")


def test_full_life_is_in_the_ledger_log_and_verifies(
    make_ws: Make, webhook: tuple[str, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_ws(alerts={"webhook": {"url": webhook[0]}})
    rc, out, err = run_cli(
        ws, ["--json", "withdraw", "request", "paper", "usdc", "500", ADDR], capsys
    )
    assert rc == 0, err
    doc = json.loads(out)
    rid = doc["id"]
    assert doc["status"] == "pending" and doc["approvals_needed"] == 1 and doc["usd"] == "500"
    # approval_method manual (the default): no approval request goes out on any channel;
    # `withdraw list` is where approvers find it (email/sms: tests/test_withdraw_notify.py).
    assert "manual" in doc["notice"]
    assert not any(rid in b["body"] for b in webhook[1]), webhook[1]
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "list"], capsys)
    assert rc == 0 and [r["id"] for r in json.loads(out)] == [rid]
    rc, out, err = run_cli(
        ws,
        [
            "withdraw-approve",
            rid,
            "--auth-code",
            code(ws, "alice", datetime.now(UTC)),
            "--approver",
            "alice",
        ],
        capsys,
    )
    assert rc == 0, err
    assert "SENT" in out
    sent = paper_withdrawals(ws)
    assert len(sent) == 1 and sent[0].amount == D("500") and sent[0].address == ADDR
    (row,) = transfers(ws)
    assert (row["kind"], row["source"], row["request_id"]) == ("withdrawal", "withdraw", rid)
    assert row["transfer_id"] == sent[0].id and row["txid"] == sent[0].txid
    assert row["fee"] == 0 and row["amount"] == D("500")
    # Every step of its life is in `vhc ledger log`, and the chain verifies.
    rc, out, _ = run_cli(ws, ["--json", "ledger", "log", "--limit", "100"], capsys)
    life = [e["kind"] for e in reversed(json.loads(out)) if e["subject"] == rid]
    assert life == [
        "withdraw.request",
        "withdraw.approval",
        "withdraw.approved",
        "withdraw.executing",
        "withdraw.executed",
    ]
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "list", "--status", "executed"], capsys)
    assert [r["id"] for r in json.loads(out)] == [rid]
    rc, _, err = run_cli(ws, ["ledger", "verify"], capsys)
    assert rc == 0, err
    # Approving again is refused: it is done.
    rc, _, err = run_cli(ws, ["withdraw-approve", rid, "--auth-code", "123456"], capsys)
    assert rc == 2 and "executed" in err


def test_address_not_recorded_in_the_ledger_is_refused_exit_8(
    make_ws: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_ws(recipient_allowlist=[OTHER])  # hand-edited into the YAML, never recorded
    rc, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "50", OTHER], capsys)
    assert rc == 8
    assert "recipient_allowlist but has no 2FA-approved record" in err
    assert f"vhc withdraw allowlist add USDC {OTHER}" in err
    rc, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "50", "0xnobody"], capsys)
    assert rc == 8 and "not on the withdrawal allowlist" in err
    # Same address, another asset or network: not allowlisted either.
    rc, _, err = run_cli(ws, ["withdraw", "request", "paper", "BTC", "0.001", ADDR], capsys)
    assert rc == 8
    rc, _, _ = run_cli(
        ws, ["withdraw", "request", "paper", "USDC", "5", ADDR, "--network", "SOL"], capsys
    )
    assert rc == 8
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "allowlist", "list"], capsys)
    states = {r["address"]: r["state"] for r in json.loads(out)}
    assert states == {ADDR: "usable", OTHER: "not_recorded"}
    assert [k for k, _ in events(ws) if k == "withdraw.refused"] == ["withdraw.refused"] * 4
    assert paper_withdrawals(ws) == []


def test_new_address_waits_for_its_cool_off(
    make_ws: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_ws()
    bob = code(ws, "bob", datetime.now(UTC))
    rc, _, err = run_cli(
        ws,
        ["withdraw", "allowlist", "add", "usdc", OTHER, "--network", "ERC20", "--auth-code", bob,
         "--approver", "bob"],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    rc, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "50", OTHER], capsys)
    assert rc == 8 and "usable only from" in err
    later = datetime.now(UTC) + timedelta(hours=24, minutes=1)
    outcome = service.request_withdrawal(ws, "paper", "USDC", "500", OTHER, now=later)
    assert outcome.request.status == "pending" and outcome.request.network == "ERC20"
    # A replayed allowlist code is refused, and removing needs a code too.
    rc, _, err = run_cli(
        ws, ["withdraw", "allowlist", "remove", "USDC", OTHER, "--auth-code", bob,
             "--approver", "bob"], capsys,
    )  # fmt: skip
    assert rc == 8 and "already used" in err


def test_two_approvers_replayed_code_and_same_approver_twice(make_ws: Make) -> None:
    ws = make_ws()
    t = NOW + timedelta(minutes=10)
    rid = service.request_withdrawal(ws, "paper", "USDC", "2000", ADDR, now=t).request.id
    first = service.approve(ws, rid, code(ws, "alice", t), "alice", now=t)
    assert not first.approved and "approval 1 of 2" in first.waiting
    assert pending_metric(ws, t) == 1  # one approval of two: still pending
    with pytest.raises(AuthorizationError, match="already approved"):
        service.approve(ws, rid, code(ws, "alice", t + timedelta(seconds=30)), "alice", now=t)
    # bob's code, used once for another request, is refused when replayed.
    other = service.request_withdrawal(ws, "paper", "USDC", "1500", ADDR, now=t).request.id
    bob_code = code(ws, "bob", t)
    assert not service.approve(ws, other, bob_code, "bob", now=t).approved
    with pytest.raises(AuthorizationError, match="already used"):
        service.approve(ws, rid, bob_code, "bob", now=t + timedelta(seconds=5))
    with pytest.raises(AuthorizationError, match="not valid"):
        service.approve(ws, rid, "000000", "admin", now=t)
    assert paper_withdrawals(ws) == []
    done = service.approve(ws, rid, code(ws, "admin", t + timedelta(seconds=30)), "admin", now=t)
    assert done.approved and done.request.status == "executed"
    assert done.request.approvers == ["alice", "admin"]
    assert len(paper_withdrawals(ws)) == 1
    assert pending_metric(ws, t) == 1  # the metrics exporter reads the same events


def pending_metric(ws: Workspace, now: datetime) -> int:
    from ccxtkit.metrics.facts import read_facts

    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        facts = read_facts(ledger, now, now - timedelta(hours=1), timedelta(hours=24))
    return facts.withdrawals_pending


def test_expired_request_is_refused_exit_8_and_recorded(
    make_ws: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_ws()
    old = NOW - timedelta(hours=24, seconds=1)
    rid = service.request_withdrawal(ws, "paper", "USDC", "500", ADDR, now=old).request.id
    rc, _, err = run_cli(ws, ["withdraw-approve", rid, "--auth-code", code(ws, "alice", datetime.now(UTC)),
                              "--approver", "alice"], capsys)  # fmt: skip
    assert rc == 8 and "expired" in err and "file a new request" in err
    assert ("withdraw.expired", rid) in events(ws, rid)
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "list", "--status", "expired"], capsys)
    assert [r["id"] for r in json.loads(out)] == [rid]
    # The code was not spent on the refusal: it still approves something else.
    fresh = service.request_withdrawal(ws, "paper", "USDC", "500", ADDR).request.id
    assert service.approve(ws, fresh, code(ws, "alice", datetime.now(UTC)), "alice").approved
    assert len(paper_withdrawals(ws)) == 1


def test_kill_switch_blocks_an_approved_request_until_an_approver_sends_it(
    make_ws: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_ws()
    killswitch.activate(ws, "test", timeout=5)
    # Auto-approved (50 < 100, within the auto cap) but the kill switch stops the send: exit 4.
    rc, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "50", ADDR], capsys)
    assert rc == 4 and "not sent" in err
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "list", "--status", "approved"], capsys)
    (auto,) = json.loads(out)
    assert auto["auto"] is True
    # A manual approval is refused before its code is used.
    rid = service.request_withdrawal(ws, "paper", "USDC", "500", ADDR).request.id
    alice = code(ws, "alice", datetime.now(UTC))
    with pytest.raises(KillSwitchActiveError):
        service.approve(ws, rid, alice, "alice")
    rc, _, _ = run_cli(ws, ["withdraw", "recover"], capsys)
    assert rc == 1  # the approved one still needs a person
    assert paper_withdrawals(ws) == []
    killswitch.deactivate(ws, code(ws, "admin", datetime.now(UTC)), "admin")
    # recover never sends: it names the command that does, and exits 1.
    rc, out, err = run_cli(ws, ["withdraw", "recover"], capsys)
    assert rc == 1 and auto["id"] in out and "approved -> approved" in out
    assert "withdraw-approve" in out
    assert paper_withdrawals(ws) == []
    # An approver's code, verified by the process that sends, sends the auto-approved one.
    rc, out, err = run_cli(
        ws,
        ["withdraw-approve", auto["id"], "--auth-code", code(ws, "bob", datetime.now(UTC)),
         "--approver", "bob"],
        capsys,
    )  # fmt: skip
    assert rc == 0 and "SENT" in out, err
    assert service.approve(ws, rid, alice, "alice").request.status == "executed"
    assert sorted(w.amount for w in paper_withdrawals(ws)) == [D("50"), D("500")]
    assert len(transfers(ws)) == 2


def test_policy_caps_refuse_with_exit_3_and_auto_cap_falls_back_to_approval(
    make_ws: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_ws()
    rc, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "5000.01", ADDR], capsys)
    assert rc == 3 and "limit 5000 USD" in err and "headroom 5000 USD" in err
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "request", "paper", "USDC", "99", ADDR], capsys)
    assert rc == 0 and json.loads(out)["status"] == "executed"
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "request", "paper", "USDC", "60", ADDR], capsys)
    doc = json.loads(out)
    assert doc["status"] == "pending" and "daily_auto_approve_cap_usd" in doc["policy"]
    rc, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "4901.01", ADDR], capsys)
    assert rc == 3 and "headroom 4901 USD" in err
    assert len(paper_withdrawals(ws)) == 1


def test_time_lock_veto_and_single_approver_after_the_lock(make_ws: Make) -> None:
    ws = make_ws(time_lock_hours=12)
    t0 = NOW + timedelta(minutes=5)
    vetoed = service.request_withdrawal(ws, "paper", "USDC", "2000", ADDR, now=t0).request
    assert vetoed.time_lock_until == t0 + timedelta(hours=12)
    service.reject(ws, vetoed.id, "not ours", now=t0 + timedelta(hours=1))
    again = service.reject(ws, vetoed.id, "twice", now=t0 + timedelta(hours=1))
    assert again.status == "rejected" and again.reason == "not ours"  # idempotent: the first
    with pytest.raises(UsageError, match="rejected"):
        service.approve(ws, vetoed.id, code(ws, "admin", t0), "admin", now=t0)
    rid = service.request_withdrawal(ws, "paper", "USDC", "2000", ADDR, now=t0).request.id
    t1 = t0 + timedelta(hours=1)
    one = service.approve(ws, rid, code(ws, "admin", t1), "admin", now=t1)
    assert not one.approved and "time lock" in one.waiting
    assert recover.recover(ws, now=t0 + timedelta(hours=11)) == []
    with pytest.raises(AuthorizationError, match="already approved"):  # lock still running
        service.approve(ws, rid, code(ws, "admin", t1 + timedelta(hours=9)), "admin", now=t1)
    assert paper_withdrawals(ws) == []
    # After the lock recover says so, and sends nothing: the approver's code sends it.
    t2 = t0 + timedelta(hours=12)
    (told,) = recover.recover(ws, now=t2)
    assert (told.before, told.after, told.needs_attention) == ("pending", "pending", True)
    assert paper_withdrawals(ws) == []
    done = service.approve(ws, rid, code(ws, "admin", t2), "admin", now=t2)
    assert done.approved and done.request.status == "executed"
    assert done.request.approvers == ["admin"]
    assert [w.amount for w in paper_withdrawals(ws)] == [D("2000")]

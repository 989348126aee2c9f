"""Withdrawal controls attacked as issue 12 did: forged approvals, concurrent auto-approvals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml

from ccxtkit.auth import totp
from ccxtkit.errors import WithdrawalOutcomeUnknown
from ccxtkit.exchanges.factory import open_exchange
from ccxtkit.ledger.store import open_ledger
from ccxtkit.withdrawals import allowlist, service
from ccxtkit.workspace import Workspace, write_private
from tests.test_killswitch import run_cli

ADDR = "0x1111111111111111111111111111111111111111"
#: Six destinations, so the "outcome unknown at this address" rule does not serialise the race.
SIX = [f"0x{i}{i}{'0' * 38}" for i in range(1, 7)]
SETUP = datetime.now(UTC) - timedelta(days=3)

Make = Callable[..., Workspace]


@pytest.fixture
def make_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Make:
    """A paper workspace (USDC), approvers admin and alice (env backend), ADDR allowlisted."""
    for name in ("VHC_TOTP_SECRET", "VHC_TOTP_ADMIN", "VHC_TOTP_ALICE", "VHC_CONTROL_KEY"):
        monkeypatch.delenv(name, raising=False)

    def make(
        latency_ms: int = 0, addresses: tuple[str, ...] = (ADDR,), **withdrawals: Any
    ) -> Workspace:
        paper = {"starting_balances": {"USD": 10000, "USDC": 50000}, "latency_ms": latency_ms}
        cfg = {
            "version": "1.0",
            "exchanges": {"paper": {"id": "paper", "secrets": "none", "paper": paper}},
            "secrets": {"backend": "env"},
            "withdrawals": {"new_address_delay_hours": 24, **withdrawals},
        }
        write_private(tmp_path / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
        ws = Workspace.locate(str(tmp_path))
        first = SETUP - timedelta(hours=1)
        admin = totp.enrol(ws, "admin", backend="env", now=first)
        for name, value in admin.exports.items():  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
            monkeypatch.setenv(name, value)
        assert admin.secret is not None
        when = first + timedelta(seconds=30)
        vouch = pyotp.TOTP(admin.secret).at(when)
        alice = totp.enrol(
            ws, "alice", backend="env", now=when, replace_code=vouch, vouched_by="admin"
        )
        for name, value in alice.exports.items():
            monkeypatch.setenv(name, value)
        for i, address in enumerate(addresses):
            at = SETUP + timedelta(seconds=30 * i)
            allowlist.add_entry(ws, "USDC", address, None, None, code(ws, "admin", at), now=at)
        return ws

    return make


def code(ws: Workspace, approver: str, when: datetime) -> str:
    """The approver's TOTP code at `when`."""
    return pyotp.TOTP(os.environ[totp.env_names(approver)[0]]).at(when)


def paper_sent(ws: Workspace) -> list[D]:
    """The amounts the paper exchange itself has sent (its own state, not the ledger)."""
    client = open_exchange(ws, "paper")
    try:
        return [t.amount for t in client.fetch_withdrawals(SETUP - timedelta(days=1))]
    finally:
        client.close()


def kinds(ws: Workspace, subject: str) -> list[str]:
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        rows = ledger.query(
            "SELECT kind FROM control_events WHERE subject = ? ORDER BY seq", [subject]
        )
    return [str(r[0]) for r in rows]


# -- finding 8: auto-approval races ---------------------------------------------------------


def test_six_concurrent_auto_approved_requests_never_exceed_the_daily_auto_cap(
    make_ws: Make,
) -> None:
    ws = make_ws(
        latency_ms=150,
        addresses=tuple(SIX),
        auto_approve_under=500,
        daily_auto_approve_cap_usd=1500,
    )
    env = {**os.environ, "VHC_HOME": str(ws.home)}
    cmd = [sys.executable, "-m", "ccxtkit", "--json", "withdraw", "request"]
    procs = [
        subprocess.Popen(  # noqa: S603 - our own CLI
            [*cmd, "paper", "USDC", str(amount), address],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for amount, address in zip((400, 450, 300, 499, 420, 303), SIX, strict=True)
        # 2372 USD in all, each under auto_approve_under
    ]
    docs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        docs.append(json.loads(out))
    sent = paper_sent(ws)
    assert sum(sent) <= D("1500"), sent
    auto = [r for r in service.list_requests(ws, "all") if r.auto]
    assert sum(r.amount for r in auto) <= D("1500"), auto  # approved, not only sent
    executed = [D(d["amount"]) for d in docs if d["status"] == "executed"]
    assert sorted(executed) == sorted(sent) and sent  # at least one went, all recorded
    # Those not auto-approved wait for a person, with the cap named.
    waiting = [d for d in docs if d["status"] != "executed"]
    assert waiting and all(d["status"] == "pending" for d in waiting)
    assert all("daily_auto_approve_cap_usd" in d["policy"] for d in waiting)


# -- finding 4: recover never sends ---------------------------------------------------------


def forge(ws: Workspace, kind: str, subject: str, details: dict[str, Any]) -> None:
    """Append a row as a B-attacker with the ledger file would: through the store, chain valid."""
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        ledger.record_event(kind, details, actor="mallory", subject=subject)


def test_a_forged_approval_in_the_chain_never_makes_recover_send(
    make_ws: Make, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_ws(require_two_approvals_over=1000)
    one = service.request_withdrawal(ws, "paper", "USDC", "500", ADDR).request.id
    two = service.request_withdrawal(ws, "paper", "USDC", "2000", ADDR).request.id
    forge(ws, "withdraw.approval", one, {"approver": "alice"})
    forge(ws, "withdraw.approved", one, {"approvers": ["alice"], "via": "approvers"})
    forge(ws, "withdraw.approved", two, {"auto": True, "via": "auto"})
    rc, _, err = run_cli(ws, ["ledger", "verify"], capsys)
    assert rc == 0, err  # the forgery is a valid chain: only the send path can stop it
    rc, out, err = run_cli(ws, ["--json", "withdraw", "recover"], capsys)
    assert rc == 1, err
    doc = json.loads(out)  # exit 1: the results, with the findings as the error object
    assert doc["error"]["exit_code"] == 1
    assert {(r["request_id"], r["after"]) for r in doc["result"]} == {
        (one, "approved"),
        (two, "approved"),
    }
    assert paper_sent(ws) == []  # the exchange itself saw no withdrawal
    assert "withdraw.executing" not in kinds(ws, one) + kinds(ws, two)
    # A real code adds one real approval; the forged rows do not make up the second one.
    rc, out, err = run_cli(
        ws, ["withdraw-approve", two, "--auth-code", code(ws, "admin", datetime.now(UTC))], capsys
    )
    assert rc == 0, err
    assert "approval 1 of 2" in out and paper_sent(ws) == []


def test_recover_resolves_a_lost_reply_and_still_sends_nothing_new(
    tmp_path: Path, kraken_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ccxtkit.withdrawals import recover

    btc = "bc1qcoldwalletaddressforvhctests0000000000"
    monkeypatch.delenv("VHC_TOTP_SECRET", raising=False)
    monkeypatch.delenv("VHC_CONTROL_KEY", raising=False)
    cfg = {
        "version": "1.0",
        "exchanges": {
            "kraken": {
                "secrets": "env",
                "rate_limit": 1000,
                "ccxt": {**kraken_server.ccxt_config(), "timeout": 3000},
            }
        },
        "secrets": {"backend": "env"},
        "withdrawals": {"daily_limit_usd": 20000},
    }
    write_private(tmp_path / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    creds = kraken_server.credentials()
    monkeypatch.setenv("KRAKEN_API_KEY", creds["apiKey"])
    monkeypatch.setenv("KRAKEN_API_SECRET", creds["secret"])
    kraken_server.set_balance("BTC", "1")
    kraken_server.register_withdrawal_key("BTC", "cold", btc)
    ws = Workspace.locate(str(tmp_path))
    enrolled = totp.enrol(ws, "admin", backend="env", now=SETUP)
    for name, value in enrolled.exports.items():  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
        monkeypatch.setenv(name, value)
    secret = enrolled.secret
    assert secret is not None
    allowlist.add_entry(ws, "BTC", btc, None, "cold", pyotp.TOTP(secret).at(SETUP), now=SETUP)
    forged = service.request_withdrawal(ws, "kraken", "BTC", "0.3", btc)
    lost = service.request_withdrawal(ws, "kraken", "BTC", "0.2", btc).request.id
    kraken_server.drop_reply_next("Withdraw")
    kraken_server.fail_next("WithdrawStatus", times=3)
    with pytest.raises(WithdrawalOutcomeUnknown, match="will not be sent again"):
        service.approve(ws, lost, pyotp.TOTP(secret).now(), "admin")
    forge(ws, "withdraw.approved", forged.request.id, {"approvers": ["admin"], "via": "approvers"})
    done = {r.request_id: r for r in recover.recover(ws)}
    assert (done[lost].before, done[lost].after) == ("executing", "executed")
    assert done[forged.request.id].after == "approved" and done[forged.request.id].needs_attention
    # One Withdraw call ever reached the exchange: the genuine one, once.
    (sent,) = kraken_server.requests_to("Withdraw")
    assert sent.params["amount"] == "0.2"
    assert kraken_server.balance("BTC") == D("0.8")


def test_two_concurrent_approvals_never_exceed_the_daily_limit(make_ws: Make) -> None:
    ws = make_ws(latency_ms=150, addresses=tuple(SIX[:2]), daily_limit_usd=1000)
    rids = [
        service.request_withdrawal(ws, "paper", "USDC", "600", address).request.id
        for address in SIX[:2]
    ]
    env = {**os.environ, "VHC_HOME": str(ws.home)}
    now = datetime.now(UTC)
    procs = [
        subprocess.Popen(  # noqa: S603 - our own CLI
            [
                sys.executable,
                "-m",
                "ccxtkit",
                "withdraw-approve",
                rid,
                "--auth-code",
                code(ws, who, now),
                "--approver",
                who,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rid, who in zip(rids, ("admin", "alice"), strict=True)
    ]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 3], results
    assert any("daily_limit_usd" in err for rc, err in results if rc == 3), results
    assert paper_sent(ws) == [D("600")]


def test_the_claim_refuses_an_authority_this_process_does_not_hold(make_ws: Make) -> None:
    from ccxtkit.errors import AuthorizationError
    from ccxtkit.withdrawals.authority import Authority
    from ccxtkit.withdrawals.execute import execute

    ws = make_ws(auto_approve_under=100)
    rid = service.request_withdrawal(ws, "paper", "USDC", "500", ADDR).request.id
    forge(ws, "withdraw.approved", rid, {"approvers": ["alice"], "via": "approvers"})
    client = open_exchange(ws, "paper")
    try:
        with pytest.raises(AuthorizationError, match="not auto-approved"):
            execute(ws, client, rid, Authority.auto(rid))  # it was never auto-approved
        with pytest.raises(AuthorizationError, match="lacks its approvals"):
            execute(ws, client, rid, Authority(rid, "alice"))  # no approval row of alice's
        with pytest.raises(AuthorizationError, match="not approved by this command"):
            execute(ws, client, rid, Authority.auto("wr-someother"))
    finally:
        client.close()
    assert paper_sent(ws) == []
    assert "withdraw.executing" not in kinds(ws, rid)


# -- the pure rules behind the claim ----------------------------------------------------------


def test_rules_count_later_stamped_sends_and_never_need_fewer_approvals() -> None:
    from ccxtkit.withdrawals.policy import (
        Policy,
        Sent,
        auto_refusal,
        required_approvals,
        window_total,
    )

    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    h = timedelta(hours=1)
    # A send stamped after this process read the clock (another process, later) still counts.
    later = [Sent("USDC", D("400"), t0 + timedelta(seconds=2), auto=True)]
    assert window_total(later, t0, auto_only=True) == D("400")
    policy = Policy(auto_approve_under=D("500"), auto_cap_usd=D("700"), two_approvals_over=D("1000"),
                    time_lock=12 * h)  # fmt: skip
    assert auto_refusal(policy, D("300"), later, t0) == ""
    assert "headroom 300 USD" in auto_refusal(policy, D("301"), later, t0)
    assert "not under auto_approve_under" in auto_refusal(policy, D("500"), [], t0)
    # A row that asks for less than the policy is raised to the policy; the later lock wins.
    assert required_approvals(policy, 1, None, t0, D("1500")) == (2, t0 + 12 * h)
    assert required_approvals(policy, 2, t0 + h, t0, D("1500")) == (2, t0 + 12 * h)
    no_lock = Policy(two_approvals_over=D("1000"))
    assert required_approvals(no_lock, 2, t0 + h, t0, D("1500")) == (2, None)
    assert required_approvals(no_lock, 1, None, t0, D("999")) == (1, None)

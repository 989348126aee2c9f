"""Workspaces on the exchange look-alikes, shared by the tests that trade through them.

An account pointing at a local server (tests/kraken_server.py, binanceus_server.py,
coinbase_server.py: keys from the `env` backend; tests/kite_server.py: keys in the keyring), a
workspace with an approver enrolled and an address allowlisted for withdrawals, a Kite
workspace logged in for the day, and the small readers the tests ask the ledger with. The
servers themselves are started by fixtures (tests/conftest.py) or by the test module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml

from ccxtkit.workspace import Workspace, init_workspace, write_private

#: When the withdrawal workspaces enrol their approver and allowlist their address.
SETUP = datetime.now(UTC) - timedelta(days=2)
#: The allowlisted address of the withdrawal workspaces.
ADDR = "bc1qcoldwalletaddressforvhctests0000000000"


# ------------------------------------------------------------- ccxt accounts (env backend)
def add_exchange_account(
    name: str, home: Path, server: Any, monkeypatch: pytest.MonkeyPatch, **extra: object
) -> None:
    """Point account `name` (also its ccxt id) at the local server, its keys from the env
    backend (`<NAME>_API_KEY` / `<NAME>_API_SECRET`)."""
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["exchanges"][name] = {
        "secrets": "env",
        "rate_limit": 1000,
        "ccxt": {**server.ccxt_config(), "timeout": 3000},
        **extra,
    }
    write_private(path, yaml.safe_dump(data))
    creds = server.credentials()
    monkeypatch.setenv(f"{name.upper()}_API_KEY", creds["apiKey"])
    monkeypatch.setenv(f"{name.upper()}_API_SECRET", creds["secret"])


#: (home, server, monkeypatch, **extra): the account of that name on its look-alike.
AddAccount = Callable[..., None]
add_kraken_account: AddAccount = partial(add_exchange_account, "kraken")
add_binanceus_account: AddAccount = partial(add_exchange_account, "binanceus")
add_coinbase_account: AddAccount = partial(add_exchange_account, "coinbase")


def exchange_home(
    tmp_path: Path, add_account: AddAccount, server: Any, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh workspace (`vhc init`: the paper account) plus the look-alike's account."""
    home = tmp_path / "ws"
    init_workspace(home)
    add_account(home, server, monkeypatch)
    return home


def withdraw_workspace(
    home: Path,
    add_account: AddAccount,
    server: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    network: str | None = None,
    label: str | None = None,
) -> Workspace:
    """The look-alike's account alone, an approver `admin` enrolled (env backend) and ADDR
    allowlisted for BTC with this network and label, both at SETUP."""
    from ccxtkit.auth import totp
    from ccxtkit.withdrawals import allowlist

    monkeypatch.delenv("VHC_TOTP_SECRET", raising=False)
    monkeypatch.delenv("VHC_CONTROL_KEY", raising=False)
    cfg = {
        "version": "1.0",
        "exchanges": {},
        "secrets": {"backend": "env"},
        "withdrawals": {"daily_limit_usd": 20000, "require_two_approvals_over": 10000},
    }
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    add_account(home, server, monkeypatch)
    workspace = Workspace.locate(str(home))
    enrolled = totp.enrol(workspace, "admin", backend="env", now=SETUP)
    for name, value in enrolled.exports.items():  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
        monkeypatch.setenv(name, value)
    assert enrolled.secret is not None
    code = pyotp.TOTP(enrolled.secret).at(SETUP)
    allowlist.add_entry(workspace, "BTC", ADDR, network, label, code, now=SETUP)
    return workspace


def now_code() -> str:
    """The admin approver's code right now (a withdrawal workspace's env backend)."""
    return pyotp.TOTP(os.environ["VHC_TOTP_SECRET"]).now()


# ---------------------------------------------------------------- running and reading
def vhc(capsys: pytest.CaptureFixture[str], ws: Workspace, *args: str) -> tuple[int, str, str]:
    """`vhc --home WS ARGS` in-process: exit code, stdout, stderr."""
    from ccxtkit.cli.app import main

    capsys.readouterr()
    try:
        main(["--home", str(ws.home), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def ledger(ws: Workspace, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
    """Rows of a query on the workspace's ledger."""
    with ws.open_ledger() as led:
        return [tuple(r) for r in led.query(sql, params or [])]


def order_events(home: Path) -> list[str]:
    """Every order event in the ledger, in order (read-only: no vhc process may hold it)."""
    import duckdb

    con = duckdb.connect(str(home / "ledger" / "vhc.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT event FROM order_events ORDER BY seq").fetchall()
        return [str(r[0]) for r in rows]
    finally:
        con.close()


def latest_events(ws: Workspace) -> dict[str, str]:
    """Each client order id's latest event."""
    rows = ledger(ws, "SELECT client_order_id, arg_max(event, seq) FROM order_events GROUP BY 1")
    return {str(c): str(e) for c, e in rows}


# ----------------------------------------------------------------------------- Kite
def kite_workspace(
    home: Path,
    server: Any,
    *,
    extra_accounts: dict[str, Any] | None = None,
    kite: dict[str, Any] | None = None,
    risk: dict[str, Any] | None = None,
) -> Workspace:
    """A workspace with Kite account `zerodha` on `server` (keys in the keyring; the tests'
    `file_keyring` fixture must be active) and returns it."""
    from ccxtkit.secrets import Credentials, set_credentials

    cfg = {
        "version": "1.0",
        "exchanges": {
            "zerodha": {
                "id": "kite",
                "secrets": "keyring",
                "kite": {"root": server.url, "timeout_seconds": 3, **(kite or {})},
            },
            **(extra_accounts or {}),
        },
        "secrets": {"backend": "keyring"},
        "risk": {"max_order_value": 5000, "max_position_size": 20000, **(risk or {})},
    }
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    ws = Workspace.locate(str(home))
    set_credentials(ws, "zerodha", Credentials(server.api_key, server.api_secret))
    return ws


def record_usd_inr(ws: Workspace, inr_per_usd: Decimal | str, at: datetime | None = None) -> None:
    """Record a USD/INR rate in the ledger's prices table, as `prices fetch` would."""
    with ws.open_ledger() as led:
        led.append(
            "prices",
            [{"timestamp": at or datetime.now(UTC), "asset": "USD", "quote": "INR",
              "price": Decimal(inr_per_usd), "source": "test"}],
        )  # fmt: skip


def kite_login(capsys: pytest.CaptureFixture[str], ws: Workspace, server: Any) -> None:
    """`vhc kite login` with a request token the server just issued."""
    code, out, err = vhc(capsys, ws, "kite", "login", server.issue_request_token())
    assert code == 0, out + err


def kite_ready(
    home: Path, server: Any, capsys: pytest.CaptureFixture[str], **options: Any
) -> Workspace:
    """`kite_workspace`, a USD/INR rate of 83.20 recorded now, and the day's session."""
    ws = kite_workspace(home, server, **options)
    record_usd_inr(ws, "83.20")
    kite_login(capsys, ws, server)
    return ws

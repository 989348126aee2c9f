"""Property: random buys, sells, limit orders, cancels and price moves from two concurrent vhc
processes never leave a position, today's volume or the open-order count over its limit at
any moment the ledger records an order intent.

Each intent is replayed from the ledger's rows up to its seq, summed here with SQL (not with
vhc's exposure code): holdings from the latest snapshot plus the trades after it, plus what
every non-terminal order (this intent included) would add, valued at the price the trade
path recorded in the same visit. If two processes had passed on the same headroom, or an
open order had not counted, the replay would show the limit exceeded. (A price rise can carry
a position over its cap by itself: then only orders that do not grow it may be recorded.)
Seeded: a failure reproduces.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import duckdb
import pytest

from ccxtkit.config import RiskConfig
from tests.test_risk_orders import workspace

RISK = {
    "max_order_value": "15000",
    "max_daily_volume": "150000",
    "max_position_size": "75000",
    "max_open_orders": 3,
    "max_drawdown_pct": "0",
    "circuit_breaker": {"enabled": False},
}
ACTIONS = 12

_DRIVER = r"""
import json, random, sys
from decimal import Decimal
from ccxtkit.cli.app import main
from ccxtkit.exchanges.factory import open_exchange
from ccxtkit.workspace import Workspace

home, seed, actions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
ws = Workspace.locate(home)


def vhc(*args):
    try:
        main(["--home", home, *args])
    except SystemExit:
        pass


for _ in range(actions):
    roll = rng.random()
    amount = str(Decimal(rng.randint(5, 22)) / 100)
    if roll < 0.1:
        price = Decimal(rng.randint(57000, 63000))
        open_exchange(ws, "paper").set_price("BTC/USD", price)
    elif roll < 0.3:
        vhc("trade", "buy", "BTC/USD", amount)
    elif roll < 0.7:
        price = str(rng.randint(55000, 59500))
        vhc("trade", "buy", "BTC/USD", amount, "--type", "limit", "--price", price)
    elif roll < 0.85:
        vhc("trade", "sell", "BTC/USD", str(Decimal(rng.randint(1, 5)) / 100))
    else:
        import io, contextlib
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            vhc("--json", "trade", "orders")
        try:
            ids = [o["client_order_id"] for o in json.loads(out.getvalue() or "[]")]
        except ValueError:
            ids = []
        if ids:
            vhc("trade", "cancel", rng.choice(ids))
"""


_TERMINAL = "('filled', 'canceled', 'rejected', 'failed', 'expired', 'not_found')"


def _at(con: duckdb.DuckDBPyConnection, seq: int, price: D) -> dict[str, D]:
    """The ledger's own record up to `seq`, summed independently of vhc's exposure code."""
    (snap_ts, snap_btc) = con.execute(
        "SELECT timestamp, sum(total) FILTER (asset = 'BTC') FROM balance_snapshots "
        "WHERE seq <= ? GROUP BY timestamp ORDER BY timestamp DESC LIMIT 1",
        [seq],
    ).fetchall()[0]
    (traded,) = con.execute(
        "SELECT coalesce(sum(CASE WHEN side = 'buy' THEN amount ELSE -amount END), 0) "
        "FROM trades WHERE seq <= ? AND timestamp > ?",
        [seq, snap_ts],
    ).fetchall()[0]
    pending = con.execute(
        "SELECT o.side, o.type, o.amount - coalesce(e.filled, 0), o.price FROM orders o "
        "LEFT JOIN (SELECT client_order_id, arg_max(event, seq) AS event, "
        "           arg_max(filled, CASE WHEN filled IS NULL THEN 0 ELSE seq END) AS filled "
        "           FROM order_events WHERE seq <= ? GROUP BY client_order_id) e "
        f"USING (client_order_id) WHERE o.seq <= ? AND (e.event IS NULL OR e.event NOT IN {_TERMINAL})",
        [seq, seq],
    ).fetchall()
    (volume,) = con.execute(
        "SELECT coalesce(sum(cost), 0) FROM trades WHERE seq <= ? AND timestamp >= current_date",
        [seq],
    ).fetchall()[0]
    buying = sum((D(r) for side, _, r, _ in pending if side == "buy"), D(0))
    pending_volume = sum(
        (
            D(r) * (D(px) if kind == "limit" and px is not None else price)
            for _, kind, r, px in pending
        ),
        D(0),
    )
    return {
        "position": (D(snap_btc or 0) + D(traded) + buying) * price,
        "volume": D(volume) + pending_volume,
        "open_orders": D(len(pending)),
    }


@pytest.mark.parametrize("seed", [7])
def test_two_random_traders_never_exceed_a_limit(tmp_path: Path, seed: int) -> None:
    home = workspace(
        tmp_path,
        {"USD": "200000", "BTC": "1"},
        risk=RISK,
        paper={"latency_ms": "40"},
        prices={"BTC/USD": "60000"},
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DRIVER, str(home), str(seed * 10 + i), str(ACTIONS)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    ledger_path = home / "ledger" / "vhc.duckdb"
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        intents = con.execute(
            "SELECT seq, side FROM orders WHERE source = 'trade' ORDER BY seq"
        ).fetchall()
        price_rows = con.execute(
            "SELECT seq, price FROM prices WHERE asset = 'BTC' ORDER BY seq"
        ).fetchall()
        refused = con.execute(
            "SELECT count(*) FROM control_events WHERE kind = 'order.refused'"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert len(intents) >= 5 and refused >= 1, (intents, refused)  # the limits were exercised
    risk = RiskConfig.model_validate(RISK)
    con = duckdb.connect(str(ledger_path), read_only=True)
    try:
        for seq, side in intents:
            # The price in force at that moment (the opening price for an intent recorded
            # before any price row: the two traders start at once).
            price = D(next((p for s, p in reversed(price_rows) if s < seq), price_rows[0][1]))
            seen = _at(con, seq, price)
            moment = f"after the intent at seq {seq} (BTC ${price}): {seen}"
            # A price rise may carry a position over its cap; no buy may then add to it.
            if side == "buy":
                assert seen["position"] <= risk.max_position_size, moment
            assert seen["volume"] <= risk.max_daily_volume, moment
            assert seen["open_orders"] <= risk.max_open_orders, moment
    finally:
        con.close()

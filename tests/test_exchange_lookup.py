"""Per-exchange details the test servers do not cover: which create_order param carries our
client order id (ccxt's coinbase drops `clientOrderId`), and the lookup table itself."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest

from ccxtkit.errors import OrderLookupUnproven, OrderOutcomeUnknown
from ccxtkit.exchanges.ccxt_convert import to_market
from ccxtkit.exchanges.gateway import CcxtGateway
from ccxtkit.exchanges.lookup import strategy_for

COINBASE_MARKET = {
    "id": "BTC-USD", "symbol": "BTC/USD", "base": "BTC", "quote": "USD", "baseId": "BTC",
    "quoteId": "USD", "spot": True, "type": "spot", "active": True,
    "precision": {"amount": 1e-8, "price": 0.01},
    "limits": {"amount": {"min": 1e-8}, "price": {}, "cost": {}}, "info": {},
}  # fmt: skip


def test_coinbase_receives_our_client_order_id() -> None:
    """Unmodified ccxt.coinbase with its HTTP layer replaced by a recorder: the body that would
    reach Advanced Trade carries our id, not ccxt's own `ccxt-<uuid>`."""
    import ccxt

    ex = ccxt.coinbase({"apiKey": "k", "secret": "s"})
    ex.set_markets([COINBASE_MARKET])
    bodies: list[dict[str, Any]] = []

    def transport(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        bodies.append(json.loads(body))
        raise ccxt.RequestTimeout("no answer")  # a lost reply

    ex.fetch = transport
    gw = CcxtGateway("coinbase", ex)
    gw._markets = {"BTC/USD": to_market(COINBASE_MARKET, True)}
    gw._markets_at = time.time()
    with pytest.raises(OrderOutcomeUnknown):
        gw.create_order("BTC/USD", "buy", "limit", Decimal("0.01"), Decimal("50000"), "vhc-cid-1")
    assert [b["client_order_id"] for b in bodies] == ["vhc-cid-1"]


def test_lookup_table() -> None:
    assert strategy_for("kraken").proven and strategy_for("binanceus").proven
    assert strategy_for("binance").kind == "orig_client_order_id"
    assert strategy_for("coinbase").proven and strategy_for("coinbase").kind == "coinbase_walk"
    for unproven in ("gemini", "bitfinex", "anything-else"):
        assert not strategy_for(unproven).proven
    assert issubclass(OrderLookupUnproven, OrderOutcomeUnknown)  # handled as "unknown"
    assert OrderLookupUnproven("x").exit_code == 5


def test_binanceus_sandbox_is_refused_not_sent_to_binance_com() -> None:
    from ccxtkit.config import ExchangeConfig
    from ccxtkit.errors import ConfigError
    from ccxtkit.exchanges.gateway import build_ccxt

    with pytest.raises(ConfigError, match="no sandbox of its own"):
        build_ccxt("binanceus", ExchangeConfig(sandbox=True), None)

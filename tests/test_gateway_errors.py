"""Each ccxt exception, injected into a real ccxt.kraken's HTTP layer, for each gateway call.

No network: the kraken instance answers market metadata from canned replies, then its
low-level `fetch` (ccxt's one HTTP function) raises the exception under test. We check the
vhc error it becomes and how many times the gateway sent the request.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from ccxtkit.config import ExchangeConfig
from ccxtkit.errors import (
    ConfigError,
    ExchangeAuthError,
    ExchangeError,
    OrderOutcomeUnknown,
    OutcomeUnknown,
    WithdrawalOutcomeUnknown,
)
from ccxtkit.exchanges.errors_map import ExchangeOrderNotFound, RetryPolicy
from ccxtkit.exchanges.gateway import CcxtGateway, build_ccxt, ccxt_config
from ccxtkit.logs import redact

ASSETS = {
    "XXBT": {"aclass": "currency", "altname": "XBT", "decimals": 10, "display_decimals": 5,
             "status": "enabled"},
    "ZUSD": {"aclass": "currency", "altname": "USD", "decimals": 4, "display_decimals": 2,
             "status": "enabled"},
}  # fmt: skip
PAIRS = {
    "XXBTZUSD": {
        "altname": "XBTUSD", "wsname": "XBT/USD", "aclass_base": "currency", "base": "XXBT",
        "aclass_quote": "currency", "quote": "ZUSD", "lot": "unit", "cost_decimals": 5,
        "pair_decimals": 1, "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [],
        "leverage_sell": [], "fees": [[0, 0.26]], "fees_maker": [[0, 0.16]],
        "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
        "ordermin": "0.0001", "costmin": "0.5", "tick_size": "0.1", "status": "online",
    }
}  # fmt: skip
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
SECRET = base64.b64encode(b"s" * 64).decode()


class Key:
    api_key = "test-api-key-123"
    api_secret = SECRET
    passphrase = None


class Harness:
    """A gateway over a real ccxt.kraken whose HTTP layer we control."""

    def __init__(self, preload: bool = True) -> None:
        cfg = ExchangeConfig(id="kraken", rate_limit=Decimal(1000))
        self.exchange = build_ccxt("kraken", cfg, Key())
        self.sleeps: list[float] = []
        self.gateway = CcxtGateway(
            "kraken", self.exchange, RetryPolicy(tries=3, base_delay=0.2, sleep=self.sleeps.append)
        )
        self.failing: BaseException | None = None
        self.attempts = 0
        self.exchange.fetch = self.fetch
        if preload:
            self.gateway.load_markets()

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        if self.failing is not None:
            self.attempts += 1
            raise self.failing
        if url.endswith("/Assets"):
            return {"error": [], "result": ASSETS}
        if url.endswith("/AssetPairs"):
            return {"error": [], "result": PAIRS}
        raise AssertionError(f"unexpected request {url}")


CALLS: dict[str, Callable[[CcxtGateway], Any]] = {
    "load_markets": lambda g: g.load_markets(),
    "fetch_ticker": lambda g: g.fetch_ticker("BTC/USD"),
    "fetch_balance": lambda g: g.fetch_balance(),
    "fetch_order": lambda g: g.fetch_order("OABC-1", "BTC/USD"),
    "fetch_open_orders": lambda g: g.fetch_open_orders(),
    "find_order_by_client_id": lambda g: g.find_order_by_client_id("cid-1", "BTC/USD"),
    "fetch_my_trades": lambda g: g.fetch_my_trades(SINCE),
    "fetch_deposits": lambda g: g.fetch_deposits(SINCE),
    "fetch_withdrawals": lambda g: g.fetch_withdrawals(SINCE),
    "fetch_ohlcv": lambda g: g.fetch_ohlcv("BTC/USD", "1h", SINCE),
    "cancel_order": lambda g: g.cancel_order("OABC-1", "BTC/USD"),
    "cancel_all_orders": lambda g: g.cancel_all_orders(),
    "create_order": lambda g: g.create_order(
        "BTC/USD", "buy", "limit", Decimal("0.01"), Decimal("50000"), "cid-1"
    ),
    "withdraw": lambda g: g.withdraw("BTC", Decimal("0.1"), "bc1qaddr", label="cold"),
}
NEVER_RETRIED = {"create_order": OrderOutcomeUnknown, "withdraw": WithdrawalOutcomeUnknown}

RETRYABLE = [
    "NetworkError", "RequestTimeout", "ExchangeNotAvailable", "OnMaintenance",
    "DDoSProtection", "RateLimitExceeded", "InvalidNonce",
]  # fmt: skip
AUTH = ["AuthenticationError", "PermissionDenied", "AccountSuspended"]
REJECTED = [
    "ExchangeError", "InsufficientFunds", "InvalidOrder", "BadRequest", "BadSymbol",
    "InvalidAddress", "NotSupported", "OrderNotFound", "DuplicateOrderId",
]  # fmt: skip
UNREADABLE = ["BadResponse", "NullResponse"]


def expected(call: str, name: str) -> tuple[type[ExchangeError], int]:
    """The vhc error class and the number of requests for a call failing with ccxt's `name`."""
    if name in AUTH:
        return ExchangeAuthError, 1
    if call in NEVER_RETRIED:
        if name in RETRYABLE or name in UNREADABLE:
            return NEVER_RETRIED[call], 1
        return ExchangeError, 1
    if name in RETRYABLE:
        return ExchangeError, 3
    if name == "OrderNotFound":
        # cancel_order on an unknown id asks for the order's state once before giving up.
        return ExchangeOrderNotFound, 2 if call == "cancel_order" else 1
    return ExchangeError, 1


@pytest.mark.parametrize("name", RETRYABLE + AUTH + REJECTED + UNREADABLE)
@pytest.mark.parametrize("call", list(CALLS))
def test_ccxt_exception_maps_to_vhc_error(call: str, name: str) -> None:
    h = Harness(preload=call != "load_markets")
    h.failing = getattr(ccxt, name)('kraken {"error":["EGeneral:Something test-api-key-123"]}')
    want, attempts = expected(call, name)
    with pytest.raises(ExchangeError) as info:
        CALLS[call](h.gateway)
    err = info.value
    assert type(err) is want, f"{call} × {name}: got {type(err).__name__}: {err}"
    assert h.attempts == attempts, f"{call} × {name}: sent {h.attempts} times"
    assert err.exit_code == 5
    assert "kraken" in err.message
    assert "test-api-key-123" not in err.message  # registered secret, redacted
    if want is not ExchangeOrderNotFound and want not in NEVER_RETRIED.values():
        assert name in err.message or "insufficient funds" in err.message
    if attempts == 3:
        assert h.sleeps == [0.2, 0.4]  # exponential backoff between the three tries
    else:
        assert h.sleeps == []


def test_order_errors_carry_context() -> None:
    h = Harness()
    h.failing = ccxt.InsufficientFunds('kraken {"error":["EOrder:Insufficient funds"]}')
    with pytest.raises(ExchangeError) as info:
        CALLS["create_order"](h.gateway)
    message = info.value.message
    assert message.startswith("kraken: create_order buy 0.01 BTC/USD: insufficient funds")
    assert "EOrder:Insufficient funds" in message
    assert not isinstance(info.value, OutcomeUnknown)


def test_timeout_on_create_order_says_look_it_up() -> None:
    h = Harness()
    h.failing = ccxt.RequestTimeout("kraken POST https://api.kraken.com/0/private/AddOrder")
    with pytest.raises(OrderOutcomeUnknown) as info:
        CALLS["create_order"](h.gateway)
    assert h.attempts == 1
    assert "look it up before sending it again" in info.value.message


def test_transient_failure_then_success_is_retried_transparently() -> None:
    h = Harness()
    replies = iter([ccxt.ExchangeNotAvailable("503"), None])

    def flaky(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        h.attempts += 1
        exc = next(replies)
        if exc is not None:
            raise exc
        return {"error": [], "result": {"XXBT": {"balance": "0.5", "hold_trade": "0.1"}}}

    h.exchange.fetch = flaky
    balances = h.gateway.fetch_balance()
    assert h.attempts == 2 and h.sleeps == [0.2]
    assert balances["BTC"].total == Decimal("0.5")
    assert balances["BTC"].used == Decimal("0.1")
    assert balances["BTC"].free == Decimal("0.4")


def test_config_builds_the_ccxt_constructor() -> None:
    cfg = ExchangeConfig(
        id="kraken",
        rate_limit=Decimal("4"),
        ccxt={"timeout": Decimal("15000"), "options": {"adjustForTimeDifference": True}},
    )
    built = ccxt_config("main", cfg, Key())
    assert built["enableRateLimit"] is True
    assert built["rateLimit"] == 250.0
    assert built["timeout"] == 15000 and isinstance(built["timeout"], int)
    assert built["apiKey"] == "test-api-key-123" and built["secret"] == SECRET
    assert redact(f"key {SECRET}") == "key ***"
    ex = build_ccxt("main", cfg, Key())
    assert ex.id == "kraken" and ex.timeout == 15000
    assert ex.options["adjustForTimeDifference"] is True
    assert (
        ex.options.get("withdrawTagRequiredCurrencies") is not None
    )  # ccxt's defaults survive the merge


def test_config_refuses_keys_in_the_ccxt_mapping_and_unknown_ids() -> None:
    with pytest.raises(ConfigError, match="secrets backend"):
        ccxt_config("k", ExchangeConfig(ccxt={"secret": "x"}), None)
    with pytest.raises(ConfigError, match="not a ccxt exchange id"):
        build_ccxt("nosuch", ExchangeConfig(), None)
    with pytest.raises(ConfigError, match="no sandbox"):
        build_ccxt("kraken", ExchangeConfig(sandbox=True), None)


def test_factory_does_not_import_ccxt() -> None:
    import subprocess
    import sys

    code = "import sys, ccxtkit.exchanges.factory; print('ccxt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

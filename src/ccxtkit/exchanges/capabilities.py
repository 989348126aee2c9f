"""Which guarantees vhc can give on an exchange, from ccxt's `has`, its URLs and vhc's tables.

Pure: `describe(ccxt_id, has, urls)` needs no network and no keys. "proven" means a local
protocol server in tests/ speaks that exchange's real API to unmodified ccxt and the trading,
kill-switch and recovery tests run against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .lookup import strategy_for
from .quirks import (
    FILLS_BY_CURSOR,
    NO_OWN_SANDBOX,
    NO_SPOT_LEDGER,
    TRADES_PER_SYMBOL,
    TRANSFERS_PER_WALLET,
)

#: ccxt ids whose protocol a local server in tests/ proves end to end.
PROVEN_BY_TEST_SERVER = {
    "kraken": "tests/kraken_server.py",
    "binanceus": "tests/binanceus_server.py",
    "coinbase": "tests/coinbase_server.py",
}

#: Exchanges that withdraw only to a destination named on the exchange's website.
WITHDRAW_BY_KEY = {"kraken"}

#: Per exchange: what the rows rest on, and what is known and not proven where no test
#: server covers the exchange.
NOTES: dict[str, str] = {
    "coinbase": (
        "Advanced Trade with a CDP key (ES256 JWT); vhc sends its client id as "
        "client_order_id (ccxt's unified clientOrderId is dropped for coinbase); a market buy "
        "goes as a quote amount at the ask; fills by cursor, deposits/withdrawals wallet by "
        "wallet (v2 transactions); no account-wide ledger"
    ),
    "gemini": (
        "not proven: no test server, every row is read from ccxt's gemini class only. "
        "ccxt lists no closed orders for gemini (open orders only), so a lost order that "
        "filled cannot be found by client id: it stays unknown; fills need a symbol per "
        "call; no deposit or withdrawal history through vhc (ccxt has "
        "fetchDepositsWithdrawals only); cancel-all goes one order at a time; withdrawals by "
        "address and the sandbox (ccxt's test URLs) untested"
    ),
    "bitfinex": (
        "not proven: no test server, every row is read from ccxt's bitfinex class only. vhc "
        "reads the open orders and one page of closed ones, so a miss proves nothing; fills "
        "and the ledger are paged by time as ccxt does, untested; no deposit or withdrawal "
        "history through vhc (ccxt has fetchDepositsWithdrawals only); no sandbox"
    ),
    "binance": "order lookup as binanceus (same API); the protocol is proven for binanceus",
    "binanceus": "no sandbox: ccxt's test URLs for binanceus are Binance.com's testnet",
}

#: ccxt's fetch_my_trades needs a symbol here and vhc has no per-market walk for it.
_TRADES_NEED_SYMBOL = {"gemini"}


@dataclass(frozen=True)
class Capabilities:
    """One exchange's guarantees, each a short phrase for `vhc exchanges`."""

    order_lookup: str  # "proven" | "unproven"
    order_lookup_how: str
    protocol: str  # "proven (tests/...)" | "unproven"
    fills_history: str
    transfers_history: str
    exchange_ledger: str
    cancel_all: str
    sandbox: str
    withdrawals: str
    notes: str | None = None


def describe(ccxt_id: str, has: dict[str, Any], urls: dict[str, Any]) -> Capabilities:
    """The guarantees on `ccxt_id`, from ccxt's `has` and `urls` of that exchange class."""
    strategy = strategy_for(ccxt_id)
    server = PROVEN_BY_TEST_SERVER.get(ccxt_id)
    if not has.get("fetchMyTrades"):
        fills = "no"
    elif ccxt_id in _TRADES_NEED_SYMBOL:
        fills = "no: ccxt reads them one market at a time, which vhc does not do here"
    elif ccxt_id in TRADES_PER_SYMBOL:
        fills = "yes, market by market, one day per request"
    elif ccxt_id in FILLS_BY_CURSOR:
        fills = "yes, following the cursor to its end"
    else:
        fills = "yes, paginated"
    transfers = "yes" if has.get("fetchDeposits") and has.get("fetchWithdrawals") else "no"
    if ccxt_id in TRANSFERS_PER_WALLET:
        transfers = "yes, wallet by wallet (crypto sends and fiat transfers)"
    if has.get("fetchLedger") and ccxt_id not in NO_SPOT_LEDGER:
        ledger = "yes (fees in the currency really charged)"
    elif ccxt_id in NO_SPOT_LEDGER:
        ledger = "no spot ledger (each fill names its fee currency)"
    else:
        ledger = "no (fee currency as ccxt reports the fill)"
    if not has.get("withdraw"):
        withdrawals = "not supported"
    elif ccxt_id in WITHDRAW_BY_KEY:
        withdrawals = "by named key (set up on the exchange)"
    else:
        withdrawals = "by address"
    return Capabilities(
        order_lookup="proven" if strategy.proven else "unproven",
        order_lookup_how=strategy.how,
        protocol=f"proven ({server})" if server else "unproven",
        fills_history=fills,
        transfers_history=transfers,
        exchange_ledger=ledger,
        cancel_all="native" if has.get("cancelAllOrders") else "one order at a time",
        sandbox="yes" if urls.get("test") and ccxt_id not in NO_OWN_SANDBOX else "no",
        withdrawals=withdrawals,
        notes=NOTES.get(ccxt_id),
    )


PAPER = Capabilities(
    order_lookup="proven",
    order_lookup_how=strategy_for("paper").how,
    protocol="local (no exchange)",
    fills_history="yes",
    transfers_history="yes",
    exchange_ledger="no (fees in the quote currency)",
    cancel_all="native",
    sandbox="it is one",
    withdrawals="by address",
)


KITE = Capabilities(
    order_lookup="proven",
    order_lookup_how=strategy_for("kite").how,
    protocol="proven (tests/kite_server.py)",
    fills_history="today only (Kite's trade book)",
    transfers_history="no (not on the Kite Connect API)",
    exchange_ledger="no (charges are on the contract note)",
    cancel_all="one order at a time",
    sandbox="no",
    withdrawals="no",
    notes="NSE/BSE shares in INR; regular orders in market hours only, AMO outside them",
)


def for_exchange(ccxt_id: str) -> Capabilities | None:
    """The guarantees of a ccxt id (or `paper`), None for an id ccxt does not know.

    The ccxt class is built without keys and makes no request.
    """
    if ccxt_id == "paper":
        return PAPER
    if ccxt_id == "kite":
        return KITE
    import ccxt

    if ccxt_id not in ccxt.exchanges:
        return None

    exchange = getattr(ccxt, ccxt_id)()
    return describe(ccxt_id, dict(exchange.has), dict(exchange.urls))

"""What every exchange client returns: vhc's own dataclasses, Decimal money, UTC datetimes.

ccxt's dicts never travel past `exchanges/`: the gateway converts them here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class Market:
    """A tradable symbol and its precision rules."""

    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None = None
    price_step: Decimal | None = None
    min_amount: Decimal | None = None


@dataclass(frozen=True)
class Ticker:
    """The latest prices of a symbol."""

    symbol: str
    last: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True)
class Balance:
    """One asset's balance on one account."""

    asset: str
    free: Decimal
    used: Decimal
    total: Decimal


@dataclass(frozen=True)
class Trade:
    """One fill, as the exchange reports it."""

    id: str
    order_id: str | None
    symbol: str
    side: str
    amount: Decimal
    price: Decimal
    cost: Decimal
    fee: Decimal
    fee_currency: str | None
    timestamp: datetime
    client_order_id: str | None = None


@dataclass(frozen=True)
class Order:
    """An order's state on the exchange. status: open | closed | canceled | rejected | expired."""

    id: str
    client_order_id: str | None
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    status: str
    filled: Decimal
    remaining: Decimal
    average: Decimal | None
    fee: Decimal | None
    fee_currency: str | None
    timestamp: datetime | None
    trades: tuple[Trade, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Transfer:
    """A deposit or withdrawal. kind: deposit | withdrawal; status: pending|ok|failed|canceled."""

    id: str
    kind: str
    asset: str
    amount: Decimal
    fee: Decimal | None
    fee_currency: str | None
    status: str
    timestamp: datetime
    txid: str | None = None
    address: str | None = None
    network: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class LedgerEntry:
    """One balance change in the exchange's own ledger (kraken `Ledgers`); `amount` is signed.

    `fee` is charged on top, in `asset`: the only place kraken shows a fee's real currency.
    """

    id: str
    reference_id: str | None  # the trade or transfer it belongs to
    type: str
    asset: str
    amount: Decimal
    fee: Decimal
    timestamp: datetime


@dataclass(frozen=True)
class Candle:
    """One OHLCV bar."""

    timestamp: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class ApiKey(Protocol):
    """An account's key as the secrets backends return it (`secrets.common.Credentials`)."""

    @property
    def api_key(self) -> str: ...

    @property
    def api_secret(self) -> str: ...

    @property
    def passphrase(self) -> str | None: ...


class ExchangeClient(Protocol):
    """The interface of an account: the ccxt gateway and the paper exchange both provide it.

    Reads and cancels may be retried; `create_order` and `withdraw` are sent once, never retried.
    Times are UTC; `since`/`until` bound results inclusively/exclusively.
    """

    name: str

    def ping(self) -> None: ...  # the cheapest call: health probes

    def load_markets(self) -> dict[str, Market]: ...

    def market(self, symbol: str) -> Market | None:
        """One market by symbol; None when the exchange (asked afresh if need be) has none."""
        ...

    def fetch_ticker(self, symbol: str) -> Ticker: ...

    def fetch_balance(self) -> dict[str, Balance]: ...

    def create_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str,
    ) -> Order: ...

    def find_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        """Look among open AND closed orders; None only when the exchange confirms absence."""
        ...

    def fetch_order(self, order_id: str, symbol: str) -> Order: ...

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]: ...

    def cancel_order(self, order_id: str, symbol: str) -> None: ...

    def cancel_all_orders(self) -> list[str]:
        """Cancel every open order; returns the ids cancelled."""
        ...

    def fetch_my_trades(self, since: datetime, until: datetime | None = None) -> list[Trade]:
        """All fills in the range, following pagination to the end."""
        ...

    def fetch_deposits(self, since: datetime, until: datetime | None = None) -> list[Transfer]: ...

    def fetch_withdrawals(
        self, since: datetime, until: datetime | None = None
    ) -> list[Transfer]: ...

    def fetch_ledger(
        self, since: datetime, until: datetime | None = None
    ) -> list[LedgerEntry] | None:
        """The exchange's own ledger in the range; None when it keeps none we can read."""
        ...

    def withdraw(
        self,
        asset: str,
        amount: Decimal,
        address: str,
        tag: str | None = None,
        network: str | None = None,
        label: str | None = None,
    ) -> Transfer: ...

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: datetime, limit: int | None = None
    ) -> list[Candle]: ...

    def close(self) -> None: ...

"""The kill switch's sweep of one account: cancel every open order, and optionally flatten.

Flattening sells each spot holding that is not one of the account's `cash_currencies` into
cash at market, down to the account's `dust`. Errors never escape: each becomes a line of the
account's result, so one broken account cannot stop the report of the others.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from ccxtkit.errors import VhcError
from ccxtkit.logs import log, redact
from ccxtkit.money import fmt

if TYPE_CHECKING:
    from ccxtkit.config import ExchangeConfig
    from ccxtkit.exchanges.base import ExchangeClient, Market
    from ccxtkit.workspace import Workspace


@dataclass
class AccountResult:
    """What the sweep did on one account."""

    account: str
    cancelled: list[str] = field(default_factory=list)
    still_open: list[str] = field(default_factory=list)
    closed: list[dict[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when nothing failed and no order is left open."""
        return not self.errors and not self.still_open

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the result (for the state file and the ledger)."""
        return {
            "account": self.account,
            "ok": self.ok,
            "canceled": list(self.cancelled),  # ccxt's spelling, as everywhere in --json
            "still_open": list(self.still_open),
            "closed": [dict(c) for c in self.closed],
            "errors": list(self.errors),
            "seconds": round(self.seconds, 3),
        }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, VhcError):
        return redact(exc.message)
    return redact(f"{type(exc).__name__}: {exc}")


def sweep_account(ws: Workspace, name: str, flatten: bool) -> AccountResult:
    """Cancel every open order on account `name` (and with `flatten`, sell holdings to cash)."""
    started = time.monotonic()
    result = AccountResult(account=name)
    client: ExchangeClient | None = None
    try:
        from ccxtkit.exchanges.factory import open_exchange
        from ccxtkit.secrets import resolve_credentials

        client = open_exchange(ws, name, resolve_credentials(ws, name))
        result.cancelled = cancel_everything(client)
        result.still_open = [o.id for o in client.fetch_open_orders()]
        if result.still_open:
            result.errors.append(f"{len(result.still_open)} order(s) still open after cancelling")
        if flatten:
            flatten_account(client, ws.config.exchange(name), result)
    except Exception as exc:  # noqa: BLE001 - reported per account, never fatal to the sweep
        result.errors.append(_describe(exc))
        log.warning("kill switch sweep of %s failed: %s", name, _describe(exc))
    finally:
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the result
                log.debug("closing %s: %s", name, exc)
        result.seconds = time.monotonic() - started
    return result


def cancel_everything(client: ExchangeClient) -> list[str]:
    """Cancel all open orders: `cancel_all_orders` where the client has it, else one by one."""
    try:
        return list(client.cancel_all_orders())
    except (NotImplementedError, AttributeError):
        pass
    cancelled = []
    for order in client.fetch_open_orders():
        client.cancel_order(order.id, order.symbol)
        cancelled.append(order.id)
    return cancelled


def _sell_market(markets: dict[str, Market], asset: str, cash: list[str]) -> Market | None:
    for quote in cash:
        market = markets.get(f"{asset}/{quote}")
        if market is not None:
            return market
    return None


def _floor(amount: Decimal, step: Decimal | None) -> Decimal:
    if step is None or step <= 0:
        return amount
    return (amount / step).to_integral_value(rounding=ROUND_DOWN) * step


def flatten_account(client: ExchangeClient, account: ExchangeConfig, result: AccountResult) -> None:
    """Sell every non-cash holding above dust at market; each outcome goes into `result`."""
    cash = [c.upper() for c in account.cash_currencies]
    balances = client.fetch_balance()
    markets = client.load_markets()
    for asset, balance in sorted(balances.items()):
        if asset.upper() in cash or balance.free <= account.dust:
            continue
        market = _sell_market(markets, asset, cash)
        if market is None:
            result.errors.append(f"{asset}: no market to sell {fmt(balance.free)} into cash")
            continue
        amount = _floor(balance.free, market.amount_step)
        if amount <= 0 or (market.min_amount is not None and amount < market.min_amount):
            result.closed.append(
                {
                    "asset": asset,
                    "symbol": market.symbol,
                    "amount": fmt(balance.free),
                    "status": "below_minimum",
                }
            )
            continue
        client_id = "ks" + uuid.uuid4().hex[:16]
        try:
            order = client.create_order(market.symbol, "sell", "market", amount, None, client_id)
        except Exception as exc:  # noqa: BLE001 - one asset's failure must not stop the others
            result.errors.append(f"{asset}: selling {fmt(amount)} failed: {_describe(exc)}")
            continue
        result.closed.append(
            {
                "asset": asset,
                "symbol": market.symbol,
                "amount": fmt(amount),
                "order_id": order.id,
                "client_order_id": client_id,
                "status": order.status,
            }
        )

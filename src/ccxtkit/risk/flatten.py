"""The kill switch's sweep of one account: cancel every open order, and optionally flatten.

Flattening sells each spot holding that is not one of the account's `cash_currencies` into
cash at market, down to the account's `dust`. Errors never escape: each becomes a line of the
account's result, so one broken account cannot stop the report of the others.

Everything the sweep does is on the record like any other order: each flatten sell goes
through the trade path's intent -> send once -> outcome -> fills (`trading.orders.
send_emergency`: client order id, lookup on a lost reply, never resent blindly), and the final
state (and any fills) of every order it cancelled is recorded against the order's intent. No
ledger write waits more than half a second: when the ledger is busy, the intents wait in the
emergency journal and the next writer resolves them against the exchange.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from ccxtkit import crashpoints
from ccxtkit.errors import LedgerBusyError, OrderOutcomeUnknown, VhcError
from ccxtkit.logs import log, redact
from ccxtkit.money import fmt

if TYPE_CHECKING:
    from ccxtkit.config import ExchangeConfig
    from ccxtkit.exchanges.base import ExchangeClient, Market, Order
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


class CancelsFirst:
    """The accounts' sweeps, in turn: no account's bookkeeping before every account's cancels.

    A sweep is mostly waiting on its exchange, but building its client can be CPU work (ccxt's
    import: 0.5 s) and so is recording what it cancelled (the ledger, DuckDB's import): done
    at once, one account's books would hold the interpreter while another has not yet sent
    its cancels. Each sweep says when it is calling its exchange (or failed to get that far);
    its books wait for all of them, at most `patience` seconds.
    """

    def __init__(self, accounts: int, patience: float = 5.0) -> None:
        self._left = accounts
        self._patience = patience
        self._turn = threading.Condition()

    def calling(self) -> None:
        """This account's client is built: from now on its sweep mostly waits."""
        with self._turn:
            self._left -= 1
            self._turn.notify_all()

    def books(self) -> None:
        """Wait until every account is calling its exchange (or `patience` ran out)."""
        with self._turn:
            self._turn.wait_for(lambda: self._left <= 0, self._patience)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, VhcError):
        return redact(exc.message)
    return redact(f"{type(exc).__name__}: {exc}")


def sweep_account(
    ws: Workspace, name: str, flatten: bool, turns: CancelsFirst | None = None
) -> AccountResult:
    """Cancel every open order on account `name` (and with `flatten`, sell holdings to cash)."""
    started = time.monotonic()
    result = AccountResult(account=name)
    client: ExchangeClient | None = None
    turns = turns or CancelsFirst(1)
    try:
        try:
            from ccxtkit.exchanges.factory import open_exchange
            from ccxtkit.secrets import resolve_credentials

            # No policy check: halting must work whatever the config file says.
            client = open_exchange(ws, name, resolve_credentials(ws, name), check_policy=False)
        finally:
            turns.calling()  # built or failed: the others' books need not wait for it
        result.cancelled = cancel_everything(client)
        crashpoints.reach("killswitch.swept_account")
        result.still_open = [o.id for o in _open_after_cancel(client)]
        if result.still_open:
            result.errors.append(f"{len(result.still_open)} order(s) still open after cancelling")
        turns.books()
        record_cancelled(ws, name, client, result.cancelled)
        from ccxtkit.trading.kite_squareoff import is_kite_client, square_off

        if is_kite_client(client):  # intraday positions always; delivery shares with --flatten
            square_off(ws, name, client, result, flatten)
        elif flatten:
            flatten_account(client, ws.config.exchange(name), result, ws=ws, name=name)
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


def record_cancelled(ws: Workspace, name: str, client: ExchangeClient, cancelled: list[str]) -> int:
    """Record each cancelled order as cancelled (and its fills) against its intent in the ledger.

    After the cancels (an emergency never waits for the books): the ledger says which of the
    cancelled ids are vhc's orders, one trade-history read gives any fills they had. Orders
    vhc did not place have no intent and are left to reconciliation. A busy ledger leaves
    them pending: the next `trade recover` (or order) looks them up. Returns how many.
    """
    from ccxtkit.trading import emergency, recording

    if not cancelled or not ws.ledger_path.exists():
        return 0  # no ledger yet: none of these orders can be vhc's
    try:
        with emergency.open_briefly(ws) as ledger:
            pending = recording.pending_orders(ledger, name)
        ours = {p["order_id"]: p for p in pending if p["order_id"] in cancelled}
        if not ours:
            return 0
        oldest = min(p["timestamp"] for p in ours.values())
        if oldest.tzinfo is None:  # the ledger keeps UTC without an offset
            oldest = oldest.replace(tzinfo=UTC)
        try:
            fills = recording.fills_of_orders(client, ours, oldest)
        except Exception as exc:  # noqa: BLE001 - the fills are on the exchange: recover adds them
            log.warning("fills of cancelled orders on %s not read: %s", name, _describe(exc))
            fills = []
        with emergency.open_briefly(ws) as ledger, ledger.transaction():
            for order_id, known in ours.items():
                cid = known["client_order_id"]
                details = {"via": "kill_switch", "reason": "cancelled by the kill switch sweep"}
                recording.record_event(ledger, name, cid, "canceled", details, order_id=order_id)
                mine = [t for t in fills if t.order_id == order_id]
                recording.record_fills(ledger, name, mine, "kill_switch", cid)
        return len(ours)
    except LedgerBusyError:
        log.warning("ledger busy: %d cancelled order(s) left to `trade recover`", len(cancelled))
        return 0


def _open_after_cancel(client: ExchangeClient) -> list[Order]:
    """The open orders once cancelled: the read the client's cancel-all confirmed with, if it
    made one just now (ccxt accounts), else a fresh read."""
    confirmed = getattr(client, "open_orders_after_cancel", None)
    seen = confirmed() if confirmed is not None else None
    return seen if seen is not None else client.fetch_open_orders()


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


def flatten_account(
    client: ExchangeClient,
    account: ExchangeConfig,
    result: AccountResult,
    *,
    ws: Workspace,
    name: str,
) -> None:
    """Sell every non-cash holding above dust at market through the trade path's one record."""
    from ccxtkit.trading.accounts import is_live_account
    from ccxtkit.trading.orders import OrderRequest, send_emergency

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
        entry = {"asset": asset, "symbol": market.symbol, "amount": fmt(amount)}
        if amount <= 0 or (market.min_amount is not None and amount < market.min_amount):
            result.closed.append({**entry, "amount": fmt(balance.free), "status": "below_minimum"})
            continue
        request = OrderRequest(name, market.symbol, "sell", amount, source="kill_switch")
        try:
            cid, order, _ = send_emergency(
                ws, client, request, market.symbol, is_live_account(name, account)
            )
        except OrderOutcomeUnknown as exc:
            # On the record as unknown: `vhc trade recover` resolves it; never sell again blind.
            result.closed.append({**entry, "status": "unknown", "note": _describe(exc)})
            result.errors.append(
                f"{asset}: the outcome of selling {fmt(amount)} is unknown (recorded; run "
                "`vhc trade recover`, do not sell again by hand)"
            )
            continue
        except Exception as exc:  # noqa: BLE001 - one asset's failure must not stop the others
            result.errors.append(f"{asset}: selling {fmt(amount)} failed: {_describe(exc)}")
            continue
        result.closed.append(
            {
                **entry,
                "order_id": order.id if order else "",
                "client_order_id": cid,
                "status": order.status if order else "unknown",
            }
        )

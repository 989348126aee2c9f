"""Connecting to a configured account: its keys from the secrets backend, its client."""

from __future__ import annotations

from ..config import ExchangeConfig
from ..errors import ConfigError
from ..exchanges.base import ExchangeClient
from ..workspace import Workspace


def is_paper(name: str, account: ExchangeConfig) -> bool:
    """True for the built-in paper exchange."""
    return (account.id or name) == "paper"


def is_live_account(name: str, account: ExchangeConfig) -> bool:
    """Real money: not the paper exchange and not the exchange's own sandbox."""
    return not (is_paper(name, account) or account.sandbox)


def connect(ws: Workspace, name: str) -> ExchangeClient:
    """An exchange client for the account `name`, with its keys resolved."""
    from ..exchanges.factory import open_exchange
    from ..secrets import resolve_credentials

    ws.config.exchange(name)  # a clear error for an unknown name
    return open_exchange(ws, name, resolve_credentials(ws, name))


def unproven_lookup_warning(name: str, account: ExchangeConfig) -> str | None:
    """The warning for a live account whose order lookup cannot prove absence, else None.

    Raises ConfigError (exit 2) unless the account opted in with `allow_unproven_lookup: true`.
    """
    from ..exchanges.lookup import strategy_for

    ccxt_id = account.id or name
    if not is_live_account(name, account) or strategy_for(ccxt_id).proven:
        return None
    if not account.allow_unproven_lookup:
        raise ConfigError(
            f"{name}: vhc cannot prove on {ccxt_id} that an order whose reply was lost was not "
            "placed, so live trading there is refused; set `allow_unproven_lookup: true` under "
            f"exchanges.{name} to trade anyway (such an order then stays unknown until you "
            "check it by hand), or see `vhc exchanges`"
        )
    return (
        f"WARNING: {name} ({ccxt_id}): order lookup by client id is unproven; an order whose "
        "reply is lost stays unknown and must be checked by hand on the exchange"
    )

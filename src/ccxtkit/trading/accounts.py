"""Connecting to a configured account: its keys from the secrets backend, its client."""

from __future__ import annotations

from ..config import ExchangeConfig
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

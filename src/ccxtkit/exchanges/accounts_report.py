"""`vhc exchanges`: per account, what vhc can guarantee there, and the state of its market list."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ccxtkit.config import ExchangeConfig
from ccxtkit.errors import ConfigError, VhcError
from ccxtkit.workspace import Workspace

from .capabilities import Capabilities, for_exchange


@dataclass(frozen=True)
class AccountReport:
    """One account's line of `vhc exchanges`."""

    account: str
    exchange: str
    enabled: bool
    client_id_lookup: str  # "proven" | "unproven"
    markets: int | None
    markets_source: str  # "paper" | "cache" | "exchange" | "error"
    markets_age_seconds: int | None
    error: str | None = None
    guarantees: Capabilities | None = None
    #: Live trading here: "allowed", "refused (unproven lookup)", "allowed, warned (...)", "not live".
    live_trading: str = "allowed"


def report_accounts(
    ws: Workspace, only: str | None = None, refresh: bool = False
) -> list[AccountReport]:
    """Describe each account (or `only`); `refresh` reloads market lists from the exchanges."""
    from ccxtkit.exchanges.factory import markets_cache_path
    from ccxtkit.trading.accounts import connect, is_paper

    config = ws.config
    names = [only] if only else sorted(config.exchanges)
    reports = []
    for name in names:
        cfg = config.exchange(name)
        ccxt_id = cfg.id or name
        guarantees = for_exchange(ccxt_id)
        lookup = guarantees.order_lookup if guarantees else "unproven"
        live = live_trading(name, cfg)
        if is_paper(name, cfg):
            markets = len(connect(ws, name).load_markets())
            reports.append(
                AccountReport(
                    name,
                    ccxt_id,
                    cfg.enabled,
                    lookup,
                    markets,
                    "paper",
                    None,
                    guarantees=guarantees,
                    live_trading=live,
                )
            )
            continue
        if refresh:
            markets_cache_path(ws, name).unlink(missing_ok=True)
        try:
            client = connect(ws, name)
            try:
                count = len(client.load_markets())
                source, age = _markets_origin(client)
            finally:
                client.close()
        except VhcError as exc:
            reports.append(
                AccountReport(
                    name,
                    ccxt_id,
                    cfg.enabled,
                    lookup,
                    None,
                    "error",
                    None,
                    exc.message,
                    guarantees=guarantees,
                    live_trading=live,
                )
            )
            continue
        reports.append(
            AccountReport(
                name,
                ccxt_id,
                cfg.enabled,
                lookup,
                count,
                source,
                age,
                guarantees=guarantees,
                live_trading=live,
            )
        )
    return reports


def live_trading(name: str, cfg: ExchangeConfig) -> str:
    """Whether `vhc trade` sends live orders on this account, in the trade path's own words."""
    from ccxtkit.trading.accounts import is_live_account, unproven_lookup_warning

    if not is_live_account(name, cfg):
        return "not live (paper or sandbox)"
    try:
        warning = unproven_lookup_warning(name, cfg)
    except ConfigError:
        return "refused: order lookup unproven (allow_unproven_lookup: true accepts it)"
    return "allowed, warned on every trade (allow_unproven_lookup: true)" if warning else "allowed"


def _markets_origin(client: object) -> tuple[str, int | None]:
    """Whether the client's market list came from its cache, and how old that list is."""
    inner = getattr(client, "_inner", client)
    cached = bool(getattr(inner, "_markets_cached", False))
    fetched_at = getattr(inner, "_markets_at", None)
    age = None if fetched_at is None else int(max(0.0, time.time() - fetched_at))
    return ("cache" if cached else "exchange"), age

"""Open an account by its name in the config: the paper exchange or the ccxt gateway."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccxtkit.workspace import Workspace

from .base import ApiKey, ExchangeClient
from .timing import TimedClient

if TYPE_CHECKING:
    from ccxtkit.config import ExchangeConfig

    from .markets_cache import MarketsCache


def open_exchange(
    ws: Workspace, name: str, credentials: ApiKey | None = None, *, check_policy: bool = True
) -> ExchangeClient:
    """The client of account `name`: `id: paper` → PaperExchange, anything else → ccxt.

    The config's policy is checked against the ledger's record first (exit 8 on a loosening
    change); only the kill switch's sweep skips it (`check_policy=False`): it must never wait.
    Every call is timed into the workspace's latency file, which the metrics read.
    """
    if check_policy:
        from ccxtkit.policy.service import enforce_policy

        enforce_policy(ws)
    cfg = ws.config.exchange(name)
    client: ExchangeClient
    library = library_of(name, cfg)
    if library == "paper":
        from .paper import PaperExchange

        client = PaperExchange(name, cfg.paper, ws.state_dir / f"paper_{name}.json")
    elif library == "kite":
        from .kite_session import open_client

        client = open_client(ws, name, credentials)
    else:
        from .gateway import CcxtGateway, build_ccxt

        exchange = build_ccxt(name, cfg, credentials)
        client = CcxtGateway(name, exchange, markets_cache=markets_cache(ws, name, exchange))

    def record(method: str, ms: float, ok: bool) -> None:
        from ccxtkit.metrics.latency import record_latency

        record_latency(ws, name, method, ms, ok)

    timed: ExchangeClient = TimedClient(client, record)
    return timed


def library_of(name: str, cfg: ExchangeConfig) -> str:
    """What account `name` is reached through: "paper", "kite" or "ccxt"."""
    kind = cfg.id or name
    return kind if kind in ("paper", "kite") else "ccxt"


def preload(ws: Workspace) -> None:
    """Import the exchange library now if an enabled account needs it (about 0.3 s), so that
    a later call, such as a kill-switch sweep in `vhc serve`, does not wait for it."""
    if any(library_of(n, cfg) == "ccxt" for n, cfg in ws.config.enabled_exchanges().items()):
        import ccxt  # noqa: F401

        from . import gateway  # noqa: F401


def markets_cache_path(ws: Workspace, name: str) -> Path:
    """Where account `name` keeps its market list between runs."""
    return ws.state_dir / "markets" / f"{name}.json"


def markets_cache(ws: Workspace, name: str, exchange: Any) -> MarketsCache | None:
    """The account's signed market-list cache; None without an API secret to sign it with."""
    import ccxt

    from .markets_cache import MarketsCache, fingerprint, signing_key

    cfg = ws.config.exchange(name)
    if not exchange.secret or cfg.markets_cache_seconds <= 0:
        return None
    key = fingerprint(exchange.id, cfg.sandbox, exchange.urls.get("api"), ccxt.__version__)
    return MarketsCache(
        markets_cache_path(ws, name),
        key,
        signing_key(exchange.secret),
        ttl=float(cfg.markets_cache_seconds),
    )


def is_paper(ws: Workspace, name: str) -> bool:
    """True when account `name` is the built-in paper exchange (no keys needed)."""
    cfg = ws.config.exchange(name)
    return (cfg.id or name) == "paper"

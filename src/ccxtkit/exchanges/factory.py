"""Open an account by its name in the config: the paper exchange or the ccxt gateway."""

from __future__ import annotations

from ccxtkit.workspace import Workspace

from .base import ApiKey, ExchangeClient


def open_exchange(ws: Workspace, name: str, credentials: ApiKey | None = None) -> ExchangeClient:
    """The client of account `name`: `id: paper` → PaperExchange, anything else → ccxt."""
    cfg = ws.config.exchange(name)
    if (cfg.id or name) == "paper":
        from .paper import PaperExchange

        return PaperExchange(name, cfg.paper, ws.state_dir / f"paper_{name}.json")
    from .gateway import CcxtGateway, build_ccxt

    return CcxtGateway(name, build_ccxt(name, cfg, credentials))


def is_paper(ws: Workspace, name: str) -> bool:
    """True when account `name` is the built-in paper exchange (no keys needed)."""
    cfg = ws.config.exchange(name)
    return (cfg.id or name) == "paper"

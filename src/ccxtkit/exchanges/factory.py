"""Open an account by its name in the config: the paper exchange or the ccxt gateway."""

from __future__ import annotations

from ccxtkit.workspace import Workspace

from .base import ApiKey, ExchangeClient
from .timing import TimedClient


def open_exchange(ws: Workspace, name: str, credentials: ApiKey | None = None) -> ExchangeClient:
    """The client of account `name`: `id: paper` → PaperExchange, anything else → ccxt.

    Every call is timed into the workspace's latency file, which the metrics read.
    """
    cfg = ws.config.exchange(name)
    client: ExchangeClient
    if (cfg.id or name) == "paper":
        from .paper import PaperExchange

        client = PaperExchange(name, cfg.paper, ws.state_dir / f"paper_{name}.json")
    else:
        from .gateway import CcxtGateway, build_ccxt

        client = CcxtGateway(name, build_ccxt(name, cfg, credentials))

    def record(method: str, ms: float, ok: bool) -> None:
        from ccxtkit.metrics.latency import record_latency

        record_latency(ws, name, method, ms, ok)

    timed: ExchangeClient = TimedClient(client, record)
    return timed


def is_paper(ws: Workspace, name: str) -> bool:
    """True when account `name` is the built-in paper exchange (no keys needed)."""
    cfg = ws.config.exchange(name)
    return (cfg.id or name) == "paper"

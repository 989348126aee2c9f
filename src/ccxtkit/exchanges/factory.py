"""Open an account by its name in the config: the paper exchange or the ccxt gateway."""

from __future__ import annotations

from ccxtkit.workspace import Workspace

from .base import ApiKey, ExchangeClient
from .timing import TimedClient


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

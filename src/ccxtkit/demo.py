"""`vhc demo`: an offline guided tour on the paper exchange, in a temporary workspace.

Every step says what it expects; a step that does not behave as expected is reported, so the
demo doubles as an end-to-end smoke test of a fresh install.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml

from .errors import RiskLimitError, VhcError
from .exchanges.base import ExchangeClient
from .money import fmt
from .workspace import Workspace, init_workspace, write_private

#: Prices the demo sets on the paper exchange, so every run shows the same numbers.
START_PRICES = {"BTC/USD": Decimal("60000"), "ETH/USD": Decimal("3000"), "SOL/USD": Decimal("140")}


@dataclass(frozen=True)
class DemoStep:
    """One step of the tour: what was tried, what was expected and what happened."""

    title: str
    expected: str  # "ok" | "refused" | "info"
    outcome: str  # "ok" | "refused" | "error"
    detail: str

    @property
    def as_expected(self) -> bool:
        return self.expected == "info" or self.expected == self.outcome


@dataclass(frozen=True)
class DemoResult:
    """The whole tour."""

    home: Path
    steps: list[DemoStep]

    @property
    def ok(self) -> bool:
        return all(s.as_expected for s in self.steps)


def _demo_workspace(home: Path) -> Workspace:
    init_workspace(home)
    ws = Workspace.locate(str(home))
    data = yaml.safe_load(ws.config_path.read_text(encoding="utf-8"))
    data["risk"]["max_open_orders"] = 1  # so the tour can show that limit with one resting order
    write_private(ws.config_path, yaml.safe_dump(data, sort_keys=False))
    return Workspace.locate(str(home))


def _paper(ws: Workspace) -> ExchangeClient:
    from .exchanges.factory import open_exchange

    return open_exchange(ws, "paper")


def _set_price(ws: Workspace, symbol: str, price: Decimal) -> None:
    client = _paper(ws)
    client.set_price(symbol, price)  # type: ignore[attr-defined]


def run_demo(home: Path | None = None) -> DemoResult:
    """Run the tour in `home` (a new temporary folder by default) and report each step."""
    from .ledger.verify import verify_chain
    from .trading.balances import read_balances
    from .trading.orders import OrderRequest, place_order

    home = home or Path(tempfile.mkdtemp(prefix="vhc-demo-"))
    ws = _demo_workspace(home)
    for symbol, price in START_PRICES.items():
        _set_price(ws, symbol, price)
    steps: list[DemoStep] = []

    def attempt(title: str, expected: str, action: Callable[[], str]) -> None:
        try:
            steps.append(DemoStep(title, expected, "ok", action()))
        except RiskLimitError as exc:
            steps.append(DemoStep(title, expected, "refused", exc.message))
        except VhcError as exc:
            steps.append(DemoStep(title, expected, "error", exc.message))

    def order(side: str, symbol: str, amount: str, price: str | None = None) -> Callable[[], str]:
        def run() -> str:
            request = OrderRequest(
                exchange="paper",
                symbol=symbol,
                side=side,
                amount=Decimal(amount),
                type="limit" if price else "market",
                price=Decimal(price) if price else None,
                strategy="demo",
            )
            result = place_order(ws, request)
            o = result.order
            assert o is not None
            return f"{o.status}: {side} {o.filled}/{o.amount} {symbol} (order {o.id})"

        return run

    def balances() -> str:
        report = read_balances(ws)
        cash = report.balances["paper"].get("USD")
        return f"USD {fmt(cash.total) if cash else 0} on the paper account; snapshot recorded"

    def move(symbol: str, price: str) -> Callable[[], str]:
        def run() -> str:
            _set_price(ws, symbol, Decimal(price))
            return f"{symbol} price set to {price}"

        return run

    def verify() -> str:
        with ws.open_ledger() as ledger:
            result = verify_chain(ledger)
        if result.problem:
            raise VhcError(result.problem.describe())
        return f"{result.rows} rows, head seq {result.head.seq}: every hash checks out"

    attempt("Read balances", "ok", balances)
    attempt("Buy 0.15 BTC at market", "ok", order("buy", "BTC/USD", "0.15"))
    attempt("Buy 1 BTC: over the $10,000 order limit", "refused", order("buy", "BTC/USD", "1"))
    attempt("Buy 0.15 BTC more", "ok", order("buy", "BTC/USD", "0.15"))
    attempt("Buy 0.15 BTC again: position over $25,000", "refused", order("buy", "BTC/USD", "0.15"))
    attempt("Sell 1 SOL we do not hold: balance", "refused", order("sell", "SOL/USD", "1"))
    attempt("Buy 3 ETH at market", "ok", order("buy", "ETH/USD", "3"))
    attempt("Buy 3 ETH more", "ok", order("buy", "ETH/USD", "3"))
    attempt("Limit buy 50 SOL at 139 (rests)", "ok", order("buy", "SOL/USD", "50", "139"))
    attempt(
        "Limit buy 50 SOL at 130: one open order max",
        "refused",
        order("buy", "SOL/USD", "50", "130"),
    )
    attempt("SOL trades down to 138.50", "info", move("SOL/USD", "138.50"))
    attempt("Sell 0.1 BTC (the SOL limit order fills first)", "ok", order("sell", "BTC/USD", "0.1"))
    attempt("Buy 3 ETH: over the $50,000 daily volume", "refused", order("buy", "ETH/USD", "3"))
    attempt("Read balances", "ok", balances)
    attempt("BTC and ETH crash 80%", "info", move("BTC/USD", "12000"))
    attempt("(ETH too)", "info", move("ETH/USD", "600"))
    attempt(
        "Buy 0.001 BTC: portfolio 15% below its high", "refused", order("buy", "BTC/USD", "0.001")
    )
    attempt("Verify the ledger's hash chain", "ok", verify)
    return DemoResult(home, steps)

"""The paper exchange's state file: JSON in the workspace, written atomically under an flock.

Every call of a PaperExchange takes the lock on a sibling `.lock` file, reads the state,
changes it and writes it back (temp file + rename, mode 0600) before letting go, so two
processes never interleave their changes and a crash never leaves half a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ccxtkit.errors import ExchangeError
from ccxtkit.filelock import flocked
from ccxtkit.workspace import write_private

from .base import Trade, Transfer

STATE_VERSION = 1
LOCK_WAIT_SECONDS = 30.0


@dataclass
class PaperOrder:
    """An order as the paper exchange keeps it (mutable: it fills and cancels)."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    status: str
    filled: Decimal
    cost: Decimal
    fee: Decimal
    fee_currency: str
    timestamp: datetime


@dataclass
class PaperState:
    """Everything one paper account remembers between runs."""

    balances: dict[str, Decimal]
    orders: dict[str, PaperOrder] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    deposits: list[Transfer] = field(default_factory=list)
    withdrawals: list[Transfer] = field(default_factory=list)
    next_ids: dict[str, int] = field(default_factory=dict)
    prices: dict[str, Decimal] = field(default_factory=dict)  # set_price overrides
    last_prices: dict[str, Decimal] = field(default_factory=dict)

    def new_id(self, prefix: str) -> str:
        """The next id of a kind (orders P-1, P-2, ...; trades PT-1, ...)."""
        n = self.next_ids.get(prefix, 1)
        self.next_ids[prefix] = n + 1
        return f"{prefix}-{n}"


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if is_dataclass(value):  # field by field: asdict() deep-copies every value first
        return {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
    return value


def dumps(state: PaperState) -> str:
    """The state as JSON: Decimals and datetimes as strings, so nothing is rounded.

    One line per key of the state, each value compact: json's C encoder is used only without
    `indent`, and every call of the paper exchange writes (or compares) the whole state.
    """
    body = _encode(state)
    lines = [f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in body.items()]
    return "{" + json.dumps("version") + f": {STATE_VERSION},\n" + ",\n".join(lines) + "}\n"


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def _opt_dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _when(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def _trade(d: dict[str, Any]) -> Trade:
    return Trade(
        id=d["id"],
        order_id=d["order_id"],
        symbol=d["symbol"],
        side=d["side"],
        amount=_dec(d["amount"]),
        price=_dec(d["price"]),
        cost=_dec(d["cost"]),
        fee=_dec(d["fee"]),
        fee_currency=d["fee_currency"],
        timestamp=_when(d["timestamp"]),
        client_order_id=d["client_order_id"],
    )


def _transfer(d: dict[str, Any]) -> Transfer:
    return Transfer(
        id=d["id"],
        kind=d["kind"],
        asset=d["asset"],
        amount=_dec(d["amount"]),
        fee=_opt_dec(d["fee"]),
        fee_currency=d["fee_currency"],
        status=d["status"],
        timestamp=_when(d["timestamp"]),
        txid=d["txid"],
        address=d["address"],
        network=d["network"],
        tag=d["tag"],
    )


def _order(d: dict[str, Any]) -> PaperOrder:
    return PaperOrder(
        **{
            **d,
            "amount": _dec(d["amount"]),
            "price": _opt_dec(d["price"]),
            "filled": _dec(d["filled"]),
            "cost": _dec(d["cost"]),
            "fee": _dec(d["fee"]),
            "timestamp": _when(d["timestamp"]),
        }
    )


def loads(text: str) -> PaperState:
    """The state from its JSON text."""
    data = json.loads(text)
    return PaperState(
        balances={k: _dec(v) for k, v in data["balances"].items()},
        orders={k: _order(v) for k, v in data["orders"].items()},
        trades=[_trade(t) for t in data["trades"]],
        deposits=[_transfer(t) for t in data["deposits"]],
        withdrawals=[_transfer(t) for t in data["withdrawals"]],
        next_ids={k: int(v) for k, v in data["next_ids"].items()},
        prices={k: _dec(v) for k, v in data["prices"].items()},
        last_prices={k: _dec(v) for k, v in data["last_prices"].items()},
    )


@contextmanager
def locked_state(
    path: Path, initial: Callable[[], PaperState], wait_seconds: float = LOCK_WAIT_SECONDS
) -> Iterator[PaperState]:
    """Hold the account's lock, yield its state, and save it if the body changed it."""

    def busy() -> ExchangeError:
        return ExchangeError(
            f"paper exchange state {path} is locked by another process; "
            "try again when it has finished"
        )

    with flocked(path.with_name(path.name + ".lock"), wait_seconds, busy, poll_seconds=0.005):
        try:
            before = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            before = ""
        try:
            state = loads(before) if before else initial()
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            raise ExchangeError(
                f"paper exchange state {path} is damaged ({type(exc).__name__}: {exc}); "
                "move it aside to start the paper account afresh"
            ) from None
        yield state
        after = dumps(state)
        if after != before:
            write_private(path, after)

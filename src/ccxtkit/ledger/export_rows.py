"""What every exchange export parser shares: the cell types, the row reader, the movements."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from ..errors import InputError
from ..exchanges.base import Trade, Transfer
from ..money import LEDGER_CONTEXT, SCALE
from .trades_csv import parse_timestamp

ZERO = Decimal(0)


def number(value: Any) -> Decimal | None:
    """An export's number: blank is None; `$`, thousands commas and spaces are dropped."""
    if value is None or isinstance(value, Decimal):
        return value
    text = str(value).strip().replace("$", "").replace(",", "").replace(" ", "")
    if text in ("", "-"):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a number")
    return number


def _time(value: Any) -> datetime:
    """ISO 8601 or `YYYY-MM-DD HH:MM:SS[.fff][ UTC]`; no offset means UTC."""
    text = str(value).strip().removesuffix(" UTC").removesuffix("UTC").strip()
    try:
        return parse_timestamp(text.replace(" ", "T", 1), "time")
    except InputError as exc:
        raise ValueError(exc.message) from None


Number = Annotated[Decimal | None, BeforeValidator(number)]
Time = Annotated[datetime, BeforeValidator(_time)]
Text = Annotated[str, BeforeValidator(lambda v: "" if v is None else str(v).strip())]


class Row(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


@dataclass
class Parsed:
    """A file's rows as movements, plus what was skipped (by type) and not understood."""

    trades: list[Trade] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    unknown: dict[str, list[int]] = field(default_factory=dict)
    rows: int = 0

    def skip(self, what: str) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + 1

    def not_understood(self, what: str, line: int) -> None:
        self.unknown.setdefault(what, []).append(line)


# -- reading -------------------------------------------------------------------------------------
def read_rows(path: Path, header_has: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, cells by column) after the header line (the first line holding `header_has`)."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        names: list[str] | None = None
        try:
            for cells in reader:
                line = reader.line_num
                stripped = [c.strip() for c in cells]
                if names is None:
                    if all(h in stripped for h in header_has):
                        names = stripped
                    continue  # preamble lines before the header (Coinbase writes some)
                if not any(stripped):
                    continue
                if len(cells) != len(names):
                    raise InputError(
                        f"{path}:{line}: expected {len(names)} columns, found {len(cells)}"
                    )
                yield line, dict(zip(names, cells, strict=True))
        except csv.Error as exc:
            raise InputError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
        if names is None:
            raise InputError(
                f"{path}: no header line with {', '.join(header_has)}; is this the right export?"
            )


M = TypeVar("M", bound=Row)


def parse_row(model: type[M], cells: dict[str, str], path: Path, line: int) -> M:
    try:
        return model.model_validate(cells)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"{path}:{line}: column {where}: {msg}") from None


def _cost(amount: Decimal, price: Decimal) -> Decimal:
    return LEDGER_CONTEXT.multiply(amount, price).quantize(SCALE, context=LEDGER_CONTEXT)


def _price(cost: Decimal, amount: Decimal) -> Decimal:
    return LEDGER_CONTEXT.divide(cost, amount).quantize(SCALE, context=LEDGER_CONTEXT)


def make_trade(
    tid: str, when: datetime, base: str, quote: str, side: str, amount: Decimal, *,
    price: Decimal | None = None, cost: Decimal | None = None, fee: Decimal | None = None,
    fee_currency: str | None = None, order_id: str | None = None,
) -> Trade:  # fmt: skip
    if amount <= 0:
        raise ValueError(f"trade {tid}: amount must be greater than 0")
    if price is None:
        assert cost is not None
        price = _price(cost, amount)
    if cost is None:
        cost = _cost(amount, price)
    return Trade(
        id=tid, order_id=order_id or None, symbol=f"{base}/{quote}", side=side, amount=amount,
        price=price, cost=cost, fee=fee or ZERO,
        fee_currency=(fee_currency or quote) if fee else None, timestamp=when,
    )  # fmt: skip


def make_transfer(
    tid: str, kind: str, when: datetime, asset: str, amount: Decimal, fee: Decimal | None = None,
    fee_currency: str | None = None,
) -> Transfer:  # fmt: skip
    return Transfer(
        id=tid, kind=kind, asset=asset.upper(), amount=abs(amount), fee=fee or None,
        fee_currency=(fee_currency or asset.upper()) if fee else None, status="ok",
        timestamp=when,
    )  # fmt: skip


def income_note(what: str, usd: Decimal | None) -> str:
    basis = "" if usd is None else f"; cost_basis_usd={abs(usd).quantize(Decimal('0.01'))}"
    return f"{what} (income when received){basis}"

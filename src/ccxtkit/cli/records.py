"""One JSON shape per kind of record, used by every command's `--json` (docs/json.md).

Amounts are normalized decimal strings ("10", "0.5"), timestamps RFC 3339 with an explicit
offset, nested data as objects (never a JSON string inside JSON), order states spelled as
ccxt spells them (`canceled`).
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any


def decimal_str(value: Decimal) -> str:
    """A normalized decimal string: no exponent, no trailing zeros ("10", "0.5", "-3")."""
    if not value.is_finite():
        return str(value)
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def timestamp(value: datetime) -> str:
    """RFC 3339 with an explicit offset; a naive time is vhc's UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def jsonable(value: Any) -> Any:
    """Dataclasses, Decimals, times, paths and enums as JSON values in vhc's one vocabulary."""
    if is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in fields(value) if not f.name.startswith("_")]
        return {name: jsonable(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    return value


def nested(value: Any) -> Any:
    """A payload stored as JSON text (ledger details) as the object it holds."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value

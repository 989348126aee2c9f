"""The HTTP side of a request: its body under the size limit, its JSON, and every error's shape.

Every error answer has the seed's shape, and never a traceback:
`{"success": false, "error": {"message", "code", "statusCode", "timestamp", "details"}}`.
vhc's own errors map to a status by class (`status_of`); anything else is a 500 whose message
names only the exception's type (the log has the rest, redacted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ccxtkit.errors import (
    AuthorizationError,
    ConfigError,
    ExchangeError,
    FindingsError,
    InputError,
    KillSwitchActiveError,
    LedgerBusyError,
    LedgerIntegrityError,
    RiskLimitError,
    SecretsError,
    TokenError,
    UsageError,
    VhcError,
)
from ccxtkit.logs import redact
from ccxtkit.records import jsonable

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import JSONResponse


class ApiError(Exception):
    """An answer other than success: HTTP status, a stable code, a message, details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


@dataclass(frozen=True)
class Text:
    """A success answer that is not JSON (the metrics exposition)."""

    body: str
    media_type: str


#: vhc error class -> (HTTP status, code). The first class that matches wins (subclasses first).
_STATUS: list[tuple[type[VhcError], int, str]] = [
    (TokenError, 401, "UNAUTHORIZED"),
    (AuthorizationError, 403, "AUTHORIZATION_FAILED"),
    (RiskLimitError, 403, "RISK_VIOLATION"),
    (KillSwitchActiveError, 503, "KILL_SWITCH_ACTIVE"),
    (LedgerBusyError, 503, "LEDGER_BUSY"),
    (LedgerIntegrityError, 500, "LEDGER_INTEGRITY"),
    (SecretsError, 503, "SECRETS_UNAVAILABLE"),
    (ExchangeError, 502, "EXCHANGE_ERROR"),
    (FindingsError, 409, "CONFLICT"),
    (ConfigError, 422, "VALIDATION_ERROR"),
    (InputError, 422, "VALIDATION_ERROR"),
    (UsageError, 422, "VALIDATION_ERROR"),
]


def status_of(exc: VhcError) -> tuple[int, str]:
    """The HTTP status and error code of one of vhc's errors."""
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 400, "BAD_REQUEST"


def from_vhc(exc: VhcError) -> ApiError:
    """An ApiError for one of vhc's errors (its details kept, e.g. every risk check)."""
    status, code = status_of(exc)
    details = jsonable(exc.details) if exc.details else {}
    return ApiError(status, code, redact(exc.message), details if isinstance(details, dict) else {})


def now_text() -> str:
    """The current UTC time, RFC 3339 with milliseconds (the seed's `timestamp`)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_body(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The seed's error document."""
    return {
        "success": False,
        "error": {
            "message": message,
            "code": code,
            "statusCode": status,
            "timestamp": now_text(),
            "details": details if details is not None else {},
        },
    }


def error_response(err: ApiError) -> JSONResponse:
    """An ApiError as its JSON answer."""
    from starlette.responses import JSONResponse

    body = error_body(err.status, err.code, err.message, err.details)
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def too_large(limit: int) -> ApiError:
    """The 413 for a body over `serve.max_body_bytes`."""
    return ApiError(
        413,
        "PAYLOAD_TOO_LARGE",
        f"the request body is larger than {limit} bytes (serve.max_body_bytes)",
        {"max_bytes": limit},
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused (413) as soon as it passes `limit` bytes, declared or streamed."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large(limit)
        except ValueError:
            raise ApiError(400, "BAD_REQUEST", "Content-Length is not a number") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class JsonNumber(str):
    """A JSON number, kept as its text (money never passes through a float)."""

    __slots__ = ()


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, else 400 (not JSON) or 422 (JSON, but not an object)."""
    try:
        doc = json.loads(raw.decode("utf-8"), parse_float=JsonNumber, parse_int=JsonNumber)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "BAD_REQUEST", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(422, "VALIDATION_ERROR", "the body must be a JSON object")
    return doc


def field(
    doc: dict[str, Any], name: str, required: bool = True, number: bool = False
) -> str | None:
    """A text field of a request body, else 422; a `number` field may also be a JSON number
    (taken as its text, e.g. "0.01"), a text field may not."""
    value = doc.get(name)
    if value is None:
        if required:
            raise ApiError(422, "VALIDATION_ERROR", f"field {name!r} is required", {"field": name})
        return None
    if not isinstance(value, str) or (isinstance(value, JsonNumber) and not number):
        kind = "a number or a string holding one" if number else "a string"
        raise ApiError(422, "VALIDATION_ERROR", f"field {name!r} must be {kind}", {"field": name})
    return str(value)

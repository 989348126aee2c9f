"""Receiving one webhook delivery: verify, parse, refuse or queue; one answer, one audit row.

`receive` is what `vhc serve` calls for `POST /api/v1/signals/<source>/webhook`. It never
raises and never returns a traceback: every outcome is an `IntakeAnswer` with the HTTP status
and the JSON body of DESIGN.md ("Signals and serve"):

- 202 `{"success": true, "signal_id", "status": "queued"}`: accepted; the signal is in the
  ledger (committed) before this answer exists;
- 200 with the first delivery's answer for a signal id seen before (never queued twice);
- 401 bad or missing credential, 403 chat or address not allowed, 404 unknown source,
  409 too old, 413 body too large, 422 invalid body, 503 kill switch active (or ledger busy),
  500 source misconfigured; the error body is the seed's
  `{"success": false, "error": {"message", "code", "statusCode", "timestamp", "details"}}`.

Every refusal writes one `signal.refused` control event (the body's SHA-256 and size, never
the body: a TradingView body carries its passphrase); every acceptance writes the signal's
`received` and `parsed` rows.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import SignalSource
from ..errors import LedgerBusyError, VhcError
from ..ledger.store import Ledger
from ..logs import log
from ..risk import switch_state
from ..workspace import Workspace
from . import parse, store
from .credentials import SourceCredentials, source_credentials
from .parse import BadSignal, Parsed

#: A signal dated this far ahead of our clock is refused (clock skew allowed).
MAX_FUTURE = timedelta(seconds=60)

SHEETS_KEY_HEADER = "x-api-key"
SHEETS_SIGNATURE_HEADER = "x-signature"
TELEGRAM_SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 - a header name


@dataclass
class IntakeAnswer:
    """The HTTP status and JSON body to answer a webhook delivery with."""

    status: int
    body: dict[str, Any]


class _Refusal(Exception):
    """A delivery refused with `status` and an error `code`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        external_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.external_id = external_id


def rfc3339(moment: datetime) -> str:
    """Milliseconds and a Z, like the seed's error timestamps."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def error_body(
    status: int, code: str, message: str, now: datetime, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The seed's error body (serve uses it for its own errors too)."""
    return {
        "success": False,
        "error": {
            "message": message,
            "code": code,
            "statusCode": status,
            "timestamp": rfc3339(now),
            "details": details or {},
        },
    }


def receive(
    ws: Workspace,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    remote_ip: str | None = None,
    now: datetime | None = None,
) -> IntakeAnswer:
    """Verify, parse and queue one delivery from `source` (its name under `signals.sources`)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    digest = hashlib.sha256(body).hexdigest()
    audit = {"body_sha256": digest, "body_bytes": len(body), "remote_ip": remote_ip}
    try:
        return _receive(ws, source, lowered, body, remote_ip, moment, audit)
    except _Refusal as refusal:
        _record_refusal(ws, source, refusal, audit, moment, None)
        return _refused(refusal, moment)
    except LedgerBusyError as exc:
        log.warning("signal from %s not taken: %s", source, exc.message)
        return IntakeAnswer(
            503, error_body(503, "LEDGER_BUSY", "the ledger is busy; send it again", moment)
        )
    except Exception:  # the boundary of a web request: log it, answer, never a traceback
        log.exception("signal intake from %s failed", source)
        return IntakeAnswer(
            500, error_body(500, "INTERNAL_ERROR", "the signal could not be taken", moment)
        )


def _refused(refusal: _Refusal, moment: datetime) -> IntakeAnswer:
    return IntakeAnswer(
        refusal.status,
        error_body(refusal.status, refusal.code, refusal.message, moment, refusal.details),
    )


def _receive(
    ws: Workspace,
    source: str,
    headers: dict[str, str],
    body: bytes,
    remote_ip: str | None,
    now: datetime,
    audit: dict[str, Any],
) -> IntakeAnswer:
    cfg = ws.config.signals.sources.get(source)
    if cfg is None:
        raise _Refusal(404, "NOT_FOUND", f"no signal source named {source!r}")
    if len(body) > parse.MAX_BODY_BYTES:
        raise _Refusal(
            413, "PAYLOAD_TOO_LARGE", f"the body is larger than {parse.MAX_BODY_BYTES} bytes"
        )
    creds = _credentials(ws, source, cfg)
    parsed = _verify_and_parse(cfg, creds, headers, body, remote_ip)
    exchange = _target(ws, cfg, parsed)
    signal_id = store.signal_id_for(source, parsed.external_id)
    with ws.open_ledger() as ledger:
        first = store.first_answer(ledger, signal_id)
        if first is not None:
            store.add_event(
                ledger, signal_id, "duplicate", details={**audit}, now=now
            )  # the repeat is on the record too; nothing new is queued
            return IntakeAnswer(200, first)
        try:
            _check_fresh(ws, parsed, now)
            _check_switch(ws, ledger)
        except _Refusal as refusal:
            refusal.external_id = parsed.external_id
            _record_refusal(ws, source, refusal, audit, now, ledger)
            return _refused(refusal, now)
        answer = {"success": True, "signal_id": signal_id, "status": "queued"}
        _accept(ledger, source, cfg, parsed, exchange, signal_id, answer, audit, now)
    log.info(
        "signal %s from %s queued: %s %s %s on %s",
        signal_id, source, parsed.side, parsed.amount, parsed.symbol, exchange,
    )  # fmt: skip
    return IntakeAnswer(202, answer)


def _credentials(ws: Workspace, source: str, cfg: SignalSource) -> SourceCredentials:
    try:
        return source_credentials(ws, source, cfg)
    except VhcError as exc:
        log.error("signal source %s has no usable credentials: %s", source, exc.message)
        raise _Refusal(
            500,
            "SOURCE_NOT_CONFIGURED",
            f"signal source {source!r} has no credentials on this server",
        ) from None


def _same(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two texts (False when either is missing)."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _unauthorized(what: str) -> _Refusal:
    return _Refusal(401, "UNAUTHORIZED", what)


def _bad(exc: BadSignal) -> _Refusal:
    return _Refusal(422, "VALIDATION_ERROR", exc.message, exc.details)


def _verify_and_parse(
    cfg: SignalSource,
    creds: SourceCredentials,
    headers: dict[str, str],
    body: bytes,
    remote_ip: str | None,
) -> Parsed:
    if cfg.kind == "sheets":
        if not _same(headers.get(SHEETS_KEY_HEADER), creds.key):
            raise _unauthorized("missing or wrong X-API-Key")
        signature = headers.get(SHEETS_SIGNATURE_HEADER, "").strip().lower()
        signature = signature.removeprefix("sha256=")
        expected = hmac.new(creds.secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        if not _same(signature, expected):
            raise _unauthorized("missing or wrong X-Signature (hex HMAC-SHA256 of the raw body)")
        try:
            return parse.parse_sheets(parse.load_json(body))
        except BadSignal as exc:
            raise _bad(exc) from None
    if cfg.kind == "telegram":
        if not _same(headers.get(TELEGRAM_SECRET_HEADER), creds.secret):
            raise _unauthorized("missing or wrong X-Telegram-Bot-Api-Secret-Token")
        try:
            chat_id, message_id, date, text = parse.telegram_message(parse.load_json(body))
        except BadSignal as exc:
            raise _bad(exc) from None
        if chat_id not in {str(c) for c in cfg.chat_ids}:
            raise _Refusal(403, "FORBIDDEN", f"chat {chat_id} may not send signals")
        try:
            return parse.parse_telegram_text(text, chat_id, message_id, date)
        except BadSignal as exc:
            raise _bad(exc) from None
    # tradingview: no headers can be set there; an optional address allowlist, the passphrase
    if cfg.ip_allowlist and not _allowed(remote_ip, cfg.ip_allowlist):
        raise _Refusal(403, "FORBIDDEN", f"address {remote_ip or 'unknown'} may not send signals")
    try:
        data = parse.load_json(body)
    except BadSignal as exc:
        raise _bad(exc) from None
    passphrase = data.get("passphrase")
    if not isinstance(passphrase, str) or not _same(passphrase, creds.secret):
        raise _unauthorized("missing or wrong passphrase")
    try:
        return parse.parse_tradingview(data, "tv-" + hashlib.sha256(body).hexdigest()[:32])
    except BadSignal as exc:
        raise _bad(exc) from None


def _allowed(remote_ip: str | None, allowlist: list[str]) -> bool:
    if not remote_ip:
        return False
    try:
        address = ipaddress.ip_address(remote_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in allowlist)


def _target(ws: Workspace, cfg: SignalSource, parsed: Parsed) -> str:
    """The account the signal trades on: the one it names if configured, else the source's."""
    accounts = ws.config.exchanges
    named = parsed.venue
    if named is not None:
        for name in accounts:
            if name.lower() == named.lower():
                return _usable(ws, name, parsed)
    if cfg.exchange is None:
        known = ", ".join(sorted(accounts)) or "none"
        raise _Refusal(
            422,
            "VALIDATION_ERROR",
            f"exchange {named!r} is not an account here (accounts: {known}) and the source "
            "names none (signals.sources.<name>.exchange)",
            {"field": "exchange"},
        )
    return _usable(ws, cfg.exchange, parsed)


def _usable(ws: Workspace, account: str, parsed: Parsed) -> str:
    ex = ws.config.exchanges.get(account)
    if ex is None or not ex.enabled:
        raise _Refusal(
            422, "VALIDATION_ERROR", f"account {account!r} is not an enabled exchange account"
        )
    if "/" not in parsed.symbol:
        raise _Refusal(
            422,
            "UNKNOWN_SYMBOL",
            f"symbol {parsed.symbol!r} is not a market vhc can trade on {account}: "
            "write it as BASE/QUOTE, e.g. BTC/USD",
            {"field": "symbol"},
        )
    return account


def _check_fresh(ws: Workspace, parsed: Parsed, now: datetime) -> None:
    max_age = ws.config.signals.max_age_seconds
    age = (now - parsed.signal_time).total_seconds()
    if age > max_age:
        raise _Refusal(
            409,
            "SIGNAL_TOO_OLD",
            f"the signal is {int(age)} s old; signals older than {max_age} s are refused",
            {"age_seconds": int(age), "max_age_seconds": max_age},
        )
    if parsed.signal_time - now > MAX_FUTURE:
        raise _Refusal(
            422,
            "VALIDATION_ERROR",
            "the signal's timestamp is in the future (check the sender's clock)",
            {"field": "timestamp"},
        )


def _check_switch(ws: Workspace, ledger: Ledger) -> None:
    try:
        active = switch_state.check_recorded(ws, ledger).active
    except VhcError:  # a switch that cannot be read blocks trading
        active = True
    if active:
        raise _Refusal(503, "KILL_SWITCH_ACTIVE", "the kill switch is active: no signals are taken")


def _accept(
    ledger: Ledger,
    source: str,
    cfg: SignalSource,
    parsed: Parsed,
    exchange: str,
    signal_id: str,
    answer: dict[str, Any],
    audit: dict[str, Any],
    now: datetime,
) -> None:
    import json

    with ledger.transaction():
        store.add_event(
            ledger,
            signal_id,
            "received",
            "received",
            details={**audit, "source": source, "external_id": parsed.external_id},
            now=now,
        )
        ledger.append(
            "signals",
            [
                {
                    "timestamp": now,
                    "signal_id": signal_id,
                    "source": source,
                    "kind": cfg.kind,
                    "external_id": parsed.external_id,
                    "signal_time": parsed.signal_time,
                    "exchange": exchange,
                    "symbol": parsed.symbol,
                    "side": parsed.side,
                    "type": parsed.type,
                    "amount": parsed.amount,
                    "price": parsed.price,
                    "product": parsed.product,
                    "chat_id": parsed.chat_id,
                    "message_id": parsed.message_id,
                    "remote_ip": audit.get("remote_ip"),
                    "answer": json.dumps(answer, sort_keys=True),
                }
            ],
        )
        store.add_event(
            ledger,
            signal_id,
            "parsed",
            "queued",
            details={"venue": parsed.venue, "exchange": exchange},
            now=now,
        )


def _record_refusal(
    ws: Workspace,
    source: str,
    refusal: _Refusal,
    audit: dict[str, Any],
    now: datetime,
    ledger: Ledger | None,
) -> None:
    """One `signal.refused` control event; a busy ledger is logged, the answer still goes out."""
    details = {
        **audit,
        "status": refusal.status,
        "code": refusal.code,
        "reason": refusal.message,
        "external_id": refusal.external_id,
    }
    log.warning("signal from %s refused (%s): %s", source, refusal.status, refusal.message)
    try:
        if ledger is not None:
            ledger.record_event("signal.refused", details, actor="signals", subject=source)
            return
        with ws.open_ledger() as opened:
            opened.record_event("signal.refused", details, actor="signals", subject=source)
    except VhcError as exc:
        log.error("refused signal from %s not recorded: %s", source, exc.message)

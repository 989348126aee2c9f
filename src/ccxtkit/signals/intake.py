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
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    """Verify, parse and queue one delivery from `source` (its name under `signals.sources`).

    Safe to call from many threads at once: concurrent deliveries to one workspace are
    committed together, in one ledger visit (group commit), and each caller gets its own
    answer only after that commit.
    """
    try:
        item = _prepare(ws, source, headers, body, remote_ip, now)
        return _batcher(ws).commit(item)
    except Exception:  # the boundary of a web request: log it, answer, never a traceback
        log.exception("signal intake from %s failed", source)
        return _internal(datetime.now(UTC))


def receive_many(ws: Workspace, deliveries: list[Delivery]) -> list[IntakeAnswer]:
    """Several deliveries in one ledger visit (answers in the same order)."""
    items = [_prepare(ws, d.source, d.headers, d.body, d.remote_ip, d.now) for d in deliveries]
    _commit_items(ws, items)
    return [i.answer or _internal(i.now) for i in items]


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery, for `receive_many`."""

    source: str
    headers: Mapping[str, str]
    body: bytes
    remote_ip: str | None = None
    now: datetime | None = None


@dataclass
class _Item:
    """A delivery between its checks (no ledger) and its commit (one ledger visit)."""

    source: str
    now: datetime
    audit: dict[str, Any]
    refusal: _Refusal | None = None
    cfg: SignalSource | None = None
    parsed: Parsed | None = None
    exchange: str | None = None
    signal_id: str | None = None
    answer: IntakeAnswer | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _internal(now: datetime) -> IntakeAnswer:
    return IntakeAnswer(
        500, error_body(500, "INTERNAL_ERROR", "the signal could not be taken", now)
    )


def _prepare(
    ws: Workspace,
    source: str,
    headers: Mapping[str, str],
    body: bytes,
    remote_ip: str | None,
    now: datetime | None,
) -> _Item:
    """Everything that needs no ledger: the source, the credential, the body, the account."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    digest = hashlib.sha256(body).hexdigest()
    audit = {"body_sha256": digest, "body_bytes": len(body), "remote_ip": remote_ip}
    item = _Item(source, moment, audit)
    try:
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        cfg = ws.config.signals.sources.get(source)
        if cfg is None:
            raise _Refusal(404, "NOT_FOUND", f"no signal source named {source!r}")
        if len(body) > parse.MAX_BODY_BYTES:
            raise _Refusal(
                413, "PAYLOAD_TOO_LARGE", f"the body is larger than {parse.MAX_BODY_BYTES} bytes"
            )
        _policy_approved(ws)
        creds = _credentials(ws, source, cfg)
        item.cfg = cfg
        item.parsed = _verify_and_parse(cfg, creds, lowered, body, remote_ip)
        item.exchange = _target(ws, cfg, item.parsed)
        item.signal_id = store.signal_id_for(source, item.parsed.external_id)
    except _Refusal as refusal:
        if item.parsed is not None:
            refusal.external_id = item.parsed.external_id
        item.refusal = refusal
    except Exception:  # the boundary of a web request: log it, answer, never a traceback
        log.exception("signal intake from %s failed", source)
        item.answer = _internal(moment)
    return item


def _policy_approved(ws: Workspace) -> None:
    """A source added (or loosened) in the file without an approver's code takes no signal."""
    from ccxtkit.errors import AuthorizationError
    from ccxtkit.policy.service import enforce_policy

    try:
        enforce_policy(ws)  # once per process and config: cheap after the first delivery
    except AuthorizationError as exc:
        raise _Refusal(403, "POLICY_NOT_APPROVED", exc.message) from None


@dataclass
class _Rows:
    """The batch's rows, appended per table at the end (one insert each)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    control: list[dict[str, Any]] = field(default_factory=list)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # seen before, or now

    def write(self, ledger: Ledger) -> None:
        for table, rows in (
            ("signal_events", self.events),
            ("signals", self.signals),
            ("control_events", self.control),
        ):
            ledger.append(table, rows)


def _commit_items(ws: Workspace, items: list[_Item]) -> None:
    """One ledger visit for the batch: refusals recorded, duplicates answered, the rest queued."""
    todo = [i for i in items if i.answer is None]
    if not todo:
        return
    try:
        with ws.open_ledger() as ledger, ledger.transaction():
            rows = _Rows()
            ids = [i.signal_id for i in todo if i.refusal is None and i.signal_id]
            rows.answers = store.first_answers(ledger, ids)
            switch = _switch_refusal(ws, ledger) if ids else None
            for item in todo:
                if item.refusal is None:
                    _decide(ws, rows, item, switch)
                if item.refusal is not None:
                    rows.control.append(_refusal_row(item))
                    item.answer = _refused(item.refusal, item.now)
            rows.write(ledger)
    except LedgerBusyError as exc:
        log.warning("signals not taken (%d): %s", len(todo), exc.message)
        _uncommitted(todo, 503, "LEDGER_BUSY", "the ledger is busy; send it again")
        return
    except Exception:  # nothing of the batch was committed
        log.exception("signal intake: the batch of %d was not committed", len(todo))
        _uncommitted(todo, 500, "INTERNAL_ERROR", "the signal could not be taken")
        return
    queued = sum(1 for i in todo if i.answer is not None and i.answer.status == 202)
    if queued:
        from .wake import notify_queued

        notify_queued(queued)  # one worker per signal
    for item in todo:
        if item.refusal is None and item.answer is not None and item.answer.status == 202:
            p = item.parsed
            assert p is not None
            log.info(
                "signal %s from %s queued: %s %s %s on %s",
                item.signal_id, item.source, p.side, p.amount, p.symbol, item.exchange,
            )  # fmt: skip
        elif item.refusal is not None:
            log.warning(
                "signal from %s refused (%s): %s",
                item.source, item.refusal.status, item.refusal.message,
            )  # fmt: skip


def _uncommitted(items: list[_Item], status: int, code: str, message: str) -> None:
    """After a failed commit: a refusal is still answered as one (its audit row is lost, and
    logged); nothing is answered as accepted."""
    for item in items:
        if item.refusal is not None:
            log.error("refused signal from %s not recorded: %s", item.source, message)
            item.answer = _refused(item.refusal, item.now)
        elif item.answer is None or item.answer.status == 202:
            item.answer = IntakeAnswer(status, error_body(status, code, message, item.now))


def _decide(ws: Workspace, rows: _Rows, item: _Item, switch: _Refusal | None) -> None:
    """Inside the visit: a repeat gets the first answer; old or switched-off is refused."""
    assert item.signal_id is not None and item.parsed is not None and item.cfg is not None
    first = rows.answers.get(item.signal_id)
    if first is not None:
        # The repeat is on the record too; nothing new is queued.
        rows.events.append(
            store.event_row(item.signal_id, "duplicate", details=item.audit, now=item.now)
        )
        item.answer = IntakeAnswer(200, first)
        return
    try:
        _check_fresh(ws, item.parsed, item.now)
        if switch is not None:
            raise switch
    except _Refusal as refusal:
        item.refusal = _Refusal(
            refusal.status, refusal.code, refusal.message, refusal.details, item.parsed.external_id
        )
        return
    answer = {"success": True, "signal_id": item.signal_id, "status": "queued"}
    _accept(rows, item, answer)
    rows.answers[item.signal_id] = answer
    item.answer = IntakeAnswer(202, answer)


class _Batcher:
    """Group commit: a caller that finds no commit running commits everything waiting.

    The others sleep on a condition until the commit running ends (no polling): then each
    whose delivery was in it returns its answer, and one of the rest commits the next batch.
    """

    MAX_BATCH = 500

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._busy = False
        self._pending: list[_Item] = []

    def commit(self, ws: Workspace, item: _Item) -> IntakeAnswer:
        if item.answer is not None:
            return item.answer
        with self._cv:
            self._pending.append(item)
            while not item.done.is_set():
                if self._busy:
                    self._cv.wait()
                    continue
                self._busy = True
                batch = self._pending[: self.MAX_BATCH]
                del self._pending[: self.MAX_BATCH]
                self._cv.release()  # the commit runs outside the lock; deliveries keep queuing
                try:
                    _commit_items(ws, batch)
                finally:
                    for waiting in batch:
                        if waiting.answer is None:
                            waiting.answer = _internal(waiting.now)
                        waiting.done.set()
                    self._cv.acquire()
                    self._busy = False
                    self._cv.notify_all()
        assert item.answer is not None
        return item.answer


_batchers: dict[tuple[str, str], _Batcher] = {}
_batchers_lock = threading.Lock()


def _batcher(ws: Workspace) -> _BatcherFor:
    key = (str(ws.home), str(ws.config_path))
    with _batchers_lock:
        found = _batchers.get(key)
        if found is None:
            found = _batchers[key] = _Batcher()
    return _BatcherFor(found, ws)


@dataclass(frozen=True)
class _BatcherFor:
    batcher: _Batcher
    ws: Workspace

    def commit(self, item: _Item) -> IntakeAnswer:
        return self.batcher.commit(self.ws, item)


def _refused(refusal: _Refusal, moment: datetime) -> IntakeAnswer:
    return IntakeAnswer(
        refusal.status,
        error_body(refusal.status, refusal.code, refusal.message, moment, refusal.details),
    )


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
    if cfg.ip_allowlist and not _allowed(remote_ip, cfg.ip_allowlist):
        raise _Refusal(403, "FORBIDDEN", f"address {remote_ip or 'unknown'} may not send signals")
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
    # tradingview: no headers can be set there; the passphrase rides in the body
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


def _switch_refusal(ws: Workspace, ledger: Ledger) -> _Refusal | None:
    try:
        active = switch_state.check_recorded(ws, ledger).active
    except VhcError:  # a switch that cannot be read blocks trading
        active = True
    if not active:
        return None
    return _Refusal(503, "KILL_SWITCH_ACTIVE", "the kill switch is active: no signals are taken")


def _accept(rows: _Rows, item: _Item, answer: dict[str, Any]) -> None:
    parsed, cfg, signal_id = item.parsed, item.cfg, item.signal_id
    assert parsed is not None and cfg is not None and signal_id is not None
    details = {**item.audit, "source": item.source, "external_id": parsed.external_id}
    rows.events.append(
        store.event_row(signal_id, "received", "received", details=details, now=item.now)
    )
    rows.signals.append(
        {
            "timestamp": item.now,
            "signal_id": signal_id,
            "source": item.source,
            "kind": cfg.kind,
            "external_id": parsed.external_id,
            "signal_time": parsed.signal_time,
            "exchange": item.exchange,
            "symbol": parsed.symbol,
            "side": parsed.side,
            "type": parsed.type,
            "amount": parsed.amount,
            "price": parsed.price,
            "product": parsed.product,
            "chat_id": parsed.chat_id,
            "message_id": parsed.message_id,
            "remote_ip": item.audit.get("remote_ip"),
            "answer": json.dumps(answer, sort_keys=True),
        }
    )
    queued = {"venue": parsed.venue, "exchange": item.exchange}
    rows.events.append(store.event_row(signal_id, "parsed", "queued", details=queued, now=item.now))


def _refusal_row(item: _Item) -> dict[str, Any]:
    """The `signal.refused` control event of a refused delivery."""
    refusal = item.refusal
    assert refusal is not None
    details = {
        **item.audit,
        "status": refusal.status,
        "code": refusal.code,
        "reason": refusal.message,
        "external_id": refusal.external_id,
    }
    return {
        "timestamp": item.now,
        "kind": "signal.refused",
        "actor": "signals",
        "subject": item.source,
        "details": json.dumps(details, sort_keys=True, default=str),
    }

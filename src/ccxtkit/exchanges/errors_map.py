"""ccxt's exceptions become vhc errors here, and the retry policy decides what may be repeated.

Only calls that are safe to repeat (reads, cancels) are retried, and only on transient
failures. `create_order` and `withdraw` are sent once: a timeout there means "maybe it
happened", which is an `OutcomeUnknown` for the caller to resolve by looking it up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypeVar

from ccxtkit.errors import (
    ExchangeAuthError,
    ExchangeError,
    OrderOutcomeUnknown,
    OutcomeUnknown,
    WithdrawalOutcomeUnknown,
)
from ccxtkit.logs import log, redact
from ccxtkit.money import fmt

T = TypeVar("T")

#: ccxt exception names retried on safe calls (the class or any subclass).
RETRYABLE = ("NetworkError", "RateLimitExceeded", "DDoSProtection", "ExchangeNotAvailable")
_MAX_DETAIL = 300


class ExchangeOrderNotFound(ExchangeError):
    """The exchange does not know the order id (exit 5)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for safe calls: tries in all, base_delay doubling up to max_delay."""

    tries: int = 3
    base_delay: float = 0.2
    max_delay: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))


@dataclass(frozen=True)
class CallContext:
    """What a call was about, so an error can say so: account, action, symbol, side, amount."""

    account: str
    action: str
    symbol: str | None = None
    side: str | None = None
    amount: Decimal | None = None

    def describe(self) -> str:
        """e.g. `kraken: create_order buy 0.1 BTC/USD`."""
        parts = [self.action]
        if self.side:
            parts.append(self.side)
        if self.amount is not None:
            parts.append(fmt(self.amount))
        if self.symbol:
            parts.append(self.symbol)
        return f"{self.account}: {' '.join(parts)}"


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def is_ccxt_error(exc: BaseException) -> bool:
    """True for ccxt's own exception classes (without importing ccxt)."""
    return any(cls.__module__.startswith("ccxt") for cls in type(exc).__mro__[:-2])


def is_retryable(exc: BaseException) -> bool:
    """Transient network-side failures: worth repeating a safe call."""
    return is_ccxt_error(exc) and bool(_names(exc) & set(RETRYABLE))


def _detail(exc: BaseException) -> str:
    text = redact(" ".join(str(exc).split()))
    return text[:_MAX_DETAIL] + ("..." if len(text) > _MAX_DETAIL else "")


def map_error(exc: BaseException, ctx: CallContext, tries: int = 1) -> ExchangeError:
    """The vhc error for a ccxt exception, with the exchange's message and the call's context."""
    names = _names(exc)
    kind = type(exc).__name__
    where = ctx.describe()
    detail = _detail(exc)
    if names & {"AuthenticationError", "PermissionDenied", "AccountSuspended"}:
        return ExchangeAuthError(
            f"{where}: the exchange refused the API key ({kind}: {detail}); "
            f"check it with `vhc secrets check {ctx.account}` and its permissions on the exchange"
        )
    if "OrderNotFound" in names and ctx.action not in ("create_order", "withdraw"):
        return ExchangeOrderNotFound(f"{where}: the exchange does not know this order ({detail})")
    if "InsufficientFunds" in names:
        return ExchangeError(f"{where}: insufficient funds ({detail})")
    if names & {"InvalidOrder", "BadRequest", "BadSymbol", "InvalidAddress", "OperationRejected"}:
        return ExchangeError(f"{where}: rejected by the exchange ({kind}: {detail})")
    if "NetworkError" in names:
        after = f" after {tries} tries" if tries > 1 else ""
        return ExchangeError(
            f"{where}: the exchange did not answer{after} ({kind}: {detail}); try again later"
        )
    return ExchangeError(f"{where}: {kind}: {detail}")


def call_safe(fn: Callable[[], T], ctx: CallContext, policy: RetryPolicy) -> T:
    """Run a call that is safe to repeat, retrying transient failures with backoff."""
    attempt = 1
    while True:
        try:
            return fn()
        except ExchangeError:
            raise
        except Exception as exc:
            if not is_ccxt_error(exc):
                # ccxt choked on a reply it did not expect: keep the traceback in the log.
                log.exception("%s: unexpected failure", ctx.describe())
                raise ExchangeError(
                    f"{ctx.describe()}: unexpected reply ({type(exc).__name__}: {_detail(exc)})"
                ) from None
            if is_retryable(exc) and attempt < policy.tries:
                wait = policy.delay(attempt)
                log.warning(
                    "%s: %s (attempt %d of %d), retrying in %.2fs",
                    ctx.describe(),
                    type(exc).__name__,
                    attempt,
                    policy.tries,
                    wait,
                )
                policy.sleep(wait)
                attempt += 1
                continue
            raise map_error(exc, ctx, attempt) from None


def call_once(fn: Callable[[], T], ctx: CallContext, unknown: type[OutcomeUnknown]) -> T:
    """Run a call that must never be repeated; a lost answer raises `unknown`, never a retry."""
    try:
        return fn()
    except ExchangeError:
        raise
    except Exception as exc:
        names = _names(exc)
        # NetworkError: no answer (or an answer we cannot trust, e.g. InvalidNonce after
        # a dropped reply). BadResponse: the exchange answered but we could not read it.
        # Anything not from ccxt broke while reading the reply. In all three the request
        # may have been executed.
        if not is_ccxt_error(exc) or names & {"NetworkError", "BadResponse", "OperationFailed"}:
            what = "order" if unknown is OrderOutcomeUnknown else "withdrawal"
            raise unknown(
                f"{ctx.describe()}: no reliable answer ({type(exc).__name__}: {_detail(exc)}); "
                f"the {what} may have been placed: look it up before sending it again "
                "(`vhc trade recover`)"
            ) from None
        raise map_error(exc, ctx) from None


def call_create(fn: Callable[[], T], ctx: CallContext) -> T:
    """create_order: sent once."""
    return call_once(fn, ctx, OrderOutcomeUnknown)


def call_withdraw(fn: Callable[[], T], ctx: CallContext) -> T:
    """withdraw: sent once."""
    return call_once(fn, ctx, WithdrawalOutcomeUnknown)

"""Every error vhc raises on purpose. Each class carries the exit code of DESIGN.md."""

from __future__ import annotations

from typing import Any


class VhcError(Exception):
    """Base class: a message a user can act on, and the process exit code."""

    exit_code = 2
    #: Extra fields for the `--json` error object (e.g. every risk check of a refusal).
    details: dict[str, Any] | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class FindingsError(VhcError):
    """The command completed, with findings that need a person (exit 1)."""

    exit_code = 1


class UsageError(VhcError):
    """Bad usage or bad input (exit 2)."""

    exit_code = 2


class ConfigError(VhcError):
    """The config file is missing, unreadable or invalid (exit 2)."""

    exit_code = 2


class InputError(VhcError):
    """An imported file or argument is invalid (exit 2)."""

    exit_code = 2


class UnsafePermissionsError(VhcError):
    """A file holding config, keys or the ledger is readable by others (exit 2)."""

    exit_code = 2


class RiskLimitError(VhcError):
    """A pre-trade risk limit refused the action (exit 3)."""

    exit_code = 3


class KillSwitchActiveError(VhcError):
    """The kill switch is active: no new orders or withdrawals (exit 4)."""

    exit_code = 4


class ExchangeError(VhcError):
    """An exchange could not be reached, refused us, or rejected the request (exit 5)."""

    exit_code = 5


class ExchangeAuthError(ExchangeError):
    """The exchange refused our credentials (exit 5)."""


class OutcomeUnknown(ExchangeError):
    """An order or withdrawal got no answer: it may have happened. Look it up; never resend blindly."""


class OrderOutcomeUnknown(OutcomeUnknown):
    """create_order timed out or lost its connection: find the order by client id (exit 5)."""


class OrderLookupUnproven(OrderOutcomeUnknown):
    """The order was not found and the exchange cannot prove it absent: it stays unknown (exit 5)."""


class WithdrawalOutcomeUnknown(OutcomeUnknown):
    """withdraw timed out or lost its connection: check the exchange's withdrawals (exit 5)."""


class SecretsError(VhcError):
    """A secret could not be resolved from its backend (exit 5 for a backend that is down)."""

    exit_code = 5


class LedgerIntegrityError(VhcError):
    """The ledger's hash chain is broken or does not extend a digest (exit 6)."""

    exit_code = 6


class LedgerBusyError(VhcError):
    """Another vhc process holds the ledger lock past the wait (exit 7)."""

    exit_code = 7


class AuthorizationError(VhcError):
    """A 2FA code is wrong or reused, or an address is not allowlisted (exit 8)."""

    exit_code = 8


class TokenError(VhcError):
    """An API token is missing, not valid, expired, revoked or not on the record (exit 8)."""

    exit_code = 8

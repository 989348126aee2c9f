"""API tokens for `vhc serve`: signed JWTs whose creation and revocation are ledger events.

- A token is an HS256 JWT (`iss` vhc, `sub` its name, `role`, `jti`, `iat`, `exp`) signed with
  the named secret `serve.jwt_key_secret` (default `serve_jwt_key`), created in the secrets
  backend on first use (with backend `env`: export `VHC_SERVE_JWT_KEY`).
- The token table is derived from `control_events`: `serve.token_created` (name, role, jti,
  expiry; never the token itself) and `serve.token_revoked` (name, jti). There is no table of
  its own, so the chain is the only record of who could call the API when.
- A request's token must verify (signature, issuer, expiry) AND its jti must be on the record,
  unrevoked and unexpired there too: a token signed with the key but never recorded (or
  recorded in another ledger) is refused, and so is one revoked a moment ago by another process.
- Roles are ordered: viewer < trader < admin; each role may do what the ones below it may.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from ccxtkit.errors import TokenError, UsageError
from ccxtkit.ledger.store import Ledger
from ccxtkit.workspace import Workspace

Role = Literal["viewer", "trader", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "trader", "admin")
CREATED = "serve.token_created"
REVOKED = "serve.token_revoked"
ISSUER = "vhc"
ALGORITHM = "HS256"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TTL = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class TokenRecord:
    """One token as the ledger knows it (never the token itself)."""

    name: str
    role: Role
    jti: str
    created_at: datetime  # UTC, aware
    expires_at: datetime  # UTC, aware
    created_by: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def status(self, now: datetime) -> Literal["active", "expired", "revoked"]:
        """Revoked beats expired: a revoked token never comes back."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"


@dataclass(frozen=True)
class IssuedToken:
    """A freshly created token: shown once, then only its record remains."""

    record: TokenRecord
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken(record={self.record!r}, token=***)"


def role_allows(role: str, needed: Role) -> bool:
    """Whether `role` may do what `needed` may (viewer < trader < admin)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def parse_role(text: str) -> Role:
    """admin | trader | viewer (any case), or a clear error."""
    role = text.strip().lower()
    if role not in ROLES:
        raise UsageError(f"unknown role {text!r}: use admin, trader or viewer")
    return role


def parse_ttl(text: str, max_days: int) -> timedelta:
    """`30d`, `12h`, `90m`, `2w`, `3600s` (or combined, `1d12h`) as a timedelta within limits."""
    spec = text.strip().lower()
    parts = _TTL.findall(spec)
    if not spec or not parts or _TTL.sub("", spec).strip():
        raise UsageError(f"--ttl {text!r} is not a duration: use e.g. 30d, 12h, 90m or 2w")
    ttl = timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    if ttl < timedelta(minutes=1):
        raise UsageError(f"--ttl {text!r} is shorter than a minute")
    if ttl > timedelta(days=max_days):
        raise UsageError(
            f"--ttl {text!r} is longer than serve.max_token_ttl_days ({max_days} days)"
        )
    return ttl


def check_token_name(name: str) -> str:
    """Token names appear in logs and the ledger: keep them plain."""
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"token name {name!r} may hold only letters, digits, '_', '-' and '.' "
            "(up to 64, starting with a letter or digit)"
        )
    return name


def _aware(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def token_table(ledger: Ledger) -> list[TokenRecord]:
    """Every token ever created, oldest first, with its revocation if any (from the chain)."""
    rows = ledger.query(
        "SELECT kind, actor, recorded_at, details FROM control_events WHERE kind IN (?, ?) "
        "ORDER BY seq",
        [CREATED, REVOKED],
    )
    created: dict[str, TokenRecord] = {}
    for kind, actor, recorded_at, text in rows:
        d = json.loads(text or "{}")
        jti = str(d.get("jti", ""))
        if kind == CREATED and d.get("role") in ROLES and jti not in created:
            created[jti] = TokenRecord(
                name=str(d["name"]),
                role=d["role"],
                jti=jti,
                # recorded_at is stamped by the ledger itself: a creation cannot be backdated.
                created_at=_aware(recorded_at),
                expires_at=_aware(d["expires_at"]),
                created_by=actor,
            )
        elif kind == REVOKED and jti in created and created[jti].revoked_at is None:
            old = created[jti]
            created[jti] = TokenRecord(
                old.name,
                old.role,
                old.jti,
                old.created_at,
                old.expires_at,
                old.created_by,
                _aware(recorded_at),
                actor,
            )
    return list(created.values())


def signing_key(ws: Workspace) -> str:
    """The tokens' HS256 key from the secrets backend, created there on first use."""
    from ccxtkit.filelock import flocked
    from ccxtkit.secrets import MissingSecretError, get_secret, set_secret

    name = ws.config.serve.jwt_key_secret
    try:
        return get_secret(ws, name)
    except MissingSecretError:
        if ws.config.secrets.backend == "env":
            raise
    # Two processes creating it at once would sign with different keys: one creates, under a lock.
    with flocked(ws.ensure_private_dir(ws.state_dir) / "serve_jwt_key.lock"):
        try:
            return get_secret(ws, name)
        except MissingSecretError:
            key = secrets.token_urlsafe(48)
            set_secret(ws, name, key)
            return key


def create_token(
    ws: Workspace,
    name: str,
    role: Role,
    ttl: timedelta,
    actor: str | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    """Sign a new token and record its creation (name, role, jti, expiry) in the ledger."""
    import jwt

    check_token_name(name)
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    expires = moment + ttl
    key = signing_key(ws)
    jti = uuid.uuid4().hex
    claims = {
        "iss": ISSUER,
        "sub": name,
        "role": role,
        "jti": jti,
        "iat": int(moment.timestamp()),
        "exp": int(expires.timestamp()),
    }
    token = jwt.encode(claims, key, algorithm=ALGORITHM)
    with ws.open_ledger() as ledger, ledger.transaction():
        live = [r for r in token_table(ledger) if r.name == name and r.status(moment) == "active"]
        if live:
            raise UsageError(
                f"an active token named {name!r} exists (until {live[0].expires_at:%Y-%m-%d}); "
                f"revoke it first with `vhc serve token revoke {name}`, or pick another name"
            )
        details = {"name": name, "role": role, "jti": jti, "expires_at": expires.isoformat()}
        ledger.record_event(CREATED, details, actor=actor, subject=name)
    record = TokenRecord(name, role, jti, moment, expires, actor)
    return IssuedToken(record, token)


def list_tokens(ws: Workspace) -> list[TokenRecord]:
    """Every token on the record (active, expired and revoked), oldest first."""
    if not ws.ledger_path.exists():
        return []
    with ws.open_ledger(read_only=True) as ledger:
        return token_table(ledger)


def revoke_token(
    ws: Workspace, name: str, actor: str | None = None, now: datetime | None = None
) -> list[TokenRecord]:
    """Revoke every unrevoked token named `name`; the revocations are ledger events."""
    check_token_name(name)
    moment = now or datetime.now(UTC)
    with ws.open_ledger() as ledger, ledger.transaction():
        mine = [r for r in token_table(ledger) if r.name == name]
        if not mine:
            raise UsageError(f"no token named {name!r}; see `vhc serve token list`")
        todo = [r for r in mine if r.revoked_at is None]
        for r in todo:
            ledger.record_event(REVOKED, {"name": name, "jti": r.jti}, actor=actor, subject=name)
    return [
        TokenRecord(r.name, r.role, r.jti, r.created_at, r.expires_at, r.created_by, moment, actor)
        for r in todo
    ]


def decode(token: str, key: str) -> dict[str, Any]:
    """The claims of a token that verifies (signature, issuer, expiry), else TokenError."""
    import jwt

    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "jti", "sub", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired; create a new one") from None
    except jwt.InvalidTokenError:
        raise TokenError("the token is not valid (not signed by this vhc, or damaged)") from None
    return dict(claims)


def check_recorded(
    claims: dict[str, Any], table: Iterable[TokenRecord], now: datetime
) -> TokenRecord:
    """The token's record if it is on the ledger, active and matches the claims (pure)."""
    jti = str(claims.get("jti", ""))
    record = next((r for r in table if r.jti == jti), None)
    if record is None or record.name != claims.get("sub") or record.role != claims.get("role"):
        raise TokenError("the token is not on this ledger's record")
    status = record.status(now)
    if status != "active":
        raise TokenError(f"the token {record.name!r} is {status}")
    return record


def verify(ws: Workspace, token: str, key: str, now: datetime | None = None) -> TokenRecord:
    """The record of a valid, recorded, unrevoked, unexpired token, else TokenError."""
    claims = decode(token, key)
    moment = now or datetime.now(UTC)
    with ws.open_ledger(read_only=True) as ledger:
        return check_recorded(claims, token_table(ledger), moment)

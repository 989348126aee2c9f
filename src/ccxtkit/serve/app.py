"""The Starlette application: authentication, rate limits, the error shape, and the routes.

Each route handler is a plain function `(ctx) -> (status, body)` that calls one core function
(the same one the matching `vhc` command calls), run in a worker thread because the core
blocks (ledger lock, exchange calls). `_endpoint` wraps it: the token and its role, the
per-token bucket, the body under the size limit, and every failure as the seed's JSON error.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ccxtkit.errors import TokenError, VhcError
from ccxtkit.logs import log, redact
from ccxtkit.workspace import Workspace

from . import tokens
from .ratelimit import RateLimiter
from .requests import ApiError, Text, error_response, from_vhc, parse_json_object, read_body
from .tokens import Role, TokenRecord

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from .workers import WorkerPool

PREFIX = "/api/v1"


@dataclass
class ServeState:
    """What every request shares: the workspace, the signing key, the buckets, the workers."""

    ws: Workspace
    key: str
    token_limits: RateLimiter
    source_limits: RateLimiter
    max_body: int
    started: float = field(default_factory=time.monotonic)
    workers: WorkerPool | None = None


@dataclass
class Call:
    """One request as a handler sees it."""

    st: ServeState
    request: Request
    token: TokenRecord | None
    body: dict[str, Any]

    @property
    def ws(self) -> Workspace:
        return self.st.ws

    @property
    def actor(self) -> str:
        """Who the ledger says acted: the token's name."""
        return f"api:{self.token.name}" if self.token else "api"

    def param(self, name: str) -> str:
        return str(self.request.path_params[name])

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)


Handler = Callable[[Call], tuple[int, Any]]


def new_state(ws: Workspace) -> ServeState:
    """The shared state of a server over `ws` (reads the signing key: fails before listening)."""
    cfg = ws.config.serve
    with ws.open_ledger():
        pass  # created or migrated now (the signals tables), so read-only visits find them
    _warm(ws)
    return ServeState(
        ws=ws,
        key=tokens.signing_key(ws),
        token_limits=RateLimiter(cfg.token_rate_per_second, cfg.token_burst),
        source_limits=RateLimiter(cfg.source_rate_per_second, cfg.source_burst),
        max_body=cfg.max_body_bytes,
    )


def _warm(ws: Workspace) -> None:
    """What the first delivery would do once, done before listening (its answer is not slowed).

    The policy gate (which records a tightening, or finds an unapproved change: then intake
    refuses with 403 until it is approved, and the server still starts), intake's modules, the
    chain head of the ledger this server keeps open (ledger/keeper.py), and the exchange
    library: importing ccxt costs about 0.3 s, which a kill-switch activation must not wait for.
    """
    from ccxtkit.exchanges.factory import preload
    from ccxtkit.policy.service import enforce_policy
    from ccxtkit.risk import flatten  # noqa: F401 - the kill switch's sweep
    from ccxtkit.signals import intake, worker  # noqa: F401 - imported now, not on a request

    preload(ws)

    try:
        enforce_policy(ws)
        with ws.open_ledger() as ledger:
            ledger.head_for_append()  # the chain head, read and checked once for the kept file
    except VhcError as exc:
        log.warning("serve: %s", exc.message)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "UNAUTHORIZED",
            "send `Authorization: Bearer <token>` (create one with `vhc serve token create`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def _limited(limiter: RateLimiter, key: str, what: str) -> None:
    wait = limiter.take(key, time.monotonic())
    if wait is not None:
        seconds = max(1, int(wait + 0.999))
        raise ApiError(
            429,
            "RATE_LIMITED",
            f"too many requests for {what}; retry in {seconds} s",
            {"retry_after_seconds": seconds},
            headers={"Retry-After": str(seconds)},
        )


def authenticate(st: ServeState, request: Request, needed: Role) -> TokenRecord:
    """The request's token record, if valid and its role may do `needed`; else 401/403/429."""
    token = _bearer(request)
    try:
        record = tokens.verify(st.ws, token, st.key)
    except TokenError as exc:
        raise ApiError(
            401, "UNAUTHORIZED", exc.message, headers={"WWW-Authenticate": "Bearer"}
        ) from None
    _limited(st.token_limits, record.jti, f"token {record.name!r}")
    if not tokens.role_allows(record.role, needed):
        raise ApiError(
            403,
            "FORBIDDEN",
            f"token {record.name!r} has role {record.role}; this needs {needed}",
            {"role": record.role, "needed": needed},
        )
    return record


def internal_error(exc: BaseException, where: str) -> ApiError:
    """A 500 that names the exception's type only; the log has the (redacted) rest."""
    log.error("serve: %s failed: %s: %s", where, type(exc).__name__, redact(str(exc)))
    return ApiError(
        500,
        "INTERNAL_ERROR",
        f"internal error ({type(exc).__name__}); the server log has the details",
    )


async def _answer(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except ApiError as err:
        return error_response(err)
    except VhcError as exc:
        return error_response(from_vhc(exc))
    except Exception as exc:  # noqa: BLE001 - a request must get a JSON answer, never a traceback
        return error_response(internal_error(exc, f"{request.method} {request.url.path}"))


def endpoint(st: ServeState, handler: Handler, needed: Role | None, body: bool = False) -> Any:
    """An ASGI endpoint running `handler` in a thread after auth, limits and body checks."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, Response

    async def run(request: Request) -> Response:
        async def work() -> Response:
            record = None
            if needed is not None:
                record = await run_in_threadpool(authenticate, st, request, needed)
            doc: dict[str, Any] = {}
            if body:
                raw = await read_body(request, st.max_body)
                doc = parse_json_object(raw) if raw.strip() else {}
            status, answer = await run_in_threadpool(handler, Call(st, request, record, doc))
            if isinstance(answer, Text):
                return Response(answer.body, status_code=status, media_type=answer.media_type)
            return JSONResponse(answer, status_code=status)

        return await _answer(request, work)

    return run


def webhook(st: ServeState) -> Any:
    """`POST /signals/{source}/webhook`: raw body, headers and client ip to signals.intake.

    `source` is the name under `signals.sources` (DESIGN.md's sheets, telegram, tradingview);
    intake checks its credential, records the delivery either way, and makes the answer.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    from ccxtkit.signals.intake import receive

    async def run(request: Request) -> Response:
        async def work() -> Response:
            source = str(request.path_params["source"])
            known = source in st.ws.config.signals.sources
            # Unknown names share one bucket: made-up names cannot grow the table or dodge it.
            _limited(st.source_limits, source if known else "", f"signal source {source!r}")
            raw = await read_body(request, st.max_body)
            headers = {k.lower(): v for k, v in request.headers.items()}
            ip = request.client.host if request.client else None
            # Concurrent calls are group-committed by intake: one ledger visit for all of them.
            answer = await run_in_threadpool(receive, st.ws, source, headers, raw, ip)
            return JSONResponse(answer.body, status_code=answer.status)

        return await _answer(request, work)

    return run


def create_app(st: ServeState) -> Starlette:
    """The application: every route under /api/v1, JSON errors for unknown routes too."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.routing import Route

    from . import routes

    table = [Route(f"{PREFIX}/signals/{{source}}/webhook", webhook(st), methods=["POST"])]
    for method, path, handler, needed, body in routes.ROUTES:
        table.append(
            Route(f"{PREFIX}{path}", endpoint(st, handler, needed, body), methods=[method])
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
        message = {
            404: f"no route {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }.get(status, "request refused")
        return error_response(ApiError(status, codes.get(status, "BAD_REQUEST"), message))

    async def server_error(request: Request, exc: Exception) -> Response:
        return error_response(internal_error(exc, f"{request.method} {request.url.path}"))

    return Starlette(
        routes=table,
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=routes.lifespan(st),
    )

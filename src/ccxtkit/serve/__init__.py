"""`vhc serve`: the HTTP API over the same core, the signal webhooks, and the signal workers.

- `tokens`: bearer tokens (JWT, HS256) and the roles they carry; created and revoked as ledger
  control events, so the token table is derived from the chain (no table of its own);
- `ratelimit`: the in-memory token buckets (per API token, per signal source);
- `requests`: reading a request's body under the size limit, and the seed's error shape;
- `app`: the Starlette application and its routes; `workers`: the background signal workers;
- `server`: uvicorn in the foreground, stopped cleanly by SIGTERM.

Starlette and uvicorn are imported only here, only by `vhc serve`.
"""

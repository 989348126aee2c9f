"""`vhc serve` as a real process over HTTP: roles, tokens, the error shape, limits, SIGTERM.

Each test starts `vhc serve` on a free loopback port over a workspace with a paper account
and the env secrets backend, and talks to it with urllib.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pyotp
import pytest
import yaml

from ccxtkit.auth import totp
from ccxtkit.risk import killswitch
from ccxtkit.serve.tokens import create_token
from ccxtkit.workspace import Workspace, write_private
from tests.serve_process import JWT_KEY, ServeProcess
from tests.test_killswitch import run_cli

pytestmark = pytest.mark.slow

SECRETS_ENV = ("VHC_TOTP_SECRET", "VHC_CONTROL_KEY", "VHC_SERVE_JWT_KEY")


def workspace(
    home: Path, monkeypatch: pytest.MonkeyPatch, serve: dict | None = None, paper=None
) -> Workspace:
    """A paper account, secrets from the environment, and this `serve:` section."""
    for name in SECRETS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VHC_SERVE_JWT_KEY", JWT_KEY)
    cfg = {
        "version": "1.0",
        "exchanges": {"paper": {"id": "paper", **({"paper": paper} if paper else {})}},
        "secrets": {"backend": "env"},
        "serve": serve or {},
    }
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    return Workspace.locate(str(home))


def token(ws: Workspace, name: str, role: str, **kw) -> str:
    return create_token(ws, name, role, kw.pop("ttl", timedelta(days=1)), **kw).token  # type: ignore[arg-type]


def enrol_admin(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> str:
    """Enrol the admin approver (env backend), exported for the server; its TOTP secret."""
    result = totp.enrol(ws, "admin", backend="env")
    for name, value in result.exports.items():
        monkeypatch.setenv(name, value)
    return result.secret


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return workspace(tmp_path / "ws", monkeypatch)


def is_error(answer, status: int, code: str) -> None:
    """The seed's error shape, with this status and code."""
    assert answer.status == status, answer
    doc = answer.json
    assert doc["success"] is False
    err = doc["error"]
    assert err["statusCode"] == status and err["code"] == code
    assert set(err) == {"message", "code", "statusCode", "timestamp", "details"}
    assert err["timestamp"].endswith("Z") and "Traceback" not in answer.text


def test_each_role_is_allowed_and_refused_where_it_should_be(ws, monkeypatch):
    secret = enrol_admin(ws, monkeypatch)
    viewer, trader, admin = (token(ws, n, n) for n in ("viewer", "trader", "admin"))
    order = {"symbol": "BTC/USD", "side": "buy", "amount": "0.01"}
    with ServeProcess(ws.home) as srv:
        # No token, or a malformed header: 401.
        is_error(srv.call("GET", "/executions/orders"), 401, "UNAUTHORIZED")
        bad = srv.call("GET", "/executions/orders", headers={"Authorization": "Basic abc"})
        is_error(bad, 401, "UNAUTHORIZED")
        # Every role reads.
        for t in (viewer, trader, admin):
            for path in ("/executions/orders", "/executions/positions", "/risk/limits",
                         "/risk/killswitch/status", "/system/flags"):  # fmt: skip
                got = srv.call("GET", path, token=t)
                assert got.status == 200 and got.json["success"] is True, (path, got)
            metrics = srv.call("GET", "/system/metrics", token=t)
            assert metrics.status == 200 and "vhc_kill_switch_active" in metrics.text
            assert metrics.headers["content-type"].startswith("text/plain")
        # A viewer may not trade or halt trading.
        is_error(srv.call("POST", "/executions/orders", order, token=viewer), 403, "FORBIDDEN")
        refused = srv.call("POST", "/risk/killswitch/enable", {"reason": "x"}, token=viewer)
        is_error(refused, 403, "FORBIDDEN")
        assert refused.json["error"]["details"] == {"role": "viewer", "needed": "trader"}
        # A trader trades, through the same path as `vhc trade buy`.
        placed = srv.call("POST", "/executions/orders", order, token=trader)
        assert placed.status == 201, placed
        data = placed.json["data"]
        cid = data["client_order_id"]
        assert data["order"]["status"] == "filled" and all(c["ok"] for c in data["checks"])
        listed = srv.call("GET", "/executions/orders?all=true", token=viewer).json["data"]
        assert [o["client_order_id"] for o in listed] == [cid]
        assert srv.call("GET", "/executions/orders", token=viewer).json["data"] == []  # none open
        one = srv.call("GET", f"/executions/orders/{cid}", token=viewer)
        assert one.status == 200 and one.json["data"]["status"] == "filled"
        is_error(srv.call("GET", "/executions/orders/nope", token=viewer), 404, "NOT_FOUND")
        positions = srv.call("GET", "/executions/positions", token=viewer).json["data"]
        assert positions["quantities"]["BTC"] == "0.01"
        # A resting limit order: a viewer may not cancel it, a trader may.
        limit = {**order, "type": "limit", "price": 1000}
        resting = srv.call("POST", "/executions/orders", limit, token=trader)
        assert resting.status == 201 and resting.json["data"]["order"]["status"] == "open"
        rid = resting.json["data"]["client_order_id"]
        is_error(
            srv.call("POST", f"/executions/orders/{rid}/cancel", token=viewer), 403, "FORBIDDEN"
        )
        canceled = srv.call("POST", f"/executions/orders/{rid}/cancel", token=trader)
        assert canceled.status == 200 and canceled.json["data"]["status"] == "canceled"
        nope = srv.call("POST", "/executions/orders/nope/cancel", token=trader)
        is_error(nope, 404, "NOT_FOUND")
        # The trader halts trading; an order is then refused with 503.
        on = srv.call("POST", "/risk/killswitch/enable", {"reason": "drill"}, token=trader)
        assert on.status == 200 and on.json["data"]["state"]["active"] is True, on
        assert on.json["data"]["state"]["actor"] == "api:trader"
        is_error(
            srv.call("POST", "/executions/orders", order, token=trader), 503, "KILL_SWITCH_ACTIVE"
        )
        # Only an admin lifts it, and only with a good 2FA code.
        code = pyotp.TOTP(secret).now()
        lift = {"auth_code": code}
        is_error(srv.call("POST", "/risk/killswitch/disable", lift, token=trader), 403, "FORBIDDEN")
        wrong = {"auth_code": f"{(int(code) + 500000) % 1000000:06d}"}
        denied = srv.call("POST", "/risk/killswitch/disable", wrong, token=admin)
        is_error(denied, 403, "AUTHORIZATION_FAILED")
        assert killswitch.is_active(ws)
        lifted = srv.call("POST", "/risk/killswitch/disable", lift, token=admin)
        assert lifted.status == 200 and lifted.json["data"]["deactivated"] is True, lifted
        assert not killswitch.is_active(ws)
        status = srv.call("GET", "/risk/killswitch/status", token=viewer).json["data"]
        assert (
            status["active"] is False and status["last_event"]["kind"] == "kill_switch.deactivate"
        )
        assert srv.stop() == 0


def test_revoked_expired_foreign_and_unrecorded_tokens_are_refused(ws, monkeypatch, capsys):
    live = token(ws, "grafana", "viewer")
    past = datetime.now(UTC) - timedelta(days=3)
    expired = token(ws, "old", "viewer", now=past)
    foreign = jwt.encode(jwt.decode(live, options={"verify_signature": False}), "another-key-" * 4)
    claims = {**jwt.decode(live, options={"verify_signature": False}), "jti": "f" * 32}
    unrecorded = jwt.encode(claims, JWT_KEY, algorithm="HS256")  # signed, never on the record
    forged_role = jwt.encode(
        {**jwt.decode(live, options={"verify_signature": False}), "role": "admin"}, JWT_KEY
    )
    with ServeProcess(ws.home) as srv:
        assert srv.call("GET", "/system/flags", token=live).status == 200
        for t, words in [
            (expired, "expired"),
            (foreign, "not valid"),
            (unrecorded, "not on this ledger"),
            (forged_role, "not on this ledger"),
            ("not-a-jwt", "not valid"),
        ]:
            got = srv.call("GET", "/system/flags", token=t)
            is_error(got, 401, "UNAUTHORIZED")
            assert words in got.json["error"]["message"], got
        # Revoked by another process while the server runs: refused from the next request.
        code, out, err = run_cli(ws, ["serve", "token", "revoke", "grafana"], capsys)
        assert code == 0, err
        got = srv.call("GET", "/system/flags", token=live)
        is_error(got, 401, "UNAUTHORIZED")
        assert "revoked" in got.json["error"]["message"]
        assert srv.stop() == 0


def test_bad_input_gets_a_json_error_never_a_traceback(tmp_path, monkeypatch):
    ws = workspace(tmp_path / "ws", monkeypatch, serve={"max_body_bytes": 1024})
    trader = token(ws, "t", "trader")
    with ServeProcess(ws.home) as srv:
        post = "/executions/orders"
        is_error(srv.call("POST", post, raw=b"{not json", token=trader), 400, "BAD_REQUEST")
        is_error(srv.call("POST", post, raw=b"\xff\xfe", token=trader), 400, "BAD_REQUEST")
        is_error(srv.call("POST", post, raw=b"[1, 2]", token=trader), 422, "VALIDATION_ERROR")
        huge = b'{"symbol": "' + b"A" * 5000 + b'"}'
        too_big = srv.call("POST", post, raw=huge, token=trader)
        is_error(too_big, 413, "PAYLOAD_TOO_LARGE")
        assert too_big.json["error"]["details"] == {"max_bytes": 1024}
        for body, words in [
            ({"side": "buy", "amount": "1"}, "'symbol' is required"),
            ({"symbol": "BTC/USD", "side": "buy", "amount": True}, "'amount' must be"),
            ({"symbol": "BTC/USD", "side": "buy", "amount": ["1"]}, "'amount' must be"),
            ({"symbol": "BTC/USD", "side": "hold", "amount": "1"}, "side must be buy or sell"),
            ({"symbol": "BTC/USD", "side": "buy", "amount": "lots"}, "amount"),
            ({"symbol": "BTC/USD", "side": "buy", "amount": "-1"}, "greater than 0"),
            ({"symbol": "BTCUSD", "side": "buy", "amount": "1"}, "BTC/USD"),
            (
                {"symbol": "BTC/USD", "side": "buy", "amount": "1", "dry_run": "yes"},
                "true or false",
            ),
            ({"symbol": "BTC/USD", "side": "buy", "amount": "1", "exchange": "nope"}, "nope"),
        ]:
            got = srv.call("POST", post, body, token=trader)
            is_error(got, 422, "VALIDATION_ERROR")
            assert words in got.json["error"]["message"], (body, got)
        # Too big for the risk limits: 403 with every check in the details.
        big = srv.call(
            "POST", post, {"symbol": "BTC/USD", "side": "buy", "amount": "100"}, token=trader
        )
        is_error(big, 403, "RISK_VIOLATION")
        assert any(not c["ok"] for c in big.json["error"]["details"]["checks"])
        is_error(srv.call("GET", "/no/such/route", token=trader), 404, "NOT_FOUND")
        is_error(srv.call("DELETE", "/executions/orders", token=trader), 405, "METHOD_NOT_ALLOWED")
        enable = srv.call("POST", "/risk/killswitch/enable", {"reason": 5}, token=trader)
        is_error(enable, 422, "VALIDATION_ERROR")
        # Nothing of it reached the ledger as an order.
        assert srv.call("GET", "/executions/orders?all=1", token=trader).json["data"] == []
        assert srv.stop() == 0
    assert "Traceback" not in srv.output()


def test_per_token_rate_limit_answers_429_with_retry_after(tmp_path, monkeypatch):
    serve = {"token_burst": 3, "token_rate_per_second": "0.2"}
    ws = workspace(tmp_path / "ws", monkeypatch, serve=serve)
    first, second = token(ws, "a", "viewer"), token(ws, "b", "viewer")
    with ServeProcess(ws.home) as srv:
        codes = [srv.call("GET", "/system/flags", token=first).status for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = srv.call("GET", "/system/flags", token=first)
        is_error(limited, 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["retry-after"]) <= 5
        assert srv.call("GET", "/system/flags", token=second).status == 200  # its own bucket
        assert srv.stop() == 0


def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(tmp_path, monkeypatch):
    ws = workspace(tmp_path / "ws", monkeypatch, paper={"latency_ms": 700})
    trader = token(ws, "t", "trader")
    order = {"symbol": "BTC/USD", "side": "buy", "amount": "0.01"}
    with ServeProcess(ws.home) as srv:
        answers = []
        sending = threading.Thread(
            target=lambda: answers.append(
                srv.call("POST", "/executions/orders", order, token=trader)
            )
        )
        sending.start()
        time.sleep(0.5)  # the order is on its way (every paper call takes 0.7 s)
        assert srv.stop(signal.SIGTERM) == 0
        sending.join(30)
        assert answers and answers[0].status == 201, answers
        assert answers[0].json["data"]["order"]["status"] == "filled"
        assert "Shutting down" in srv.output() and "Traceback" not in srv.output()


def test_a_taken_port_is_a_clear_error(ws, monkeypatch):
    with ServeProcess(ws.home) as srv:
        again = ServeProcess(ws.home)
        again.port = srv.port
        with pytest.raises(RuntimeError, match="cannot listen on 127.0.0.1"):
            again.start()
        assert again.proc is not None and again.proc.returncode == 2
        assert srv.stop() == 0


def test_token_commands_create_list_revoke(ws, capsys):
    code, out, err = run_cli(
        ws, ["serve", "token", "create", "--name", "ci", "--role", "trader", "--ttl", "2h"], capsys
    )
    assert code == 0, err
    printed = out.strip().splitlines()[-1]
    claims = jwt.decode(printed, JWT_KEY, algorithms=["HS256"], issuer="vhc")
    assert claims["sub"] == "ci" and claims["role"] == "trader"
    assert 7190 <= claims["exp"] - claims["iat"] <= 7200
    code, _, err = run_cli(
        ws, ["serve", "token", "create", "--name", "ci", "--role", "viewer"], capsys
    )
    assert code == 2 and "active token named 'ci'" in err
    for ttl in ("forever", "0m", "400d"):
        code, _, err = run_cli(
            ws,
            ["serve", "token", "create", "--name", "x", "--role", "viewer", "--ttl", ttl],
            capsys,
        )
        assert code == 2 and "--ttl" in err, ttl
    code, _, err = run_cli(
        ws, ["serve", "token", "create", "--name", "x", "--role", "root"], capsys
    )
    assert code == 2 and "unknown role" in err
    code, out, _ = run_cli(ws, ["--json", "serve", "token", "list"], capsys)
    import json

    listed = json.loads(out)
    assert [(t["name"], t["role"], t["status"]) for t in listed] == [("ci", "trader", "active")]
    assert printed not in out  # the list never shows a token
    code, out, _ = run_cli(ws, ["serve", "token", "revoke", "ci"], capsys)
    assert code == 0 and "revoked" in out
    code, out, _ = run_cli(ws, ["--json", "serve", "token", "list"], capsys)
    assert json.loads(out)[0]["status"] == "revoked"
    code, _, err = run_cli(ws, ["serve", "token", "revoke", "nobody"], capsys)
    assert code == 2 and "no token named 'nobody'" in err
    # The ledger holds the events, never the token.
    with ws.open_ledger(read_only=True) as ledger:
        rows = ledger.rows(
            "SELECT kind, details FROM control_events WHERE kind LIKE 'serve.%' ORDER BY seq"
        )
    assert [r["kind"] for r in rows] == ["serve.token_created", "serve.token_revoked"]
    assert all(printed not in (r["details"] or "") for r in rows)
    assert os.environ["VHC_SERVE_JWT_KEY"] not in str(rows)

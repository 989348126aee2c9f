"""`PUT /api/v1/risk/limits` on a real `vhc serve`: admin only, the policy rule's 2FA for a
loosening, nothing changed when refused, recorded like `vhc config apply` when accepted, and
used by the running server at once."""

from __future__ import annotations

import json

import pyotp
import pytest

from ccxtkit.policy.service import policy_status
from ccxtkit.workspace import Workspace
from tests.serve_process import ServeProcess
from tests.signals_kit import rows
from tests.test_serve_api import enrol_admin, is_error, token
from tests.test_serve_api import ws as ws  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

ORDER = {"symbol": "BTC/USD", "side": "buy", "amount": "0.01"}


def policy_records(ws: Workspace) -> list[dict]:
    return [
        json.loads(d)
        for (d,) in rows(
            ws.home,
            "SELECT details FROM control_events WHERE kind = 'policy.recorded' ORDER BY seq",
        )
    ]


def test_limits_change_through_the_policy_rule(ws: Workspace, monkeypatch) -> None:  # noqa: F811
    secret = enrol_admin(ws, monkeypatch)
    viewer, trader, admin = (token(ws, n, n) for n in ("viewer", "trader", "admin"))
    config = ws.config_path
    with ServeProcess(ws.home) as srv:
        original = config.read_bytes()
        before = len(policy_records(ws))
        loosen = {"limits": {"max_order_value": "20000"}}
        # Only an admin may change limits.
        for t in (viewer, trader):
            is_error(srv.call("PUT", "/risk/limits", loosen, token=t), 403, "FORBIDDEN")
        # Loosening without a code, or with a wrong one: 403, and nothing changes.
        is_error(srv.call("PUT", "/risk/limits", loosen, token=admin), 403, "AUTHORIZATION_FAILED")
        good = pyotp.TOTP(secret).now()
        wrong = {**loosen, "auth_code": f"{(int(good) + 500000) % 1000000:06d}"}
        is_error(srv.call("PUT", "/risk/limits", wrong, token=admin), 403, "AUTHORIZATION_FAILED")
        # Bad input: 422, nothing changes.
        bad = srv.call("PUT", "/risk/limits", {"limits": {"max_order_value": "-5"}}, token=admin)
        is_error(bad, 422, "VALIDATION_ERROR")
        unknown = srv.call("PUT", "/risk/limits", {"limits": {"max_leverage": 3}}, token=admin)
        is_error(unknown, 422, "VALIDATION_ERROR")
        is_error(
            srv.call("PUT", "/risk/limits", {"limits": 5}, token=admin), 422, "VALIDATION_ERROR"
        )
        assert config.read_bytes() == original
        assert len(policy_records(ws)) == before
        shown = srv.call("GET", "/risk/limits", token=viewer).json["data"]["limits"]
        assert shown["max_order_value"] == "10000"

        # Tightening needs no code; the server uses the new limit from the next order on.
        tight = srv.call("PUT", "/risk/limits", {"limits": {"max_order_value": 50}}, token=admin)
        assert tight.status == 200, tight
        data = tight.json["data"]
        assert data["how"] == "tightened" and data["limits"]["max_order_value"] == "50"
        assert [c["key"] for c in data["changes"]] == ["risk.max_order_value"]
        refused = srv.call("POST", "/executions/orders", ORDER, token=trader)
        is_error(refused, 403, "RISK_VIOLATION")
        assert policy_records(ws)[-1]["how"] == "tightened"

        # Loosening with a good code: recorded as approved, like `vhc config apply`.
        approved = srv.call("PUT", "/risk/limits", {**loosen, "auth_code": good}, token=admin)
        assert approved.status == 200, approved
        assert approved.json["data"]["how"] == "approved"
        last = policy_records(ws)[-1]
        assert last["how"] == "approved" and last["approver"] == "admin"
        assert last["policy"]["risk"]["max_order_value"] in ("20000", 20000)
        placed = srv.call("POST", "/executions/orders", ORDER, token=trader)
        assert placed.status == 201, placed
        # The same code again is a reused code.
        again = {"limits": {"max_order_value": "30000"}, "auth_code": good}
        is_error(srv.call("PUT", "/risk/limits", again, token=admin), 403, "AUTHORIZATION_FAILED")
        assert srv.stop() == 0

    # The file and the ledger agree (any vhc command now passes the policy gate), and the
    # token that made each change is on the record.
    fresh = Workspace.locate(str(ws.home))
    assert fresh.config.risk.max_order_value == 20000
    assert policy_status(fresh).same
    actors = rows(
        ws.home,
        "SELECT actor, details FROM control_events WHERE kind = 'serve.limits_changed' "
        "ORDER BY seq",
    )
    assert [(a, json.loads(d)["how"]) for a, d in actors] == [
        ("api:admin", "tightened"),
        ("api:admin", "approved"),
    ]

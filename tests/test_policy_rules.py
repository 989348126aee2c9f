"""The pure rules: which policy changes only tighten, and that anything unknown loosens."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ccxtkit.config import parse_config
from ccxtkit.errors import ConfigError
from ccxtkit.policy.document import policy_document, policy_hash
from ccxtkit.policy.rules import compare, loosened

BASE = """
exchanges:
  kraken: {rate_limit: 15, ip_allowlist: [203.0.113.5], ccxt: {timeout: 3000}}
  paper: {id: paper}
risk: {max_order_value: 10000, daily_loss_limit: 500}
withdrawals:
  recipient_allowlist: ["0xabc", "0xdef"]
  require_two_approvals_over: 5000
"""


def doc(extra: str = "") -> dict:  # type: ignore[type-arg]
    return policy_document(parse_config(BASE + extra))


def directions(new: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {c.key: c.direction for c in compare(doc(), new)}


def changed(path: str, value: object) -> dict:  # type: ignore[type-arg]
    new = doc()
    *parents, leaf = path.split(".")
    node = new
    for p in parents:
        node = node[p]
    node[leaf] = value
    return new


@pytest.mark.parametrize(
    ("path", "value", "direction"),
    [
        ("risk.max_order_value", "9999.99", "tighten"),
        ("risk.max_order_value", "10000.01", "loosen"),
        ("risk.kill_switch_enabled", False, "loosen"),
        ("risk.daily_loss_limit", "400", "tighten"),
        ("risk.daily_loss_limit", "5%", "loosen"),  # USD vs percent: not comparable
        ("risk.daily_loss_limit", None, "loosen"),
        ("risk.max_open_positions", 3, "tighten"),  # none -> a cap
        ("risk.circuit_breaker.window_minutes", 10, "tighten"),
        ("risk.circuit_breaker.max_failures", 20, "loosen"),
        ("withdrawals.require_two_approvals_over", None, "loosen"),
        ("withdrawals.require_two_approvals_over", "1000", "tighten"),
        ("withdrawals.new_address_delay_hours", "1", "loosen"),
        ("withdrawals.request_ttl_hours", "2", "tighten"),
        ("withdrawals.daily_auto_approve_cap_usd", "100000", "loosen"),  # from its default
        ("withdrawals.recipient_allowlist", ["0xabc"], "tighten"),
        ("withdrawals.recipient_allowlist", ["0xdef", "0xabc"], None),  # order: no change
        ("withdrawals.recipient_allowlist", ["0xabc", "0xbad"], "loosen"),
        ("withdrawals.approval_method", "email", "loosen"),
        ("exchanges.kraken.enabled", False, "tighten"),
        ("exchanges.kraken.secrets", "env", "loosen"),
        ("exchanges.kraken.id", "binance", "loosen"),
        ("exchanges.kraken.ip_allowlist", [], "tighten"),
        ("exchanges.kraken.ip_allowlist", ["203.0.113.5", "198.51.100.1"], "loosen"),
        ("exchanges.paper.paper.fee_rate", "0.002", "neutral"),
        ("risk.some_future_key", 1, "loosen"),
    ],
)
def test_each_key_has_a_direction(path: str, value: object, direction: str | None) -> None:
    found = directions(changed(path, value))
    if direction is None:
        assert not loosened(compare(doc(), changed(path, value)))
    else:
        assert found == {path: direction}


def test_accounts_and_endpoints() -> None:
    new = doc()
    new["exchanges"]["evil"] = new["exchanges"]["kraken"]
    assert directions(new) == {"exchanges.evil": "loosen"}
    new = doc()
    del new["exchanges"]["kraken"]
    assert directions(new) == {"exchanges.kraken": "tighten"}
    urls = "      urls: {api: {public: 'http://127.0.0.1:1/'}}\n"
    extra = doc().copy()
    extra["exchanges"]["kraken"]["ccxt"]["urls"] = {"api": {"public": "http://127.0.0.1:1/"}}
    assert directions(extra) == {"exchanges.kraken.ccxt.urls.api.public": "loosen"}
    assert urls


def test_document_is_normalised_and_hash_is_stable() -> None:
    a = policy_document(parse_config(BASE.replace("10000", "10000.00")))
    b = doc()
    assert a == b and policy_hash(a) == policy_hash(b)
    assert b["risk"]["max_order_value"] == "10000"
    assert b["risk"]["max_drawdown_pct"] == "15"  # defaults filled in
    assert "logging" not in b and "monitoring" not in b
    assert isinstance(parse_config(BASE).risk.max_order_value, Decimal)


def test_credentials_in_ccxt_are_refused() -> None:
    config = parse_config(BASE + "  " * 0)
    raw = config.model_copy(
        update={"exchanges": {"k": config.exchanges["kraken"].model_copy(
            update={"ccxt": {"options": {"apiKey": "AKIA123456"}}})}}
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"exchanges\.k\.ccxt\.options\.apiKey") as exc:
        policy_document(raw)
    assert "AKIA123456" not in exc.value.message

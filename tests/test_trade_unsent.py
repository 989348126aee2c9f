"""An order refused inside the client before anything is sent is recorded as rejected, not left pending."""

import json

from ccxtkit.cli.app import main
from ccxtkit.ledger.store import open_ledger
from ccxtkit.trading import recording
from tests.test_killswitch import make_workspace


def run(home, *args):
    try:
        main(["--home", str(home), "--json", *args])
    except SystemExit as exc:
        return exc.code
    return 0


def test_amount_a_float_cannot_carry_is_rejected_unsent(
    tmp_path, kraken_server, monkeypatch, capsys
):
    creds = kraken_server.credentials()
    monkeypatch.setenv("KRAKEN_API_KEY", creds["apiKey"])
    monkeypatch.setenv("KRAKEN_API_SECRET", creds["secret"])
    kraken_server.set_balance("USD", "1000000")
    account = {"secrets": "env", "rate_limit": 1000, "ccxt": kraken_server.ccxt_config()}
    ws = make_workspace(tmp_path, {"kraken": account})
    code = run(
        tmp_path, "trade", "buy", "BTC/USD", "0.100000000000000001", "--exchange", "kraken", "--yes"
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "more digits" in err
    assert kraken_server.requests_to("AddOrder") == []
    with open_ledger(ws.ledger_path, read_only=True) as ledger:
        assert recording.pending_orders(ledger, "kraken") == []
        [event] = ledger.rows("SELECT event, details FROM order_events")
    assert event["event"] == "rejected"
    assert json.loads(event["details"])["sent"] is False


def test_kraken_order_listed_late_after_a_lost_reply_is_found_not_sent_twice(
    tmp_path, kraken_server, monkeypatch, capsys
):
    creds = kraken_server.credentials()
    monkeypatch.setenv("KRAKEN_API_KEY", creds["apiKey"])
    monkeypatch.setenv("KRAKEN_API_SECRET", creds["secret"])
    kraken_server.set_balance("USD", "1000000")
    account = {"secrets": "env", "rate_limit": 1000, "ccxt": kraken_server.ccxt_config()}
    make_workspace(tmp_path, {"kraken": account})
    kraken_server.drop_reply_next("AddOrder")
    kraken_server.hide_next_order(1.0)  # placed, but not listed at the first look
    code = run(tmp_path, "trade", "buy", "BTC/USD", "0.01", "--exchange", "kraken", "--yes")
    assert code == 0, capsys.readouterr().err
    assert len(kraken_server.requests_to("AddOrder")) == 1
    assert len(kraken_server.orders) == 1

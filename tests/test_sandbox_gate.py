"""`sandbox: true` lifts the live-money gates, so it must never reach a production API."""

from tests.test_killswitch import make_workspace, run_cli

PROD = {"public": "https://api.kraken.com", "private": "https://api.kraken.com"}


def _env(monkeypatch, kraken_server) -> None:
    creds = kraken_server.credentials()
    monkeypatch.setenv("KRAKEN_API_KEY", creds["apiKey"])
    monkeypatch.setenv("KRAKEN_API_SECRET", creds["secret"])


def test_a_sandbox_account_pointed_at_production_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KRAKEN_API_KEY", "k")
    monkeypatch.setenv("KRAKEN_API_SECRET", "c2VjcmV0")
    account = {"id": "kraken", "secrets": "env", "sandbox": True, "ccxt": {"urls": {"test": PROD}}}
    ws = make_workspace(tmp_path, {"kraken": account})
    code, _, err = run_cli(ws, ["trade", "buy", "BTC/USD", "0.01", "--exchange", "kraken"], capsys)
    assert code == 2, err
    assert "production API" in err and "api.kraken.com" in err


def test_a_sandbox_account_on_a_test_server_trades_without_live_confirmation(
    tmp_path, monkeypatch, capsys, kraken_server
):
    _env(monkeypatch, kraken_server)
    kraken_server.set_balance("USD", "100000")
    urls = kraken_server.ccxt_config()["urls"]["api"]
    account = {"secrets": "env", "sandbox": True, "ccxt": {"urls": {"api": urls, "test": urls}}}
    ws = make_workspace(tmp_path, {"kraken": account})
    code, _, err = run_cli(ws, ["trade", "buy", "BTC/USD", "0.01", "--exchange", "kraken"], capsys)
    assert code == 0, err
    assert len(kraken_server.requests_to("AddOrder")) == 1

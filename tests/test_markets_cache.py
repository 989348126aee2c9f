"""The markets cache: market lists reused across runs within their TTL, refreshed for an unknown
symbol, never used past the TTL or when the file was edited. Real ccxt against the Kraken server."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from ccxtkit.config import ExchangeConfig
from ccxtkit.exchanges.errors_map import RetryPolicy
from ccxtkit.exchanges.gateway import CcxtGateway, build_ccxt
from ccxtkit.exchanges.markets_cache import MarketsCache, fingerprint, signing_key
from ccxtkit.workspace import init_workspace, write_private
from tests.exchange_fixtures import add_kraken_account
from tests.kraken_server import KrakenServer, Pair
from tests.test_reconcile_paper import run

ETH_USDC = Pair("XETHUSDC", "ETHUSDC", "ETH/USDC", "XETH", "USDC", 2, "0.002", "0.5", Decimal(3000))


@pytest.fixture
def home(tmp_path: Path, kraken_server: KrakenServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    init_workspace(ws)
    add_kraken_account(ws, kraken_server, monkeypatch)
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_balance("USDC", "100000")
    return ws


def buy(capsys: pytest.CaptureFixture[str], home: Path, symbol: str = "BTC/USD") -> None:
    code, _, err = run(capsys, "--home", str(home), "trade", "buy", symbol, "0.01",
                       "--exchange", "kraken", "--yes")  # fmt: skip
    assert code == 0, err


def market_loads(server: KrakenServer) -> int:
    return len(server.requests_to("AssetPairs"))


def cache_file(home: Path) -> Path:
    return home / "state" / "markets" / "kraken.json"


def test_second_run_reuses_the_list(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    buy(capsys, home)
    assert market_loads(kraken_server) == 1
    assert cache_file(home).stat().st_mode & 0o777 == 0o600
    buy(capsys, home)
    assert market_loads(kraken_server) == 1  # the second order used the cached list
    assert len(kraken_server.requests_to("AddOrder")) == 2


def test_unknown_symbol_refreshes_the_cached_list(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    buy(capsys, home)
    with kraken_server._lock:  # the exchange lists a new market after the cache was written
        kraken_server.pairs[ETH_USDC.id] = ETH_USDC
        kraken_server.prices[ETH_USDC.id] = ETH_USDC.price
        kraken_server.price_history[ETH_USDC.id] = []
    buy(capsys, home, "ETH/USDC")
    assert market_loads(kraken_server) == 2
    [_, sent] = kraken_server.requests_to("AddOrder")
    assert sent.params["pair"] in ("XETHUSDC", "ETHUSDC")


def test_edited_cache_is_ignored(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    buy(capsys, home)
    path = cache_file(home)
    mac, _, body = path.read_text().partition("\n")
    doc = json.loads(body)
    # Someone at the keyboard points BTC/USD at the ETH market and loosens its minimum.
    doc["markets"]["BTC/USD"]["id"] = "XETHZUSD"
    doc["markets"]["BTC/USD"]["limits"]["amount"]["min"] = 1e-12
    write_private(path, mac + "\n" + json.dumps(doc))
    buy(capsys, home)
    assert market_loads(kraken_server) == 2  # signature mismatch: reloaded from the exchange
    sent = kraken_server.requests_to("AddOrder")[-1]
    assert sent.params["pair"] in ("XXBTZUSD", "XBTUSD")


def test_expired_cache_is_not_used(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    config = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(config.read_text())
    data["exchanges"]["kraken"]["markets_cache_seconds"] = 1
    write_private(config, yaml.safe_dump(data))
    buy(capsys, home)
    time.sleep(1.1)
    buy(capsys, home)
    paths = [r.path.rsplit("/", 1)[-1] for r in kraken_server.requests]
    first, second = (i for i, p in enumerate(paths) if p == "AddOrder")
    assert "AssetPairs" in paths[first:second]  # the expired list was fetched again


def test_long_running_client_reloads_past_the_ttl_before_sending(
    tmp_path: Path, kraken_server: KrakenServer
) -> None:
    kraken_server.set_balance("USD", "100000")
    now = [time.time()]
    cfg = ExchangeConfig(id="kraken", rate_limit=Decimal(1000), ccxt=kraken_server.ccxt_config())

    class Key:
        api_key, api_secret, passphrase = kraken_server.api_key, kraken_server.api_secret, None

    def gateway() -> CcxtGateway:
        exchange = build_ccxt("kraken", cfg, Key())
        key = fingerprint("kraken", False, exchange.urls["api"], "test")
        cache = MarketsCache(tmp_path / "m.json", key, signing_key(Key.api_secret), 60,
                             lambda: now[0])  # fmt: skip
        return CcxtGateway("kraken", exchange, RetryPolicy(base_delay=0.01), cache)

    gateway().load_markets()
    gw = gateway()
    gw.load_markets()
    assert market_loads(kraken_server) == 1  # the second client read the file
    now[0] += 61  # the process lives on past the TTL
    gw.create_order("BTC/USD", "buy", "market", Decimal("0.01"), None, "vhc-ttl")
    paths = [r.path.rsplit("/", 1)[-1] for r in kraken_server.requests]
    assert paths.index("AddOrder") > max(i for i, p in enumerate(paths) if p == "AssetPairs")
    assert market_loads(kraken_server) == 2


def test_exchanges_refresh_reloads(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--home", str(home), "--json", "exchanges")
    assert code == 0, err
    accounts = {a["account"]: a for a in json.loads(out)["accounts"]}
    assert accounts["kraken"]["client_id_lookup"] == "proven"
    assert accounts["kraken"]["markets_source"] == "exchange"
    code, out, _ = run(capsys, "--home", str(home), "--json", "exchanges", "--exchange", "kraken")
    assert json.loads(out)["accounts"][0]["markets_source"] == "cache"
    code, out, _ = run(capsys, "--home", str(home), "--json", "exchanges", "--exchange", "kraken",
                       "--refresh")  # fmt: skip
    assert json.loads(out)["accounts"][0]["markets_source"] == "exchange"
    assert market_loads(kraken_server) == 2

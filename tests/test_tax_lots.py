"""Hand-computed tax examples (arithmetic in the comments) and lot-matching invariants."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccxtkit.errors import InputError
from ccxtkit.tax.events import Findings, TradeRow, TransferRow, merged_events, transfer_events
from ccxtkit.tax.form8949 import Row, box_for, schedule, to_csv, to_row
from ccxtkit.tax.lots import Acquire, Basis, Dispose, Method, is_long_term, match_lots
from ccxtkit.tax.prices import PriceIndex, epoch_us


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


_seq = iter(range(1, 10**9))


def trade(when: str, ex: str, sym: str, side: str, amount: str, price: str,
          fee: str = "0", fee_ccy: str | None = None, tid: str = "T") -> TradeRow:  # fmt: skip
    base, quote = sym.split("/")
    t = at(when)
    cost = D(amount) * D(price)
    return TradeRow(next(_seq), t, epoch_us(t), ex, sym, base, quote, side, D(amount),
                    D(price), cost, D(fee), fee_ccy or quote, tid, None)  # fmt: skip


def xfer(when: str, ex: str, kind: str, asset: str, amount: str, fee: str | None = None,
         txid: str | None = None, notes: str | None = None) -> TransferRow:  # fmt: skip
    t = at(when)
    return TransferRow(next(_seq), t, epoch_us(t), ex, kind, asset, D(amount),
                       D(fee) if fee else None, asset if fee else None, txid, "ok", notes)  # fmt: skip


def run(
    trades: list[TradeRow],
    transfers: list[TransferRow] | None = None,
    prices: list[tuple[str, str, str]] | None = None,
    method: Method = Method.FIFO,
    basis: Basis = Basis.PER_WALLET,
) -> list[Row]:
    index = PriceIndex.from_rows((epoch_us(at(w)), a, "USD", D(p)) for w, a, p in (prices or []))
    found = Findings([], [])
    moves = transfer_events(transfers or [], index, found)
    events = merged_events(trades, moves, index, found)
    rows = [to_row(m, None, {}) for m in match_lots(events, lambda _t: method, basis)]
    assert not found.missing_prices
    return rows


def money(row: Row) -> tuple[str, str, str]:
    return (f"{row.proceeds:.2f}", f"{row.cost_basis:.2f}", f"{row.gain_loss:.2f}")


def test_simple_gain() -> None:
    # buy 1 BTC at 10,000; sell it at 15,000: proceeds 15,000 - basis 10,000 = 5,000 short-term
    rows = run([trade("2024-01-10T12:00:00", "kraken", "BTC/USD", "buy", "1", "10000"),
                trade("2024-06-01T12:00:00", "kraken", "BTC/USD", "sell", "1", "15000")])  # fmt: skip
    assert [money(r) for r in rows] == [("15000.00", "10000.00", "5000.00")]
    assert (rows[0].term, rows[0].box, rows[0].description) == ("short", "C", "1 BTC")


def test_loss() -> None:
    # buy 2 ETH at 3,000 = 6,000; sell both at 2,500 = 5,000: loss 5,000 - 6,000 = -1,000
    rows = run([trade("2025-01-05T00:00:00", "kraken", "ETH/USD", "buy", "2", "3000"),
                trade("2025-02-01T00:00:00", "kraken", "ETH/USD", "sell", "2", "2500")])  # fmt: skip
    assert [money(r) for r in rows] == [("5000.00", "6000.00", "-1000.00")]
    assert rows[0].box == "I"  # 2025+: short-term digital asset, no 1099-DA


@pytest.mark.parametrize(
    ("sold", "term", "box"),
    [("2025-03-01T23:00:00", "short", "I"), ("2025-03-02T00:30:00", "long", "L")],
)
def test_one_year_boundary(sold: str, term: str, box: str) -> None:
    # acquired 2024-03-01: held more than a year only from 2025-03-02
    rows = run([trade("2024-03-01T01:00:00", "kraken", "BTC/USD", "buy", "1", "100"),
                trade(sold, "kraken", "BTC/USD", "sell", "1", "150")])  # fmt: skip
    assert (rows[0].term, rows[0].box) == (term, box)


def test_leap_day_and_calendar_rule() -> None:
    # acquired Feb 29: the anniversary is Feb 28 next year; sold on it is short, a day later long
    assert not is_long_term(date(2024, 2, 29), date(2025, 2, 28))
    assert is_long_term(date(2024, 2, 29), date(2025, 3, 1))
    assert not is_long_term(date(2023, 3, 1), date(2024, 3, 1))  # 366 days, still not > 1 year
    assert is_long_term(date(2023, 3, 1), date(2024, 3, 2))


def test_fees_both_sides() -> None:
    # buy 1 BTC at 20,000 + fee 20 -> basis 20,020; sell at 25,000 - fee 25 -> proceeds 24,975
    # gain 24,975 - 20,020 = 4,955
    rows = run([trade("2024-01-01T00:00:00", "kraken", "BTC/USD", "buy", "1", "20000", "20"),
                trade("2024-02-01T00:00:00", "kraken", "BTC/USD", "sell", "1", "25000", "25")])  # fmt: skip
    assert [money(r) for r in rows] == [("24975.00", "20020.00", "4955.00")]


def test_crypto_to_crypto() -> None:
    # buy 1 BTC at 30,000. Buy 10 ETH at 0.05 BTC with a 0.001 BTC fee while BTC is 40,000:
    #   BTC given up 0.5 + 0.001 = 0.501 -> proceeds 0.501 x 40,000 = 20,040,
    #   basis 0.501 x 30,000 = 15,030, gain 5,010; ETH basis = 20,000 + 40 fee = 20,040.
    # Sell 10 ETH at 2,100: proceeds 21,000 - basis 20,040 = 960.
    rows = run(
        [trade("2024-01-01T00:00:00", "kraken", "BTC/USD", "buy", "1", "30000"),
         trade("2024-02-01T00:00:00", "kraken", "ETH/BTC", "buy", "10", "0.05", "0.001"),
         trade("2024-03-01T00:00:00", "kraken", "ETH/USD", "sell", "10", "2100")],
        prices=[("2024-02-01T00:00:00", "BTC", "40000")],
    )  # fmt: skip
    assert [(r.description, *money(r)) for r in rows] == [
        ("0.501 BTC", "20040.00", "15030.00", "5010.00"),
        ("10 ETH", "21000.00", "20040.00", "960.00"),
    ]


def test_transfer_between_own_accounts() -> None:
    # buy 1 BTC on kraken at 10,000 (2024-01-01). Withdraw 0.9999 + 0.0001 fee to coinbase:
    #   the fee 0.0001 BTC is spent at 12,000 -> proceeds 1.20, basis 1.00, gain 0.20 (kraken).
    # Sell 0.9999 on coinbase 2025-06-01 at 20,000: proceeds 19,998, basis 9,999, long-term
    # (the lot kept its 2024-01-01 date), reported for coinbase.
    rows = run(
        [trade("2024-01-01T00:00:00", "kraken", "BTC/USD", "buy", "1", "10000"),
         trade("2025-06-01T00:00:00", "coinbase", "BTC/USD", "sell", "0.9999", "20000")],
        [xfer("2024-05-01T00:00:00", "kraken", "withdrawal", "BTC", "0.9999", "0.0001", "tx1"),
         xfer("2024-05-01T00:40:00", "coinbase", "deposit", "BTC", "0.9999", None, "tx1")],
        prices=[("2024-05-01T00:00:00", "BTC", "12000")],
    )  # fmt: skip
    fee, sale = rows
    assert (fee.exchange, money(fee)) == ("kraken", ("1.20", "1.00", "0.20"))
    assert "fee" in fee.description
    assert (sale.exchange, sale.term, sale.date_acquired) == ("coinbase", "long", date(2024, 1, 1))
    assert money(sale) == ("19998.00", "9999.00", "9999.00")


def test_transfer_leaves_nothing_behind_per_wallet() -> None:
    # after moving everything to coinbase, kraken holds nothing: selling there is an error
    with pytest.raises(InputError, match="T9 on kraken"):
        run(
            [trade("2024-01-01T00:00:00", "kraken", "BTC/USD", "buy", "1", "10000"),
             trade("2024-06-01T00:00:00", "kraken", "BTC/USD", "sell", "0.5", "20000", tid="T9")],
            [xfer("2024-05-01T00:00:00", "kraken", "withdrawal", "BTC", "1", None, "tx1"),
             xfer("2024-05-01T00:40:00", "coinbase", "deposit", "BTC", "1", None, "tx1")],
        )  # fmt: skip


def test_partial_lot() -> None:
    # buy 2 BTC at 10,000 (basis 20,000). Sell 0.5 at 12,000: 6,000 - 5,000 = 1,000.
    # The lot's other 1.5 keep basis 15,000: sell at 8,000: 12,000 - 15,000 = -3,000.
    rows = run([trade("2024-01-01T00:00:00", "kraken", "BTC/USD", "buy", "2", "10000"),
                trade("2024-02-01T00:00:00", "kraken", "BTC/USD", "sell", "0.5", "12000"),
                trade("2024-03-01T00:00:00", "kraken", "BTC/USD", "sell", "1.5", "8000")])  # fmt: skip
    assert [money(r) for r in rows] == [
        ("6000.00", "5000.00", "1000.00"),
        ("12000.00", "15000.00", "-3000.00"),
    ]


@pytest.mark.parametrize(
    ("method", "basis", "gain"),
    [(Method.FIFO, "10000.00", "15000.00"),  # oldest lot (Jan, 10,000)
     (Method.LIFO, "20000.00", "5000.00"),  # newest lot (Mar, 20,000)
     (Method.HIFO, "30000.00", "-5000.00")],  # dearest lot (Feb, 30,000)
)  # fmt: skip
def test_each_method_picks_a_different_lot(method: Method, basis: str, gain: str) -> None:
    rows = run(
        [trade("2024-01-01T00:00:00", "kraken", "BTC/USD", "buy", "1", "10000"),
         trade("2024-02-01T00:00:00", "kraken", "BTC/USD", "buy", "1", "30000"),
         trade("2024-03-01T00:00:00", "kraken", "BTC/USD", "buy", "1", "20000"),
         trade("2024-04-01T00:00:00", "kraken", "BTC/USD", "sell", "1", "25000")],
        method=method,
    )  # fmt: skip
    assert money(rows[0]) == ("25000.00", basis, gain)


def test_per_wallet_versus_universal() -> None:
    # kraken lot at 10,000 (older), coinbase lot at 30,000; sell 1 on coinbase at 25,000, FIFO:
    # per wallet uses coinbase's own lot (-5,000); universal takes the oldest anywhere (+15,000)
    trades = [trade("2024-01-01T00:00:00", "kraken", "BTC/USD", "buy", "1", "10000"),
              trade("2024-02-01T00:00:00", "coinbase", "BTC/USD", "buy", "1", "30000"),
              trade("2024-04-01T00:00:00", "coinbase", "BTC/USD", "sell", "1", "25000")]  # fmt: skip
    assert run(trades)[0].gain_loss == D("-5000")
    assert run(trades, basis=Basis.UNIVERSAL)[0].gain_loss == D("15000")


def test_oversell_names_the_trade() -> None:
    with pytest.raises(InputError) as err:
        run([trade("2024-01-01T00:00:00", "kraken", "BTC/USD", "buy", "1", "10000"),
             trade("2024-02-01T00:00:00", "kraken", "BTC/USD", "sell", "2", "1", tid="T-77")])  # fmt: skip
    assert "trade T-77 on kraken at 2024-02-01T00:00:00Z" in str(err.value)
    assert "held only 1 BTC" in str(err.value)


def test_opening_balance_is_flagged_never_silently_zero() -> None:
    rows = run([trade("2024-06-01T00:00:00", "kraken", "BTC/USD", "sell", "1", "100")],
               [xfer("2024-01-01T00:00:00", "kraken", "opening_balance", "BTC", "1")])  # fmt: skip
    assert rows[0].unknown_basis and "BASIS UNKNOWN" in rows[0].description
    noted = run([trade("2024-06-01T00:00:00", "kraken", "BTC/USD", "sell", "1", "100")],
                [xfer("2024-01-01T00:00:00", "kraken", "opening_balance", "BTC", "1",
                      notes="cost_basis_usd=40")])  # fmt: skip
    assert not noted[0].unknown_basis and money(noted[0]) == ("100.00", "40.00", "60.00")


def test_rows_add_up_to_totals_after_rounding() -> None:
    # one lot of 3 units for 100.00 sold a unit at a time for 10.005 each: every row rounds
    # (10.01 proceeds, 33.33 basis), and the totals are the sums of the printed rows
    trades = [trade("2024-01-01T00:00:00", "k", "X/USD", "buy", "3", "33.333333333333")]
    trades += [trade(f"2024-02-0{i}T00:00:00", "k", "X/USD", "sell", "1", "10.005")
               for i in (1, 2, 3)]  # fmt: skip
    rows = run(trades)
    totals = schedule(rows).short_term
    assert [money(r) for r in rows] == [("10.01", "33.33", "-23.32")] * 3
    assert (totals.proceeds, totals.cost_basis, totals.gain) == (
        D("30.03"),
        D("99.99"),
        D("-69.96"),
    )
    csv_lines = to_csv(rows).splitlines()
    assert csv_lines[0].startswith("description,date_acquired,date_sold,proceeds,cost_basis")
    assert csv_lines[1] == "1 X,2024-01-01,2024-02-01,10.01,33.33,,,-23.32,short,C,k"


def test_boxes() -> None:
    assert [box_for(False, 2024), box_for(True, 2024)] == ["C", "F"]
    assert [box_for(False, 2025), box_for(True, 2025)] == ["I", "L"]
    assert [box_for(False, 2025, "basis_reported"), box_for(True, 2025, "basis_reported")] == [
        "G",
        "J",
    ]
    assert box_for(True, 2026, "basis_not_reported") == "K"


# -- invariants ------------------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.booleans(),  # buy?
        st.sampled_from(["a", "b"]),  # wallet
        st.decimals(min_value=D("0.00000001"), max_value=D("5"), places=8),
        st.decimals(min_value=D("0.01"), max_value=D("90000"), places=2),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=_ops, method=st.sampled_from(list(Method)), basis=st.sampled_from(list(Basis)))
def test_matches_cover_each_disposal_and_never_overconsume(
    ops: list[tuple[bool, str, D, D]], method: Method, basis: Basis
) -> None:
    events: list[Any] = []
    held: dict[str, D] = {"a": D(0), "b": D(0)}
    bought: dict[datetime, D] = {}
    for i, (buy, wallet, qty, price) in enumerate(ops):
        t = datetime(2024, 1, 1, 0, 0, i)
        key = wallet if basis is Basis.PER_WALLET else "a"
        pool_held = held[key] if basis is Basis.PER_WALLET else held["a"] + held["b"]
        if buy:
            events.append(Acquire(t, i, wallet, "X", qty, qty * price, f"t{i}"))
            bought[t] = qty
            held[wallet] += qty
        elif pool_held > 0:
            q = min(qty, pool_held)
            events.append(Dispose(t, i, wallet, "X", q, q * price, f"t{i}"))
            if basis is Basis.PER_WALLET:
                held[wallet] -= q
            else:
                take = min(q, held[wallet])
                held[wallet] -= take
                held["b" if wallet == "a" else "a"] -= q - take
    matches = list(match_lots(events, lambda _t: method, basis))
    per_disposal: dict[str, D] = {}
    per_lot: dict[datetime, D] = {}
    for m in matches:
        per_disposal[m.ref] = per_disposal.get(m.ref, D(0)) + m.qty
        per_lot[m.acquired] = per_lot.get(m.acquired, D(0)) + m.qty
        assert m.qty > 0 and m.acquired <= m.sold
    for ev in events:
        if isinstance(ev, Dispose):
            assert per_disposal[ev.ref] == ev.qty  # matched quantities sum to the disposal
    for acquired, used in per_lot.items():
        assert used <= bought[acquired]  # no lot is over-consumed
